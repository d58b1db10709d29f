"""`ItemStore` for `MemoryStore`: each entry keeps its items in a deque."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import TYPE_CHECKING

from agent_lib.errors import PayloadTooLarge
from agent_lib.sessions.stores._memory_entry import _Entry
from agent_lib.sessions.stores._memory_records import MemoryRecords
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits, SessionExistsError
from agent_lib.sessions.stores.items import (
    ALREADY_STORED,
    ItemStore,
    StoredItems,
    item_bytes,
    items_part,
)
from agent_lib.sessions.stores.records import RecordWrite, StoredRecord

if TYPE_CHECKING:
    from collections import OrderedDict


class MemoryItems(MemoryRecords, ItemStore):
    """Mixed into `MemoryStore`: the same rules as the Redis scripts, in process (item
    writes bump the version; a write examines at most ``WRITE_EVICTION_BUDGET`` sessions)."""

    limits: Limits
    _clock: Callable[[], int]
    _by_access: OrderedDict[str, _Entry]
    _by_birth: OrderedDict[str, None]
    _total: int

    if TYPE_CHECKING:

        def _live(self, session_id: str, now: int) -> _Entry | None: ...
        def _renew(self, session_id: str, entry: _Entry, now: int) -> None: ...
        def _make_room(
            self, adding: int, extra: int, keep: str | None, budget: int
        ) -> tuple[int, int, int]: ...
        def _note(self, removed: tuple[int, int, int]) -> None: ...
        def _start_sweeper(self) -> None: ...

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
        self._start_sweeper()
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None and must_exist:
            return None
        if entry is not None and must_not_exist:
            raise SessionExistsError()
        if entry is not None and skip_stored and items and items[0] in entry.items:
            return ALREADY_STORED
        added = item_bytes(items)
        length = (0 if entry is None else len(entry.items)) + len(items)
        item_sum = (0 if entry is None else entry.item_sum) + added
        data = size if entry is None or replace_payload or must_exist else entry.data_size
        had = 0 if entry is None else entry.size
        new_size = data + items_part(item_sum, length)
        cap = self.limits.max_memory
        if cap and new_size > cap:
            raise PayloadTooLarge(new_size, cap)
        if entry is None:
            self._note(self._make_room(1, new_size, None, WRITE_EVICTION_BUDGET))
            entry = _Entry(payload, now, now, 0)
            self._by_access[session_id] = entry
            self._by_birth[session_id] = None
        else:
            self._note(self._make_room(0, new_size - had, session_id, WRITE_EVICTION_BUDGET))
            if replace_payload or must_exist:
                entry.payload = payload
            entry.version += 1
            self._renew(session_id, entry, now)
        entry.items.extend(items)
        entry.item_sum = item_sum
        entry.size = new_size
        self._total += new_size - had
        self._write_records(session_id, records)
        return len(entry.items)

    async def read_items(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        with_payload: bool = False,
        renew: bool = True,
        records: Sequence[str] = (),
    ) -> StoredItems | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        if renew:
            self._renew(session_id, entry, now)
        else:
            now = entry.last_us
        items = entry.items
        if limit is None or limit < 0 or limit >= len(items):
            chosen = list(items)
        elif limit == 0:
            chosen = []
        else:
            chosen = list(islice(reversed(items), limit))[::-1]
        payload = entry.payload if with_payload else None
        found = self._read_records(records)
        return StoredItems(chosen, payload, entry.created_us, now, entry.version, found)

    async def read_records(
        self, record_ids: Sequence[str], *, owners: bool = False
    ) -> dict[str, StoredRecord]:
        return self._read_records(record_ids, owners)

    async def pop_item(self, session_id: str) -> bytes | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        self._renew(session_id, entry, now)
        if not entry.items:
            return None
        had, data = entry.size, entry.data_size
        item = entry.items.pop()
        entry.version += 1
        entry.item_sum = max(0, entry.item_sum - item_bytes([item]))
        entry.size = max(0, data) + entry.item_part
        self._total = max(0, self._total + entry.size - had)
        return item
