"""Shared records: small field maps that belong to sessions without being sessions.

A record (the ``app:`` or ``user:`` state of ADK, the registry of an app's sessions, a
session's own state kept field by field) is a map of fields, written field by field in
the same atomic script as an item append, so two writers never lose each other's
fields. Each record lists its *owners*: the sessions that wrote themselves into it, each
with a value (what the registry shows). A record:

- is not a session: it never counts toward ``max_sessions``, is never picked by LRU
  eviction, and has no TTL of its own;
- lives as long as any of its owners: cleanup drops owners that are no longer live
  sessions and removes a record none of whose owners lives;
- counts in the namespace's accounted bytes (``record_bytes``); a write that grows a
  record makes no room for it by itself: the next write or cleanup evicts if needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RECORD_OVERHEAD_BYTES = 80
"""Cost of a record's two hashes (fields, owners) besides their names: key objects and
listpack headers, 40 bytes each."""

FIELD_OVERHEAD_BYTES = 4
"""Per-entry cost in a small hash (listpack headers of name and value) besides the bytes.

Fitted against Valkey 8 ``MEMORY USAGE`` for hashes of 1..30 entries: within 8 % while
every value is at most 64 bytes (listpack encoding); a longer value turns the hash into
a hash table, which this under-estimates by up to a third."""


@dataclass(frozen=True)
class RecordWrite:
    """What one write does to one record: ``reset`` empties it first, ``fields`` are set,
    and with ``owner`` not ``None`` the writing session is listed among its owners."""

    record_id: str
    fields: Mapping[str, bytes] = field(default_factory=dict)
    owner: bytes | None = None
    reset: bool = False


@dataclass(frozen=True)
class StoredRecord:
    """A record as read: its fields and, when asked for, its owners (session id ->
    value; the owners of an app's record are all its sessions, so reads skip them)."""

    fields: dict[str, bytes] = field(default_factory=dict)
    owners: dict[str, bytes] = field(default_factory=dict)


def entry_bytes(name: str, value: bytes) -> int:
    """What one field or owner entry adds to its record's accounted bytes."""
    return len(name.encode()) + len(value) + FIELD_OVERHEAD_BYTES


def record_bytes(keys_length: int, record: StoredRecord) -> int:
    """The accounted bytes of a record whose two hashes' names are ``keys_length`` long."""
    entries = [*record.fields.items(), *record.owners.items()]
    return RECORD_OVERHEAD_BYTES + keys_length + sum(entry_bytes(n, v) for n, v in entries)
