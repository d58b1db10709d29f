"""One session of `MemoryStore`: its payload, times, version, items or entries, and
accounted bytes.

Its own module so that `memory` and `_memory_items` both import it and neither imports
the other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent_lib.sessions.stores.entries import entries_part
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
    entries: dict[bytes, bytes] = field(default_factory=dict)
    """Named entries (``stores.entries``), name -> value; a session has these or items."""
    entry_sum: int = 0
    """Each entry's `entry_cost`, summed."""

    @property
    def item_part(self) -> int:
        """What the items or entries add to `size` (with their container's overhead)."""
        return items_part(self.item_sum, len(self.items)) + entries_part(
            self.entry_sum, len(self.entries)
        )

    @property
    def data_size(self) -> int:
        """What the payload alone accounts for."""
        return self.size - self.item_part
