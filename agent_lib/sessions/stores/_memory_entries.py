"""`EntryStore` for `MemoryStore`: each session keeps its entries in a dict by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agent_lib.errors import PayloadTooLarge, SessionError
from agent_lib.sessions.stores._memory_entry import _Entry
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits
from agent_lib.sessions.stores.entries import (
    EntryPut,
    EntryStore,
    StoredEntries,
    entries_part,
    entry_cost,
    group_of,
)
from agent_lib.sessions.stores.records import RecordWrite

if TYPE_CHECKING:
    from collections import OrderedDict


class MemoryEntries(EntryStore):
    """Mixed into `MemoryStore`: the rules of ``entries_write.lua``/``entries_read.lua``."""

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
        def _write_records(self, session_id: str, records: Sequence[RecordWrite]) -> None: ...
        def _dead(self, entry: _Entry, now: int) -> bool: ...

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
        self._start_sweeper()
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None and must_exist:
            return None
        if entry is not None and entry.items:
            raise SessionError(f"session store error: {session_id} holds an item list")
        entries = {} if entry is None else dict(entry.entries)
        for name in [n for n in entries if n.startswith(tuple(drop))] if drop else []:
            del entries[name]
        for put in puts:
            if put.replace or put.name not in entries:
                entries[put.name] = put.value
        entry_sum = sum(entry_cost(n, v) for n, v in entries.items())
        data = size if entry is None else entry.data_size
        had = 0 if entry is None else entry.size
        new_size = data + entries_part(entry_sum, len(entries))
        cap = self.limits.max_memory
        if cap and new_size > cap:
            raise PayloadTooLarge(new_size, cap)
        created = entry is None
        if entry is None:
            self._note(self._make_room(1, new_size, None, WRITE_EVICTION_BUDGET))
            entry = _Entry(payload, now, now, 0)
            self._by_access[session_id] = entry
            self._by_birth[session_id] = None
        else:
            self._note(self._make_room(0, new_size - had, session_id, WRITE_EVICTION_BUDGET))
            entry.version += 1
            self._renew(session_id, entry, now)
        entry.entries = entries
        entry.entry_sum = entry_sum
        entry.size = new_size
        self._total += new_size - had
        if created or not records_on_create:
            self._write_records(session_id, records)
        return len(entries)

    async def read_entries(
        self,
        session_id: str,
        *,
        prefix: bytes = b"",
        latest_group: bool = False,
        renew: bool = True,
    ) -> StoredEntries | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        if entry.items:
            raise SessionError(f"session store error: {session_id} holds an item list")
        if renew:
            self._renew(session_id, entry, now)
        else:
            now = entry.last_us
        names = sorted(n for n in entry.entries if n.startswith(prefix))
        if latest_group:
            group = group_of(names[-1], prefix) if names else None
            names = [] if group is None else [n for n in names if n.startswith(group)]
        found = [(name, entry.entries[name]) for name in names]
        return StoredEntries(found, entry.created_us, now, entry.version)

    async def session_ids(self, prefix: str) -> list[str]:
        now = self._clock()
        return sorted(
            sid
            for sid, entry in self._by_access.items()
            if sid.startswith(prefix) and not self._dead(entry, now)
        )
