"""Sessions in this process: the embedded default for local runs and agent tests.

Same rules as the Redis store (sliding TTL, absolute lifetime, LRU eviction over
``max_sessions`` / ``max_memory``, the same size estimates), kept in two ordered
dicts: one in last-access order (which, with one TTL for all, is also idle-deadline
order) and one in creation order (lifetime order). Expired sessions vanish from
reads at once; a background sweeper task frees their memory, like Redis' own expiry
plus the cleanup CronJob would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import islice

from agent_lib.errors import ConfigError, PayloadTooLarge, SessionConflict
from agent_lib.sessions import _loops
from agent_lib.sessions.stores._memory_entries import MemoryEntries
from agent_lib.sessions.stores._memory_entry import _Entry
from agent_lib.sessions.stores._memory_items import MemoryItems
from agent_lib.sessions.stores._memory_records import _Record
from agent_lib.sessions.stores.base import (
    WRITE_EVICTION_BUDGET,
    Accounted,
    CleanupReport,
    Limits,
    SessionExistsError,
    SessionStore,
    StoredSession,
)

DEFAULT_SWEEP_INTERVAL_S = 30.0


def _wall_us() -> int:
    return time.time_ns() // 1_000


@_loops.thread_safe
class MemoryStore(MemoryItems, MemoryEntries, SessionStore):
    """One namespace of sessions in a dict; safe to share between loops and threads."""

    def __init__(
        self,
        *,
        namespace: str = "default",
        limits: Limits,
        sweep_interval: float | None = DEFAULT_SWEEP_INTERVAL_S,
        clock_us: Callable[[], int] = _wall_us,
    ) -> None:
        self.namespace = namespace
        self.limits = limits
        self.sweep_interval = sweep_interval
        self._clock = clock_us
        self._by_access: OrderedDict[str, _Entry] = OrderedDict()
        self._by_birth: OrderedDict[str, None] = OrderedDict()
        self._records: dict[str, _Record] = {}
        self._total = 0
        self._by_writes: tuple[int, int, int] = (0, 0, 0)  # evicted, dropped dead, bytes
        self._sweeper: asyncio.Task[None] | None = None
        self._lock = threading.RLock()  # see `_loops.thread_safe`

    def key_for(self, session_id: str) -> str:
        """The key the session would have in Redis under the default prefix: sizes are
        estimated from its length, so both stores account the same bytes."""
        return f"hourglass:{{hourglass:{self.namespace}}}:s:{session_id}"

    @property
    def total_bytes(self) -> int:
        """The estimated bytes accounted against ``max_memory``."""
        return self._total

    async def accounted(self) -> Accounted:
        """The bytes accounted against ``max_memory``: the running total and each indexed
        session's figure (as `RedisStore.accounted`)."""
        sizes = {sid: e.size for sid, e in self._by_access.items()}
        return Accounted(self._total, sizes, {rid: r.size for rid, r in self._records.items()})

    def _start_sweeper(self) -> None:
        if self.sweep_interval and not _loops.running(self._sweeper):
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        assert self.sweep_interval
        while True:
            await asyncio.sleep(self.sweep_interval)
            await self.cleanup()

    def _dead(self, entry: _Entry, now: int) -> bool:
        lim = self.limits
        if entry.last_us + lim.ttl_us <= now:
            return True
        return bool(lim.lifetime_us) and entry.created_us + lim.lifetime_us <= now

    def _live(self, session_id: str, now: int) -> _Entry | None:
        entry = self._by_access.get(session_id)
        if entry is None:
            return None
        if self._dead(entry, now):
            self._remove(session_id)
            return None
        return entry

    def _remove(self, session_id: str) -> int:
        entry = self._by_access.pop(session_id, None)
        if entry is None:
            return 0
        self._by_birth.pop(session_id, None)
        self._total -= entry.size
        return entry.size

    def _renew(self, session_id: str, entry: _Entry, now: int) -> None:
        entry.last_us = now
        self._by_access.move_to_end(session_id)

    def _make_room(
        self, adding: int, extra: int, keep: str | None, budget: int
    ) -> tuple[int, int, int]:
        """Make ``adding`` more sessions and ``extra`` more bytes fit, examining at most
        ``budget`` sessions: dead ones (idle past the TTL, past the lifetime) go first and
        count as expired, never costing a live session its place; then the least
        recently used are evicted. What is left over a cap is left to cleanup."""
        lim = self.limits
        now = self._clock()

        def over() -> bool:
            if lim.max_sessions and len(self._by_access) + adding > lim.max_sessions:
                return True
            return bool(lim.max_memory) and self._total + extra > (lim.max_memory or 0)

        evicted = dropped = freed = 0
        if not over():
            return 0, 0, 0
        dead = []
        if lim.lifetime_us:
            for session_id in islice(self._by_birth, budget):
                if self._by_access[session_id].created_us + lim.lifetime_us > now:
                    break
                dead.append(session_id)
        for session_id, entry in islice(self._by_access.items(), budget - len(dead)):
            if entry.last_us + lim.ttl_us > now:
                break
            dead.append(session_id)
        for session_id in dead:
            if session_id in self._by_access and session_id != keep:
                freed += self._remove(session_id)
                dropped += 1
        budget -= len(dead)
        for session_id in list(islice(self._by_access, max(budget, 0) + 1)):
            if budget <= 0 or not over():
                break
            if session_id == keep:
                continue
            freed += self._remove(session_id)
            evicted += 1
            budget -= 1
        return evicted, dropped, freed

    def _note(self, removed: tuple[int, int, int]) -> None:
        """Keep write-time removals for the next cleanup report, as the Redis store does."""
        evicted, dropped, freed = self._by_writes
        self._by_writes = (evicted + removed[0], dropped + removed[1], freed + removed[2])

    async def create(self, session_id: str, payload: bytes, size: int) -> StoredSession:
        self._start_sweeper()
        now = self._clock()
        if self._live(session_id, now) is not None:
            raise SessionExistsError()
        if self.limits.max_memory and size > self.limits.max_memory:
            raise PayloadTooLarge(size, self.limits.max_memory)
        self._note(self._make_room(1, size, None, WRITE_EVICTION_BUDGET))
        self._by_access[session_id] = _Entry(payload, now, now, size)
        self._by_birth[session_id] = None
        self._total += size
        return StoredSession(payload, now, now, 1)

    async def get(self, session_id: str) -> StoredSession | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        self._renew(session_id, entry, now)
        return StoredSession(entry.payload, entry.created_us, now, entry.version)

    async def touch(self, session_id: str) -> bool:
        return await self.get(session_id) is not None

    async def update(
        self, session_id: str, payload: bytes, size: int, if_version: int | None = None
    ) -> StoredSession | None:
        now = self._clock()
        entry = self._live(session_id, now)
        if entry is None:
            return None
        if if_version is not None and if_version != entry.version:
            raise SessionConflict(session_id, if_version, entry.version)
        new_size = size + entry.item_part  # the items stay, and so do their bytes
        if self.limits.max_memory and new_size > self.limits.max_memory:
            raise PayloadTooLarge(new_size, self.limits.max_memory)
        self._note(self._make_room(0, new_size - entry.size, session_id, WRITE_EVICTION_BUDGET))
        self._total += new_size - entry.size
        entry.payload, entry.size = payload, new_size
        entry.version += 1
        self._renew(session_id, entry, now)
        return StoredSession(payload, entry.created_us, now, entry.version)

    async def delete(self, session_id: str) -> bool:
        live = self._live(session_id, self._clock()) is not None
        self._remove(session_id)
        return live

    async def count(self) -> int:
        now = self._clock()
        return sum(1 for entry in self._by_access.values() if not self._dead(entry, now))

    async def cleanup(
        self,
        *,
        batch_size: int = 500,
        max_batches: int | None = None,
        dry_run: bool = False,
        verify: bool = False,
    ) -> CleanupReport:
        """Remove what is due in batches, yielding to the loop between batches."""
        if batch_size < 1:
            raise ConfigError("batchSize", f"must be at least 1, got {batch_size}")
        started = time.perf_counter()
        report = CleanupReport(dry_run=dry_run)
        if dry_run:
            self._estimate(report)
        else:
            report.evicted, report.expired, report.bytes_freed = self._by_writes
            self._by_writes = (0, 0, 0)
            while True:
                batch, done = self._cleanup_batch(batch_size)
                report.add(batch)
                if done:
                    break
                if max_batches is not None and report.batches >= max_batches:
                    report.complete = False
                    break
                await asyncio.sleep(0)
            now = self._clock()
            records, freed = self._compact_records(lambda sid: self._live(sid, now) is not None)
            report.bytes_freed += freed
            if records:
                report.extra["records_removed"] = records
        report.duration_s = time.perf_counter() - started
        return report

    def _cleanup_batch(self, budget: int) -> tuple[CleanupReport, bool]:
        now = self._clock()
        lim = self.limits
        batch = CleanupReport(batches=1)
        for session_id, entry in list(islice(self._by_access.items(), budget)):
            if entry.last_us + lim.ttl_us > now:
                break
            batch.bytes_freed += self._remove(session_id)
            batch.expired += 1
        if lim.lifetime_us:
            for session_id in list(islice(self._by_birth, budget - batch.expired)):
                entry = self._by_access[session_id]
                if entry.created_us + lim.lifetime_us > now:
                    break
                batch.bytes_freed += self._remove(session_id)
                batch.lifetime_ended += 1
        left = budget - batch.expired - batch.lifetime_ended
        batch.evicted, dropped, freed = self._make_room(0, 0, None, left)
        batch.expired += dropped
        batch.bytes_freed += freed
        batch.scanned = batch.expired + batch.lifetime_ended + batch.evicted
        return batch, batch.scanned < budget

    def _estimate(self, report: CleanupReport) -> None:
        now = self._clock()
        lim = self.limits
        live = 0
        for entry in self._by_access.values():
            report.scanned += 1
            if entry.last_us + lim.ttl_us <= now:
                report.expired += 1
            elif self._dead(entry, now):
                report.lifetime_ended += 1
            else:
                live += 1
                continue
            report.bytes_freed += entry.size
        if lim.max_sessions and live > lim.max_sessions:
            report.evicted = live - lim.max_sessions

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        await _loops.stop(sweeper)
