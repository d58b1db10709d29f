"""Conversation history on a `SessionManager`: JSON items in a list beside the session.

The framework integrations (`agent_lib.integrations`) store what their frameworks call
items or events through this class, so the namespace's SessionPolicy (idle TTL,
absolute lifetime, ``max_sessions``/``max_memory`` with LRU eviction, cleanup) governs
history too. A session that expired, ended or was evicted reads as empty; appending to
it starts a new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_lib.errors import (
    ConfigError,
    InvalidPayload,
    PayloadTooLarge,
    SessionExists,
    SessionNotFound,
)
from agent_lib.sessions._ids import validate_session_id
from agent_lib.sessions._memory_estimate import VALUE_HEADER_BYTES, estimate_session_bytes
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import SessionExistsError
from agent_lib.sessions.stores.items import ALREADY_STORED, ItemStore
from agent_lib.sessions.stores.records import RecordWrite, StoredRecord

__all__ = ["ALREADY_STORED", "History", "Record", "RecordUpdate", "SessionItems"]


@dataclass(frozen=True)
class Record:
    """A shared record as read (see ``agent_lib.sessions.stores.records``): its fields and,
    when asked for, its owners (session id -> the value each gave), JSON values."""

    fields: dict[str, Any]
    owners: dict[str, Any]


@dataclass(frozen=True)
class RecordUpdate:
    """What an append does to one shared record, in the same atomic step: ``reset``
    empties it first, ``fields`` (JSON values) are set, and with ``owner`` not ``None``
    the appending session is listed among its owners with that value."""

    record_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    owner: Any = None
    reset: bool = False


@dataclass(frozen=True)
class History:
    """A read: the newest items (oldest first), the session's data, times (epoch seconds)."""

    items: list[Any]
    data: Any
    created_at: float
    last_access: float
    records: dict[str, Record] = field(default_factory=dict)
    """The records asked for that exist."""


def _encode(value: Any, limit: int, what: str) -> bytes:
    try:
        encoded = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as error:
        raise InvalidPayload(f"{what} is not JSON-serialisable: {error}") from None
    if len(encoded) > limit:
        raise PayloadTooLarge(len(encoded), limit)
    return encoded


class SessionItems:
    """Item lists of the sessions of one `SessionManager`; each call is one round trip."""

    def __init__(self, sessions: SessionManager) -> None:
        if not isinstance(sessions, SessionManager):
            raise ConfigError(
                "sessions", f"must be a SessionManager, got {type(sessions).__name__}"
            )
        if not isinstance(sessions.store, ItemStore):
            raise ConfigError(
                "sessions", f"store {type(sessions.store).__name__} keeps no item lists"
            )
        self.sessions = sessions
        self._store: ItemStore = sessions.store

    def _size(self, sid: str, payload: bytes) -> int:
        """The payload's estimate, as `SessionManager` makes it; the store adds the items'."""
        key, value = len(self.sessions.store.key_for(sid)), len(payload) + VALUE_HEADER_BYTES
        return estimate_session_bytes(key, value, len(sid))

    async def append(
        self,
        session_id: str,
        items: Sequence[Any],
        *,
        data: Any = None,
        replace_data: bool = False,
        must_exist: bool = False,
        must_not_exist: bool = False,
        records: Sequence[RecordUpdate] = (),
        skip_stored: bool = False,
    ) -> int:
        """Append ``items`` (JSON values, each up to ``max_payload``), creating the
        session with ``data`` when needed; ``replace_data`` also stores ``data``.
        ``must_exist`` stores ``data`` too but raises `SessionNotFound` instead of
        creating; ``must_not_exist`` raises `SessionExists` instead of appending to a
        live session. ``records`` are written in the same atomic step. With
        ``skip_stored``, an append whose first item is already stored changes nothing
        and returns `ALREADY_STORED`. Otherwise returns the number of items the session
        now holds. Nothing is written unless the whole call succeeds."""
        sid = validate_session_id(session_id)
        limit = self.sessions.max_payload
        encoded = [_encode(item, limit, "item") for item in items]
        if not encoded and not (replace_data or must_exist or must_not_exist or records):
            return 0
        payload = _encode({} if data is None else data, limit, "data")
        writes = [_record_write(update, limit) for update in records]
        self.sessions._ensure_cleaner()
        try:
            length = await self._store.append_items(
                sid,
                encoded,
                payload=payload,
                size=self._size(sid, payload),
                replace_payload=replace_data,
                must_exist=must_exist,
                must_not_exist=must_not_exist,
                records=writes,
                skip_stored=skip_stored,
            )
        except SessionExistsError:
            raise SessionExists(sid) from None
        if length is None:
            raise SessionNotFound(sid)
        return length

    async def read(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        with_data: bool = False,
        renew: bool = True,
        records: Sequence[str] = (),
    ) -> History | None:
        """The newest ``limit`` items, renewing the session's idle TTL unless ``renew`` is
        false; ``None`` when the session does not exist (any more). As the Agents SDK's
        ``SQLiteSession``: ``None``, a negative limit or one past the length reads every
        item, ``0`` none. ``records``: shared records read in the same step."""
        sid = validate_session_id(session_id)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigError("limit", f"must be an integer or None, got {limit!r}")
        self.sessions._ensure_cleaner()
        wanted = [validate_session_id(r) for r in records]
        stored = await self._store.read_items(
            sid, limit, with_payload=with_data, renew=renew, records=wanted
        )
        if stored is None:
            return None
        data = json.loads(stored.payload) if stored.payload else None
        return History(
            [json.loads(item) for item in stored.items],
            data,
            stored.created_us / 1e6,
            stored.last_access_us / 1e6,
            {rid: _record(record) for rid, record in stored.records.items()},
        )

    async def read_records(
        self, record_ids: Sequence[str], *, owners: bool = False
    ) -> dict[str, Record]:
        """The shared records of ``record_ids`` that exist, their owners too with
        ``owners`` (renewing nothing)."""
        wanted = [validate_session_id(r) for r in record_ids]
        found = await self._store.read_records(wanted, owners=owners)
        return {rid: _record(record) for rid, record in found.items()}

    async def pop(self, session_id: str) -> Any:
        """Remove and return the newest item; ``None`` when there is none."""
        item = await self._store.pop_item(validate_session_id(session_id))
        return None if item is None else json.loads(item)

    async def clear(self, session_id: str) -> bool:
        """Remove the session with its items; ``True`` when it existed."""
        return await self.sessions.delete(session_id)


def _record_write(update: RecordUpdate, limit: int) -> RecordWrite:
    if not isinstance(update, RecordUpdate):
        raise ConfigError("records", f"must hold RecordUpdate values, got {update!r:.60}")
    owner = None if update.owner is None else _encode(update.owner, limit, "record owner")
    return RecordWrite(
        validate_session_id(update.record_id),
        {str(k): _encode(v, limit, f"record field {k!r:.40}") for k, v in update.fields.items()},
        owner,
        update.reset,
    )


def _record(stored: StoredRecord) -> Record:
    return Record(
        {name: json.loads(value) for name, value in stored.fields.items()},
        {sid: json.loads(value) for sid, value in stored.owners.items()},
    )
