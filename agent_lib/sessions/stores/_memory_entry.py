"""One session of `MemoryStore`: its payload, times, version, items and accounted bytes.

Its own module so that `memory` and `_memory_items` both import it and neither imports
the other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent_lib.sessions.stores.items import items_part


@dataclass
class _Entry:
    payload: bytes
    created_us: int
    last_us: int
    size: int
    """Accounted bytes: the payload's estimate plus `item_part`."""
    version: int = 1
    items: deque[bytes] = field(default_factory=deque)
    item_sum: int = 0
    """Each item's length plus its overhead, summed."""

    @property
    def item_part(self) -> int:
        """What the items add to `size` (the list's own overhead while it has any)."""
        return items_part(self.item_sum, len(self.items))

    @property
    def data_size(self) -> int:
        """What the payload alone accounts for."""
        return self.size - self.item_part
