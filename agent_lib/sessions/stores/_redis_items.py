"""`ItemStore` for `RedisStore`: one script per call (``_lua/items_*.lua``).

Item writes are data writes: each bumps the session's version (``update(...,
if_version=)`` then sees them) and carries a write token, so a call retried after a
lost reply finds its own write instead of applying it twice. An append that must make
room under a cap runs twice, like ``create``: the first call names the candidates, the
second declares their keys and re-checks each (at most ``WRITE_EVICTION_BUDGET``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_lib.errors import PayloadTooLarge
from agent_lib.sessions.stores._value import unwrap
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits, SessionExistsError
from agent_lib.sessions.stores.items import ALREADY_STORED, ItemStore, StoredItems
from agent_lib.sessions.stores.records import RecordWrite, StoredRecord


class RedisItems(ItemStore):
    """Mixed into `RedisStore`; the list of session ``id`` is ``P:{P:ns}:i:<id>``."""

    limits: Limits
    session_base: str
    items_base: str
    records_base: str
    owners_base: str
    records_set: str
    index_keys: tuple[str, str, str]

    if TYPE_CHECKING:  # provided by RedisStore, as for the memory store's mixin

        async def _run(
            self, name: str, keys: Sequence[str | bytes], args: Sequence[Any]
        ) -> Any: ...
        def _keys(self, session_id: str, *others: str) -> list[str | bytes]: ...

    def items_key_for(self, session_id: str) -> str:
        return self.items_base + session_id

    async def append_items(
        self,
        session_id: str,
        items: Sequence[bytes],
        *,
        payload: bytes,
        size: int,
        replace_payload: bool = False,
        must_exist: bool = False,
        must_not_exist: bool = False,
        records: Sequence[RecordWrite] = (),
        skip_stored: bool = False,
    ) -> int | None:
        lim = self.limits
        mode = (
            "update"
            if must_exist
            else "create"
            if must_not_exist
            else "set"
            if replace_payload
            else "keep"
        )
        fixed = (
            session_id,
            lim.ttl_us,
            lim.lifetime_us,
            lim.max_sessions or 0,
            lim.max_memory or 0,
            self.session_base,
            mode,
            payload,
            size,
            secrets.token_urlsafe(9),
            WRITE_EVICTION_BUDGET,
            1 if skip_stored else 0,
        )
        record_keys, record_args = self._record_writes(records)
        keys = [*self._keys(session_id), *record_keys]
        reply = await self._run("items_add", keys, (*fixed, 0, *record_args, *items))
        if int(reply[0]) == 3:  # over a cap: again, declaring the sessions it may remove
            others = [v.decode() if isinstance(v, bytes) else v for v in reply[1]]
            scores = list(reply[2])
            args = (*fixed, len(scores), *scores, *record_args, *items)
            keys += self._keys(session_id, *others)[5:]
            reply = await self._run("items_add", keys, args)
        status = int(reply[0])
        if status == -3:
            raise SessionExistsError(None)
        if status == -4:
            return ALREADY_STORED
        if status < 0:
            raise PayloadTooLarge(size, lim.max_memory or 0)
        if status == 0:
            return None
        return int(reply[3])

    def record_key_for(self, record_id: str) -> str:
        """The key of the record's fields (its owners are under ``...:o:<id>``)."""
        return self.records_base + record_id

    def _record_keys(self, record_id: str) -> tuple[str, str]:
        return self.records_base + record_id, self.owners_base + record_id

    def _record_writes(self, records: Sequence[RecordWrite]) -> tuple[list[str], list[Any]]:
        """The keys an items_add call declares for ``records`` (the set naming records,
        then each record) and their arguments (see ``common.lua``'s write_records)."""
        if not records:
            return [], [0]
        keys = [self.records_set]
        for write in records:
            keys += self._record_keys(write.record_id)
        args: list[Any] = [len(records)]
        for write in records:
            owner = write.owner
            args += [write.record_id, int(write.reset), int(owner is not None), owner or b""]
            args.append(len(write.fields))
            for name, value in write.fields.items():
                args += [name, value]
        return keys, args

    async def read_records(
        self, record_ids: Sequence[str], *, owners: bool = False
    ) -> dict[str, StoredRecord]:
        if not record_ids:
            return {}
        keys: list[str] = [*self.index_keys]
        for record_id in record_ids:
            keys += self._record_keys(record_id)
        reply = await self._run("records_read", keys, (int(owners),))
        return _records(record_ids, reply)

    async def read_items(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        with_payload: bool = False,
        renew: bool = True,
        records: Sequence[str] = (),
    ) -> StoredItems | None:
        lim = self.limits
        reply = await self._run(
            "items_read",
            [*self._keys(session_id), *(k for r in records for k in self._record_keys(r))],
            (
                session_id,
                lim.ttl_us,
                lim.lifetime_us,
                self.session_base,
                -1 if limit is None or limit < 0 else limit,
                1 if with_payload else 0,
                1 if renew else 0,
            ),
        )
        if not reply:
            return None
        payload = unwrap(reply[0])[1] if with_payload else None
        found = _records(records, reply[5:])
        return StoredItems(
            list(reply[3]), payload, int(reply[1]), int(reply[2]), int(reply[4]), found
        )

    async def pop_item(self, session_id: str) -> bytes | None:
        lim = self.limits
        args = (
            session_id,
            lim.ttl_us,
            lim.lifetime_us,
            self.session_base,
            secrets.token_urlsafe(9),
        )
        reply = await self._run("items_pop", self._keys(session_id), args)
        return reply if isinstance(reply, bytes) else None


def _pairs(flat: Sequence[Any]) -> dict[str, bytes]:
    """A hash from its HGETALL reply (a flat name/value list)."""
    return {name.decode(): value for name, value in zip(flat[0::2], flat[1::2], strict=True)}


def _records(record_ids: Sequence[str], replies: Sequence[Any]) -> dict[str, StoredRecord]:
    """The records that exist, from ``read_record`` replies (common.lua)."""
    found = {}
    for record_id, (fields, owners, exists) in zip(record_ids, replies, strict=True):
        if int(exists):
            found[record_id] = StoredRecord(_pairs(fields), _pairs(owners))
    return found
