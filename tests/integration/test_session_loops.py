"""One SessionManager called from several event loops and threads (real valkey-server and
memory://): ``asyncio.run`` twice, the Agents SDK's ``Runner.run_sync`` twice, threads
that each run their own loop at once, a loop closed without asyncio's shutdown step,
more loops than the pool bound; and `SyncSessionManager` from many threads.

Before one pool per loop, the second ``asyncio.run`` raised "Event loop is closed".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from agent_lib.errors import ConfigError, SessionError
from agent_lib.integrations.openai_agents import HourglassSession
from agent_lib.sessions.manager import SessionManager, SyncSessionManager
from agent_lib.sessions.stores.base import Limits
from agent_lib.sessions.stores.redis import RedisOptions, RedisStore
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


@pytest.fixture(params=["redis", "memory"])
def url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    return redis_server.url if request.param == "redis" else "memory://"


def _pools(sm: SessionManager) -> int:
    clients = getattr(sm.store, "_clients", None)
    return 0 if clients is None else len(clients)


def _connected(server: RedisProcess) -> int:
    """Clients connected to the server, not counting the probe itself."""
    with redis.Redis.from_url(server.url) as probe:
        return int(probe.info("clients")["connected_clients"]) - 1


def test_asyncio_run_twice_on_one_session(url: str) -> None:
    sm = SessionManager.from_url(url, namespace=fresh_namespace())
    session = HourglassSession("conv-1", sm)
    asyncio.run(session.add_items([{"role": "user", "content": "hi"}]))
    assert asyncio.run(session.get_items()) == [{"role": "user", "content": "hi"}]
    asyncio.run(session.add_items([{"role": "assistant", "content": "hello"}]))
    assert len(asyncio.run(session.get_items())) == 2
    assert _pools(sm) == 0, "each loop's pool closes with its loop"
    asyncio.run(sm.close())


def test_runner_run_sync_twice(url: str) -> None:
    from agents import Agent, Runner
    from agents.testing import ScriptedModel, assistant_message

    sm = SessionManager.from_url(url, namespace=fresh_namespace())
    session = HourglassSession("conv-sync", sm)
    model = ScriptedModel()
    agent = Agent(name="t", model=model)

    def run_sync_in_a_thread(prompt: str, answer: str) -> None:
        # A thread without a loop: run_sync makes one, as a sync web worker would.
        model.enqueue([assistant_message(answer)])
        worker = threading.Thread(
            target=Runner.run_sync, args=(agent, prompt), kwargs={"session": session}
        )
        worker.start()
        worker.join()

    run_sync_in_a_thread("Capital of France?", "Paris")
    run_sync_in_a_thread("And Germany?", "Berlin")
    items = asyncio.run(session.get_items())
    assert [i.get("role") for i in items] == ["user", "assistant", "user", "assistant"]
    assert "Capital of France?" in str(model.calls[-1].input)
    asyncio.run(sm.close())


def test_threads_each_with_their_own_loop_at_once(url: str) -> None:
    sm = SessionManager.from_url(url, namespace=fresh_namespace())
    start = threading.Barrier(8)

    def worker(n: int) -> int:
        async def calls() -> int:
            start.wait()  # every thread's loop is live at the same time
            session = HourglassSession(f"conv-{n % 3}", sm)
            for turn in range(15):
                await session.add_items([{"n": n, "turn": turn}])
                await sm.create({"n": n, "turn": turn})
            return len(await session.get_items())

        return asyncio.run(calls())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        lengths = list(pool.map(worker, range(8)))
    assert all(length >= 15 for length in lengths)
    totals = asyncio.run(_totals(sm, [f"conv-{i}" for i in range(3)]))
    assert totals == (8 * 15 + 3, 8 * 15), "every write arrived exactly once"
    asyncio.run(sm.close())


async def _totals(sm: SessionManager, conversations: list[str]) -> tuple[int, int]:
    items = sum([len(await HourglassSession(c, sm).get_items()) for c in conversations])
    return await sm.count(), items


def test_a_loop_closed_without_shutdown_then_a_new_loop(redis_server: RedisProcess) -> None:
    sm = SessionManager.from_url(redis_server.url, namespace=fresh_namespace())
    loop = asyncio.new_event_loop()
    created = loop.run_until_complete(sm.create({"a": 1}))
    loop.close()  # no shutdown_asyncgens: its pool is noticed by the next loop
    assert _pools(sm) == 1
    got = asyncio.run(sm.get(created.id))
    assert got is not None and got.data == {"a": 1}
    assert _pools(sm) == 0
    asyncio.run(sm.close())


def test_pools_close_with_their_loops(redis_server: RedisProcess) -> None:
    gc.collect()  # earlier tests' abandoned connections
    before = _connected(redis_server)
    sm = SessionManager.from_url(redis_server.url, namespace=fresh_namespace())
    for i in range(6):
        asyncio.run(sm.create({"i": i}))
        assert _pools(sm) == 0
        assert _connected(redis_server) <= before, "a finished loop left a connection open"
    asyncio.run(sm.close())


def test_pool_count_is_bounded(redis_server: RedisProcess) -> None:
    """Four live loops, bound 2: the least recently used pool closes on its own loop,
    and that loop gets a new one when it calls again."""
    sm = SessionManager.from_url(redis_server.url, namespace=fresh_namespace(), max_event_loops=2)
    store = sm.store
    assert isinstance(store, RedisStore)
    loops = [_LoopThread() for _ in range(4)]
    try:
        ids = [loop.call(sm.create({"loop": n})).id for n, loop in enumerate(loops)]
        assert len(store._clients) == 2
        for n, loop in enumerate(loops):  # the evicted loops call again
            got = loop.call(sm.get(ids[n]))
            assert got is not None and got.data == {"loop": n}
            assert len(store._clients) <= 2
        assert loops[0].call(sm.count()) == 4
        assert _connected(redis_server) <= 2 * 2, "evicted pools were left open"
    finally:
        loops[0].call(sm.close())
        for loop in loops:
            loop.stop()


class _LoopThread:
    """A live event loop in its own thread, as a worker thread of a server keeps one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.call(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def test_the_periodic_cleaner_follows_the_live_loop(url: str) -> None:
    sm = SessionManager.from_url(url, namespace=fresh_namespace(), cleanup_interval=60)

    def cleaner() -> asyncio.Task[None] | None:  # the memory store sweeps by itself
        return sm._cleaner if url != "memory://" else sm.store._sweeper  # type: ignore[attr-defined]

    asyncio.run(sm.create({}))
    first = cleaner()
    asyncio.run(sm.create({}))
    second = cleaner()
    assert first is not None and second is not None and second is not first
    assert first.done(), "the first loop's cleaner ended with its loop"
    asyncio.run(sm.close())


@pytest.mark.parametrize("bad", [0, -1, 1.5, "8", True])
def test_a_bad_loop_bound_names_the_field(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_event_loops"):
        SessionManager.from_url("memory://", max_event_loops=bad)  # type: ignore[arg-type]


# --- SyncSessionManager from many threads ---------------------------------------------


def test_sync_manager_from_many_threads(url: str) -> None:
    with SyncSessionManager.from_url(url, namespace=fresh_namespace()) as sync:
        counter = sync.create({"n": 0})

        def work(n: int) -> None:
            sync.create({"worker": n})
            for _ in range(10):
                sync.mutate(counter.id, lambda data: {"n": data["n"] + 1}, retries=1000)

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            list(pool.map(work, range(12)))
        got = sync.get(counter.id)
        assert got is not None and got.data == {"n": 120}
        assert sync.count() == 13


def test_sync_manager_close_races_calls_and_never_hangs(url: str) -> None:
    sync = SyncSessionManager.from_url(url, namespace=fresh_namespace())
    outcomes: list[str] = []
    go = threading.Event()

    def caller() -> None:
        go.wait()
        for _ in range(50):
            try:
                sync.create({})
            except SessionError as error:
                assert "closed" in str(error)
                outcomes.append("closed")
                return
        outcomes.append("done")

    callers = [threading.Thread(target=caller) for _ in range(6)]
    closers = [threading.Thread(target=sync.close) for _ in range(3)]
    for thread in callers:
        thread.start()
    go.set()
    for thread in closers:
        thread.start()
    for thread in [*callers, *closers]:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a call or a close hung"
    assert len(outcomes) == 6
    with pytest.raises(SessionError, match="closed"):
        sync.count()


@pytest.mark.timeout(30)
def test_sync_manager_called_from_its_own_loop_raises_instead_of_deadlocking(url: str) -> None:
    with SyncSessionManager.from_url(url, namespace=fresh_namespace()) as sync:
        made = sync.create({"n": 1})

        def reentrant(data: dict[str, int]) -> dict[str, int]:
            sync.count()  # runs on the manager's own loop thread: would wait on itself
            return data

        with pytest.raises(SessionError, match="own loop"):
            sync.mutate(made.id, reentrant)
        assert sync.count() == 1


# --- the state machine ----------------------------------------------------------------


class LoopsMachine(RuleBasedStateMachine):
    """Loops open, call, close cleanly (asyncio's shutdown step) or abruptly, in any order,
    against one store with a bound of 2 pools; every read matches the model, and the
    pools kept never exceed the bound nor outlive a cleanly closed loop.

    On the old code (one client for every loop) it fails at once; shrunk:
    ``open_loop(); create(loop=l0); open_loop(); create(loop=l1)`` -> RuntimeError
    (a Future attached to a different loop).
    """

    server: RedisProcess

    loops = Bundle("loops")

    def __init__(self) -> None:
        super().__init__()
        self.store = RedisStore.from_url(
            self.server.url,
            namespace=fresh_namespace(),
            limits=Limits(ttl_s=600),
            options=RedisOptions(max_event_loops=2),
        )
        self.sm = SessionManager(self.store)
        self.model: dict[str, int] = {}
        self.open: list[asyncio.AbstractEventLoop] = []

    @rule(target=loops)
    def open_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        self.open.append(loop)
        return loop

    @rule(loop=loops, n=st.integers(0, 9))
    def create(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        if loop.is_closed():
            return
        made = loop.run_until_complete(self.sm.create({"n": n}))
        self.model[made.id] = n

    @rule(loop=loops)
    def read_all(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_closed():
            return

        async def read() -> dict[str, int]:
            found = {}
            for sid in self.model:
                got = await self.sm.get(sid)
                assert got is not None
                found[sid] = got.data["n"]
            return found

        assert loop.run_until_complete(read()) == self.model

    @rule(loop=loops, clean=st.booleans())
    def close_loop(self, loop: asyncio.AbstractEventLoop, clean: bool) -> None:
        if loop.is_closed():
            return
        if clean:
            loop.run_until_complete(loop.shutdown_asyncgens())
            assert loop not in self.store._clients._entries
        loop.close()
        self.open.remove(loop)

    @invariant()
    def bounded(self) -> None:
        assert len(self.store._clients) <= 2

    def teardown(self) -> None:
        asyncio.run(self.sm.close())
        for loop in self.open:
            loop.close()


def test_loops_state_machine(redis_server: RedisProcess) -> None:
    LoopsMachine.server = redis_server
    machine = LoopsMachine.TestCase
    machine.settings = settings(
        max_examples=25,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine().runTest()


@pytest.fixture(autouse=True)
def _no_leftover_loop() -> Iterator[None]:
    yield
    asyncio.set_event_loop(None)
