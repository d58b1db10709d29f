"""Named binary entries on a `SessionManager` (see ``stores.entries``), for integrations
whose frameworks look their records up by key: LangGraph's checkpoints and writes.

The namespace's SessionPolicy governs them as it governs item lists: the entries go with
their session, their bytes count in its size, and each write or read is one round trip
(two when a write must make room under a cap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_lib.errors import ConfigError, PayloadTooLarge, SessionNotFound
from agent_lib.sessions._ids import validate_session_id
from agent_lib.sessions._memory_estimate import VALUE_HEADER_BYTES, estimate_session_bytes
from agent_lib.sessions.items import RecordUpdate, _encode, _record_write
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.entries import EntryPut, EntryStore, check_names

__all__ = ["Entries", "EntryPut", "SessionEntries"]

_EMPTY = b"{}"
"""The data of a session written without any (as `SessionItems` stores it)."""


@dataclass(frozen=True)
class Entries:
    """A read: ``(name, value)`` pairs in name order, and times (epoch seconds)."""

    entries: list[tuple[bytes, bytes]]
    created_at: float
    last_access: float


class SessionEntries:
    """Entries of the sessions of one `SessionManager`."""

    def __init__(self, sessions: SessionManager) -> None:
        if not isinstance(sessions, SessionManager):
            raise ConfigError(
                "sessions", f"must be a SessionManager, got {type(sessions).__name__}"
            )
        if not isinstance(sessions.store, EntryStore):
            raise ConfigError("sessions", f"store {type(sessions.store).__name__} keeps no entries")
        self.sessions = sessions
        self._store: EntryStore = sessions.store

    async def write(
        self,
        session_id: str,
        puts: Sequence[EntryPut],
        *,
        drop: Sequence[bytes] = (),
        data: Any = None,
        must_exist: bool = False,
        records: Sequence[RecordUpdate] = (),
        records_on_create: bool = False,
    ) -> int:
        """Drop the entries under each prefix of ``drop``, then store ``puts`` (each value
        up to ``max_payload``), creating the session with ``data`` when needed, or with
        ``must_exist`` raising `SessionNotFound` instead. ``records`` are written in the
        same atomic step (with ``records_on_create`` only by the write that creates the
        session, as a registration). Returns how many entries the session now holds."""
        sid = validate_session_id(session_id)
        limit = self.sessions.max_payload
        for put in puts:
            if not isinstance(put, EntryPut):
                raise ConfigError("puts", f"must hold EntryPut values, got {put!r:.60}")
            if len(put.value) > limit:
                raise PayloadTooLarge(len(put.value), limit)
        _check("puts", puts, drop)
        payload = _EMPTY if data is None else _encode(data, limit, "data")
        key, value = len(self.sessions.store.key_for(sid)), len(payload) + VALUE_HEADER_BYTES
        size = estimate_session_bytes(key, value, len(sid))
        writes = [_record_write(update, limit) for update in records]
        self.sessions._ensure_cleaner()
        count = await self._store.write_entries(
            sid,
            puts,
            drop=drop,
            payload=payload,
            size=size,
            must_exist=must_exist,
            records=writes,
            records_on_create=records_on_create,
        )
        if count is None:
            raise SessionNotFound(sid)
        return count

    async def read(
        self,
        session_id: str,
        *,
        prefix: bytes = b"",
        latest_group: bool = False,
        renew: bool = True,
    ) -> Entries | None:
        """The entries under ``prefix`` (only the newest group's with ``latest_group``),
        renewing the session unless ``renew`` is false; ``None`` when it does not exist."""
        sid = validate_session_id(session_id)
        _check("prefix", (), (prefix,))
        self.sessions._ensure_cleaner()
        stored = await self._store.read_entries(
            sid, prefix=prefix, latest_group=latest_group, renew=renew
        )
        if stored is None:
            return None
        return Entries(stored.entries, stored.created_us / 1e6, stored.last_access_us / 1e6)

    async def session_ids(self, prefix: str = "") -> list[str]:
        """The ids of the live sessions whose id starts with ``prefix``, sorted (a scan of
        the namespace: for listings, not for every call)."""
        if not isinstance(prefix, str):
            raise ConfigError("prefix", f"must be a str, got {type(prefix).__name__}")
        self.sessions._ensure_cleaner()
        return await self._store.session_ids(prefix)


def _check(what: str, puts: Sequence[EntryPut], drop: Sequence[bytes]) -> None:
    """`check_names`, as the clear error of a bad input naming the argument."""
    try:
        check_names(puts, drop)
    except ValueError as error:
        raise ConfigError(what, str(error)) from None
