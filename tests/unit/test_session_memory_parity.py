"""The in-process store keeps the Redis store's new rules: live-only caps, versions,
conflicts, `SessionExists` for equal data, and write-time removals reported by cleanup."""

from __future__ import annotations

import pytest

from agent_lib import SessionConflict, SessionExists
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits
from agent_lib.sessions.stores.memory import MemoryStore
from tests.unit.test_session_memory_store import FakeClock


def _manager(clock: FakeClock, **limits: object) -> SessionManager:
    store = MemoryStore(limits=Limits(**limits), sweep_interval=None, clock_us=clock)  # type: ignore[arg-type]
    return SessionManager(store)


async def test_a_dead_recent_session_does_not_evict_a_live_one() -> None:
    clock = FakeClock()
    async with _manager(clock, ttl_s=60, max_lifetime_s=1.2, max_sessions=3) as sm:
        a = await sm.create({"n": 0})
        clock.advance(0.6)
        b, c = await sm.create({"n": 1}), await sm.create({"n": 2})
        clock.advance(0.2)
        assert await sm.touch(a.id)
        clock.advance(0.6)  # A is past its lifetime, yet the most recently used
        d = await sm.create({"n": 3})
        assert [await sm.get(s.id) is not None for s in (b, c, d)] == [True] * 3
        report = await sm.cleanup()
        assert (report.evicted, report.expired) == (0, 1)


async def test_versions_and_conflicts() -> None:
    async with _manager(FakeClock(), ttl_s=60) as sm:
        session = await sm.create({"n": 0}, session_id="same")
        assert session.version == 1
        with pytest.raises(SessionExists):
            await sm.create({"n": 0}, session_id="same")
        assert (await sm.update("same", {"n": 1}, if_version=1)).version == 2
        with pytest.raises(SessionConflict):
            await sm.update("same", {"n": 2}, if_version=1)
        done = await sm.mutate("same", lambda d: {"n": d["n"] + 1})
        assert done.data == {"n": 2} and done.version == 3


async def test_one_write_evicts_a_bounded_batch_and_cleanup_the_rest() -> None:
    clock = FakeClock()
    store = MemoryStore(limits=Limits(ttl_s=60), sweep_interval=None, clock_us=clock)
    loose = SessionManager(store)
    for i in range(200):
        await loose.create({"i": i})
    tight_store = MemoryStore(
        limits=Limits(ttl_s=60, max_sessions=10), sweep_interval=None, clock_us=clock
    )
    tight_store._by_access, tight_store._by_birth = store._by_access, store._by_birth
    tight_store._total = store._total
    tight = SessionManager(tight_store)
    await tight.create({"new": True})
    assert await tight.count() >= 201 - WRITE_EVICTION_BUDGET
    report = await tight.cleanup(batch_size=50)
    assert await tight.count() == 10 and report.evicted == 201 - 10


async def test_an_append_evicts_a_bounded_batch_and_bumps_the_version() -> None:
    from agent_lib.sessions.items import SessionItems

    clock = FakeClock()
    store = MemoryStore(limits=Limits(ttl_s=60), sweep_interval=None, clock_us=clock)
    loose = SessionItems(SessionManager(store))
    for i in range(100):
        await loose.append(f"c{i}", [{"i": i}])
    tight_store = MemoryStore(
        limits=Limits(ttl_s=60, max_sessions=10), sweep_interval=None, clock_us=clock
    )
    tight_store._by_access, tight_store._by_birth = store._by_access, store._by_birth
    tight_store._total = store._total
    tight = SessionManager(tight_store)
    await SessionItems(tight).append("new", [{"new": True}])
    assert await tight.count() == 101 - WRITE_EVICTION_BUDGET
    await SessionItems(tight).append("new", [{"again": True}])
    stored = await tight.get("new")
    assert stored is not None and stored.version == 2
    report = await tight.cleanup(batch_size=50)
    assert await tight.count() == 10 and report.evicted == 101 - 10
