"""Named entries beside sessions: binary values looked up by name and by name prefix.

The other form of a session's items (``stores.items`` keeps an ordered list): a set of
``name -> value`` entries, sorted by name, where a write puts and drops entries and a
read takes every entry under a name prefix, or only the newest *group* under it. It is
what LangGraph's checkpointer needs (``agent_lib.integrations.langgraph``): a thread's
checkpoints and pending writes, binary, the newest found without reading the rest, old
ones removed by prefix.

A session holds an item list or entries, never both (on Redis both live in the
session's item key, ``...:i:<id>``, a sorted set for entries), so everything said of
item lists holds: same hash tag, no TTL of its own, removed with the session
(delete, expiry, lifetime, eviction, cleanup) in the same atomic step, bytes counted in
the session's size through the same item part. An entry costs ``len(name) + 1 +
len(value) + ENTRY_OVERHEAD_BYTES``, the set ``SET_OVERHEAD_BYTES`` while it holds any;
a replaced or dropped entry takes off exactly what it added.

Names are bytes without ``NUL`` (the separator of name and value in the stored member)
and without ``0xff`` (the upper bound of a prefix range; UTF-8 never holds it). A
group of a name under a prefix is the name up to and including its first
``GROUP_END`` after the prefix.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from agent_lib.sessions.stores.records import RecordWrite

ENTRY_OVERHEAD_BYTES = 24
"""Per-entry cost in a Redis sorted set (skiplist node, dict entry, score) besides its bytes."""

SET_OVERHEAD_BYTES = 96
"""Cost of the set key itself (key object, dict and skiplist headers), accounted once."""

GROUP_END = b"\x1f"
"""Ends a group (see the module's docstring)."""


@dataclass(frozen=True)
class EntryPut:
    """One entry a write stores; with ``replace`` false an existing entry of that name
    is kept (the first write wins)."""

    name: bytes
    value: bytes
    replace: bool = True


@dataclass(frozen=True)
class StoredEntries:
    """What a read returns: ``(name, value)`` pairs in name order, times (us), version."""

    entries: list[tuple[bytes, bytes]]
    created_us: int
    last_access_us: int
    version: int = 0


class EntryStore(abc.ABC):
    """The entry half of a store (`MemoryStore` and `RedisStore` implement it)."""

    @abc.abstractmethod
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
        """In one atomic step: remove every entry whose name starts with one of ``drop``,
        then store ``puts`` (distinct names), creating the session with ``payload`` if it
        does not exist (``size`` is the payload's estimate alone), and write ``records``
        as `ItemStore.append_items` does (with ``records_on_create``, only when this
        write creates the session: a registration, kept while the session lives). A data
        write: the version goes up by one. Returns how many entries the session holds, or
        ``None`` when ``must_exist`` and the session does not exist (then nothing is
        written). Raises `PayloadTooLarge` when the session alone would exceed
        ``max_memory``."""

    @abc.abstractmethod
    async def read_entries(
        self,
        session_id: str,
        *,
        prefix: bytes = b"",
        latest_group: bool = False,
        renew: bool = True,
    ) -> StoredEntries | None:
        """The entries whose names start with ``prefix``, or with ``latest_group`` only
        those of the newest group under it (none when no name under it has a
        `GROUP_END`); renews the session unless ``renew`` is false. ``None`` when the
        session does not exist (any more)."""

    @abc.abstractmethod
    async def session_ids(self, prefix: str) -> list[str]:
        """The ids of the live sessions whose id starts with ``prefix``, sorted: how an
        integration finds its own sessions without a registry written on each call.
        Cost grows with the namespace's sessions (a scan), so not for a hot path."""


def entry_cost(name: bytes, value: bytes) -> int:
    """What one entry adds to its session's accounted size."""
    return len(name) + 1 + len(value) + ENTRY_OVERHEAD_BYTES


def entries_part(entry_sum: int, count: int) -> int:
    """What ``count`` entries whose `entry_cost` sum to ``entry_sum`` add to the size."""
    return entry_sum + SET_OVERHEAD_BYTES if count > 0 else 0


def check_names(puts: Sequence[EntryPut], drop: Sequence[bytes]) -> None:
    """Refuse names a store cannot keep (see the module's docstring), and a write that
    puts one name twice; ``ValueError`` names the reason. `SessionEntries` checks every
    call once; stores trust their caller, as they do with ids and payloads."""
    names = [put.name for put in puts]
    for name in (*names, *drop):
        if b"\0" in name or b"\xff" in name:
            raise ValueError(f"entry name {name[:40]!r} holds a NUL or 0xff byte")
    if len(names) > 1 and len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise ValueError(f"entry name {twice[:40]!r} is put twice in one write")


def group_of(name: bytes, prefix: bytes) -> bytes | None:
    """The group of ``name`` under ``prefix``, ``None`` when it has none."""
    end = name.find(GROUP_END, len(prefix))
    return None if end < 0 else name[: end + 1]
