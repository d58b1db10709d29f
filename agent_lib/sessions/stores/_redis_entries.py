"""`EntryStore` for `RedisStore`: ``_lua/entries_write.lua`` and ``entries_read.lua``.

A session's entries are the members ``name NUL value`` of a sorted set in its item key
(``P:{P:ns}:i:<id>``), all scored 0 so ranges by name are lexicographic. A write that
must make room under a cap runs twice, as an item append does (``_redis_items``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_lib.errors import PayloadTooLarge
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits
from agent_lib.sessions.stores.entries import EntryPut, EntryStore, StoredEntries
from agent_lib.sessions.stores.records import RecordWrite

_GLOB = re.compile(r"[*?\[\]\\]")
_SCAN_COUNT = 1000


class RedisEntries(EntryStore):
    """Mixed into `RedisStore` beside `RedisItems`."""

    limits: Limits
    session_base: str
    index_keys: tuple[str, str, str]

    if TYPE_CHECKING:  # provided by RedisStore and RedisItems

        async def _run(
            self, name: str, keys: Sequence[str | bytes], args: Sequence[Any]
        ) -> Any: ...
        def _keys(self, session_id: str, *others: str) -> list[str | bytes]: ...
        def _record_writes(self, records: Sequence[RecordWrite]) -> tuple[list[str], list[Any]]: ...

    async def write_entries(
        self,
        session_id: str,
        puts: Sequence[EntryPut],
        *,
        drop: Sequence[bytes] = (),
        payload: bytes,
        size: int,
        must_exist: bool = False,
        records: Sequence[RecordWrite] = (),
        records_on_create: bool = False,
    ) -> int | None:
        lim = self.limits
        mode = "update" if must_exist else "keep"
        caps = f"{lim.ttl_us} {lim.lifetime_us} {lim.max_sessions or 0} {lim.max_memory or 0}"
        head = f"{caps} {size} {WRITE_EVICTION_BUDGET} {mode} {int(records_on_create)}"
        record_keys, record_args = self._record_writes(records)
        tail: list[Any] = [*record_args[1:], *drop]  # their count goes in the header
        for put in puts:
            tail += (put.name, put.value)
        flags = "-" + "".join("1" if put.replace else "0" for put in puts)
        # id and write token in the header too: fewer arguments cost the client less
        ends = f"{len(drop)} {flags} {record_args[0]} {session_id} {secrets.token_urlsafe(9)}"
        keys = [*self._keys(session_id), *record_keys]
        reply = await self._run("entries_write", keys, (f"{head} 0 {ends}", payload, *tail))
        if int(reply[0]) == 3:  # over a cap: again, declaring the sessions it may remove
            others = [v.decode() if isinstance(v, bytes) else v for v in reply[1]]
            scores = list(reply[2])
            keys += self._keys(session_id, *others)[5:]
            args = (f"{head} {len(scores)} {ends}", payload, *scores, *tail)
            reply = await self._run("entries_write", keys, args)
        status = int(reply[0])
        if status < 0:
            raise PayloadTooLarge(size, lim.max_memory or 0)
        if status == 0:
            return None
        return int(reply[3])

    async def read_entries(
        self,
        session_id: str,
        *,
        prefix: bytes = b"",
        latest_group: bool = False,
        renew: bool = True,
    ) -> StoredEntries | None:
        lim = self.limits
        head = f"{lim.ttl_us} {lim.lifetime_us} {int(latest_group)} {int(renew)} {session_id}"
        args = (head, prefix)
        reply = await self._run("entries_read", self._keys(session_id), args)
        if not reply:
            return None
        flat = reply[3]
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
        return StoredEntries(pairs, int(reply[0]), int(reply[1]), int(reply[2]))

    async def session_ids(self, prefix: str) -> list[str]:
        lim = self.limits
        pattern = _GLOB.sub(lambda found: "\\" + found.group(), prefix) + "*"
        found: set[str] = set()  # a scan may return an id twice
        cursor: Any = 0
        while True:
            args = (lim.ttl_us, lim.lifetime_us, cursor, pattern, _SCAN_COUNT)
            cursor, ids = await self._run("entries_ids", list(self.index_keys), args)
            found.update(i.decode() if isinstance(i, bytes) else i for i in ids)
            if int(cursor) == 0:
                return sorted(found)
