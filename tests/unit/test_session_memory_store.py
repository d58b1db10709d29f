"""The in-process store keeps the same rules as Redis; a fake clock makes expiry exact."""

from __future__ import annotations

import asyncio

import pytest

from agent_lib.errors import PayloadTooLarge, SessionExists, SessionNotFound
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import Limits
from agent_lib.sessions.stores.memory import MemoryStore


class FakeClock:
    """Stands in for the wall clock so expiry happens exactly when the test says."""

    def __init__(self) -> None:
        self.now_us = 1_700_000_000_000_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * 1e6)


def _manager(clock: FakeClock, **limits: object) -> SessionManager:
    store = MemoryStore(limits=Limits(**limits), sweep_interval=None, clock_us=clock)  # type: ignore[arg-type]
    return SessionManager(store)


async def test_crud_and_timestamps() -> None:
    clock = FakeClock()
    async with _manager(clock, ttl_s=10) as sm:
        session = await sm.create({"a": 1})
        clock.advance(2)
        got = await sm.get(session.id)
        assert got is not None and got.data == {"a": 1}
        assert got.last_access - got.created_at == pytest.approx(2)
        assert (await sm.update(session.id, [1, 2])).data == [1, 2]
        with pytest.raises(SessionExists):
            await sm.create({}, session_id=session.id)
        assert await sm.delete(session.id) and not await sm.delete(session.id)
        with pytest.raises(SessionNotFound):
            await sm.update(session.id, {})


async def test_sliding_ttl() -> None:
    clock = FakeClock()
    async with _manager(clock, ttl_s=10) as sm:
        kept, dropped = await sm.create(), await sm.create()
        for _ in range(5):
            clock.advance(6)
            assert await sm.touch(kept.id)
        assert await sm.get(dropped.id) is None
        clock.advance(9.999)
        assert await sm.get(kept.id) is not None
        clock.advance(10)
        assert await sm.get(kept.id) is None
        assert await sm.count() == 0


async def test_absolute_lifetime_beats_touching() -> None:
    clock = FakeClock()
    async with _manager(clock, ttl_s=10, max_lifetime_s=25) as sm:
        session = await sm.create()
        for _ in range(4):
            clock.advance(6)
            assert await sm.touch(session.id)
        clock.advance(1)
        assert not await sm.touch(session.id)


async def test_cleanup_reports_each_kind() -> None:
    clock = FakeClock()
    store = MemoryStore(limits=Limits(ttl_s=10), sweep_interval=None, clock_us=clock)
    async with SessionManager(store) as sm:
        ids = [(await sm.create({"i": i})).id for i in range(10)]
        clock.advance(5)
        for sid in ids[:3]:
            await sm.touch(sid)
        clock.advance(6)
        dry = await sm.cleanup(dry_run=True)
        assert (dry.expired, dry.dry_run) == (7, True)
        report = await sm.cleanup(batch_size=2)
        assert report.expired == 7 and report.batches == 4 and report.bytes_freed > 0
        assert await sm.count() == 3
        store.limits = Limits(ttl_s=10, max_lifetime_s=10, max_sessions=1)
        ended = await sm.cleanup()
        assert (ended.lifetime_ended, ended.evicted) == (3, 0)
        assert store.total_bytes == 0


async def test_lru_eviction_and_memory_cap() -> None:
    clock = FakeClock()
    async with _manager(clock, ttl_s=100, max_sessions=2) as sm:
        a = await sm.create()
        clock.advance(1)
        b = await sm.create()
        clock.advance(1)
        await sm.touch(a.id)
        clock.advance(1)
        c = await sm.create()
        assert [await sm.get(s.id) is not None for s in (a, b, c)] == [True, False, True]
    async with _manager(clock, ttl_s=100, max_memory=3000) as sm:
        first = await sm.create({"x": "y" * 1000})
        clock.advance(1)
        await sm.create({"x": "y" * 1000})
        clock.advance(1)
        await sm.create({"x": "y" * 1000})
        assert await sm.get(first.id) is None
        assert await sm.count() == 2
        with pytest.raises(PayloadTooLarge):
            await sm.create({"x": "y" * 3000})


async def test_interrupted_cleanup_resumes() -> None:
    clock = FakeClock()
    async with _manager(clock, ttl_s=1) as sm:
        for i in range(50):
            await sm.create({"i": i})
        clock.advance(2)
        partial = await sm.cleanup(batch_size=10, max_batches=2)
        assert partial.expired == 20 and not partial.complete
        rest = await sm.cleanup(batch_size=10)
        assert rest.expired == 30 and rest.complete


async def test_sweeper_runs_in_the_background() -> None:
    clock = FakeClock()
    store = MemoryStore(limits=Limits(ttl_s=1), sweep_interval=0.01, clock_us=clock)
    async with SessionManager(store) as sm:
        await sm.create()
        clock.advance(2)
        for _ in range(500):
            if store.total_bytes == 0:
                break
            await asyncio.sleep(0.01)
        assert store.total_bytes == 0


async def test_payload_cap_and_bad_payloads() -> None:
    from agent_lib.errors import InvalidPayload

    sm = SessionManager(MemoryStore(limits=Limits(ttl_s=5), sweep_interval=None), max_payload=64)
    async with sm:
        with pytest.raises(PayloadTooLarge) as caught:
            await sm.create({"x": "y" * 64})
        assert caught.value.field == "data" and caught.value.limit == 64
        with pytest.raises(InvalidPayload):
            await sm.create({"x": object()})
        with pytest.raises(InvalidPayload):
            await sm.create({"x": float("nan")})
        with pytest.raises(InvalidPayload):
            await sm.create({1j: 1})


async def test_session_gauges_and_cleanup_counters_are_exported() -> None:
    from prometheus_client import REGISTRY

    from agent_lib import SessionManager

    async with SessionManager.from_url("memory://", namespace="gauges", max_sessions=7) as sm:
        await sm.create({"a": 1})
        await sm.create({"b": 2})
        assert await sm.count() == 2
    labels = {"namespace": "gauges"}
    assert REGISTRY.get_sample_value("hourglass_sessions", labels) == 2
    assert REGISTRY.get_sample_value("hourglass_sessions_max", labels) == 7
