"""Item lists beside sessions: the store half of conversation history.

A session may carry an ordered list of items (the turns of a conversation, the events
of an ADK session) next to its payload. The list lives under the session's own hash
tag, its bytes count in the session's size (so ``max_memory`` and LRU eviction see
them), and it goes whenever the session goes: delete, expiry, lifetime, eviction.

Accounting, the same on every store: a session's size is its payload's estimate (the
``size`` a write passes) plus `items_part` of its items; ``update`` replaces only the
payload's part, a pop takes off exactly what the append added, and no size goes below
zero. ``limit`` of a read: ``None``, negative or at least the list's length means every
item, ``0`` none (as the Agents SDK's ``SQLiteSession``).
Each call is one atomic round trip (two when an append must make room under a cap, as
for ``create``); reading the newest ``limit`` items costs O(limit). Appending and popping
are data writes: each increments the session's version, as ``update`` does.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent_lib.sessions.stores.records import RecordWrite, StoredRecord

ITEM_OVERHEAD_BYTES = 11
"""Per-item cost in a Redis list (listpack entry header and backlen) besides its bytes."""

LIST_OVERHEAD_BYTES = 96
"""Cost of the list key itself (key object, quicklist header, first node), accounted once."""

ALREADY_STORED = -1
"""What `ItemStore.append_items` returns when ``skip_stored`` found the item stored."""


@dataclass(frozen=True)
class StoredItems:
    """What a read returns: the newest items (oldest first), the payload (without the
    stored value's header) if asked, times (us) and the session's version."""

    items: list[bytes]
    payload: bytes | None
    created_us: int
    last_access_us: int
    version: int = 0
    records: dict[str, StoredRecord] = field(default_factory=dict)
    """The records asked for that exist (see ``stores.records``)."""


class ItemStore(abc.ABC):
    """The item-list half of a store (`MemoryStore` and `RedisStore` implement it)."""

    @abc.abstractmethod
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
        """Append ``items``, creating the session with ``payload`` if it does not exist;
        ``size`` is the payload's estimate alone (the store adds `items_part`).
        ``replace_payload`` also stores ``payload`` on a live session. Returns the list's
        new length, or ``None`` when ``must_exist`` and the session does not exist.
        Raises `PayloadTooLarge` when the session alone would exceed ``max_memory``.

        In the same atomic step: ``must_not_exist`` raises `SessionExistsError` when the
        id is a live session (this call's own write, retried after a lost reply, is not
        one); ``records`` are written, the session listed as their owner where asked;
        ``skip_stored`` changes nothing and returns `ALREADY_STORED` when the first item
        is already in the list (an event appended twice). Nothing is written unless the
        whole call succeeds."""

    @abc.abstractmethod
    async def read_items(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        with_payload: bool = False,
        renew: bool = True,
        records: Sequence[str] = (),
    ) -> StoredItems | None:
        """The newest ``limit`` items (all for ``None``, a negative limit or one past the
        length), renewing the session unless ``renew`` is false; ``None`` when the session
        does not exist (any more). ``records``: the records whose fields to read in the
        same step."""

    @abc.abstractmethod
    async def read_records(
        self, record_ids: Sequence[str], *, owners: bool = False
    ) -> dict[str, StoredRecord]:
        """The records of ``record_ids`` that exist (their owners too with ``owners``),
        renewing nothing."""

    @abc.abstractmethod
    async def pop_item(self, session_id: str) -> bytes | None:
        """Remove and return the newest item; ``None`` when there is none."""


def item_bytes(items: Sequence[bytes]) -> int:
    """What ``items`` add to their session's accounted size."""
    return sum(len(item) + ITEM_OVERHEAD_BYTES for item in items)


def items_part(item_sum: int, length: int) -> int:
    """What a list of ``length`` items whose `item_bytes` are ``item_sum`` adds to its
    session's size: the list's own overhead counts while the list has any item (Redis
    removes an empty list)."""
    return item_sum + LIST_OVERHEAD_BYTES if length > 0 else 0
