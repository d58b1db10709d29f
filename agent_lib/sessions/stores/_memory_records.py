"""Shared records (``stores.records``) for `MemoryStore`: a dict of field maps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agent_lib.sessions.stores.records import (
    RecordWrite,
    StoredRecord,
    entry_bytes,
    record_bytes,
)


@dataclass
class _Record:
    fields: dict[str, bytes] = field(default_factory=dict)
    owners: dict[str, bytes] = field(default_factory=dict)
    size: int = 0

    def stored(self, owners: bool) -> StoredRecord:
        return StoredRecord(dict(self.fields), dict(self.owners) if owners else {})


class MemoryRecords:
    """Mixed into `MemoryStore`; the same accounting as the Redis scripts."""

    namespace: str
    _records: dict[str, _Record]
    _total: int

    def record_key_for(self, record_id: str) -> str:
        """The key of the record's fields in Redis under the default prefix (its owners'
        has a name of the same length)."""
        return f"hourglass:{{hourglass:{self.namespace}}}:r:{record_id}"

    def _write_records(self, session_id: str, writes: Sequence[RecordWrite]) -> None:
        for write in writes:
            record = self._records.get(write.record_id)
            if write.reset and record is not None:
                self._drop_record(write.record_id)
                record = None
            if not write.fields and write.owner is None:
                continue
            if record is None:
                key = 2 * len(self.record_key_for(write.record_id))
                record = self._records[write.record_id] = _Record(size=record_bytes(key, _EMPTY))
                self._total += record.size
            had = record.size
            for name, value in write.fields.items():
                record.size += _put(record.fields, name, value)
            if write.owner is not None:
                record.size += _put(record.owners, session_id, write.owner)
            self._total += record.size - had

    def _read_records(
        self, record_ids: Iterable[str], owners: bool = False
    ) -> dict[str, StoredRecord]:
        found = {rid: self._records.get(rid) for rid in record_ids}
        return {rid: r.stored(owners) for rid, r in found.items() if r is not None}

    def _drop_record(self, record_id: str) -> int:
        record = self._records.pop(record_id, None)
        if record is None:
            return 0
        self._total = max(0, self._total - record.size)
        return record.size

    def _compact_records(self, live: Callable[[str], bool]) -> tuple[int, int]:
        """Drop owners that are not ``live`` sessions and records left without a live
        owner; returns the records removed and the bytes freed."""
        removed = freed = 0
        for record_id, record in list(self._records.items()):
            dead = [sid for sid in record.owners if not live(sid)]
            for sid in dead:
                lost = entry_bytes(sid, record.owners.pop(sid))
                record.size -= lost
                self._total -= lost
                freed += lost
            if not record.owners:
                freed += self._drop_record(record_id)
                removed += 1
        return removed, freed


_EMPTY = StoredRecord()


def _put(entries: dict[str, bytes], name: str, value: bytes) -> int:
    """Set one entry; returns how its record's bytes changed."""
    old = entries.get(name)
    entries[name] = value
    return entry_bytes(name, value) - (0 if old is None else entry_bytes(name, old))
