"""`ItemStore` for `MemoryStore`: each entry keeps its items in a deque."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import TYPE_CHECKING

from agent_lib.errors import PayloadTooLarge
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits
from agent_lib.sessions.stores.items import ItemStore, StoredItems, item_bytes

if TYPE_CHECKING:
    from collections import OrderedDict

    from agent_lib.sessions.stores.memory import _Entry


class MemoryItems(ItemStore):
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
    ) -> int | None:
        from agent_lib.sessions.stores.memory import _Entry

        self._start_sweeper()
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None and must_exist:
            return None
        replace_payload = replace_payload or must_exist
        added = item_bytes(items)
        if entry is None:
            grow = size + added
        elif replace_payload:
            grow = added + size - (entry.size - entry.item_bytes)
        else:
            grow = added
        had = entry.size if entry else 0
        cap = self.limits.max_memory
        if cap and had + grow > cap:
            raise PayloadTooLarge(size, cap)
        if entry is None:
            self._note(self._make_room(1, grow, None, WRITE_EVICTION_BUDGET))
            entry = _Entry(payload, now, now, 0)
            self._by_access[session_id] = entry
            self._by_birth[session_id] = None
        else:
            self._note(self._make_room(0, grow, session_id, WRITE_EVICTION_BUDGET))
            if replace_payload:
                entry.payload = payload
            entry.version += 1
            self._renew(session_id, entry, now)
        entry.items.extend(items)
        entry.item_bytes += added
        entry.size += grow
        self._total += grow
        return len(entry.items)

    async def read_items(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        with_payload: bool = False,
        renew: bool = True,
    ) -> StoredItems | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        if renew:
            self._renew(session_id, entry, now)
        else:
            now = entry.last_us
        items: deque[bytes] = entry.items
        if limit is None:
            chosen = list(items)
        elif limit <= 0:
            chosen = []
        else:
            chosen = list(islice(reversed(items), limit))[::-1]
        payload = entry.payload if with_payload else None
        return StoredItems(chosen, payload, entry.created_us, now, entry.version)

    async def pop_item(self, session_id: str) -> bytes | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        self._renew(session_id, entry, now)
        if not entry.items:
            return None
        item = entry.items.pop()
        entry.version += 1
        freed = item_bytes([item])
        entry.item_bytes -= freed
        entry.size -= freed
        self._total -= freed
        return item
