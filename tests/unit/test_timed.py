"""Every operation run under a named timeout lands in hourglass_operation_duration_seconds.

``TimeoutManager.timed`` (sync, async, decorator), deadlines, polling and the HTTP hooks
(against a real aiohttp server on loopback) record one observation with the outcome;
the old ``hourglass_timeouts`` counter keeps counting beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from agent_lib import DeadlineExceeded, TimeoutManager, deadline
from agent_lib.timeouts import timing
from agent_lib.timeouts.timing import METRIC, LatencyRecorder


def count(name: str, outcome: str) -> float:
    labels = {"name": name, "outcome": outcome}
    return REGISTRY.get_sample_value(f"{METRIC}_count", labels) or 0.0


@pytest.fixture(autouse=True)
def fresh_recorder() -> None:
    """The process-wide recorder keeps at most MAX_NAMES names: other test files' deadlines
    would otherwise use them up and these names would land in ``_other``."""
    timing.default_recorder.reset()


@pytest.fixture
def tm() -> TimeoutManager:
    return TimeoutManager(config_dir="/nonexistent", overrides={"llmCall": 2, "connect": 1})


def test_timed_block_records_ok_error_and_timeout(tm: TimeoutManager) -> None:
    before = {o: count("timedBlock", o) for o in timing.OUTCOMES}
    with tm.timed("timedBlock"):
        pass
    with pytest.raises(ValueError), tm.timed("timedBlock"):
        raise ValueError("boom")
    with pytest.raises(TimeoutError), tm.timed("timedBlock"):
        raise TimeoutError
    assert {o: count("timedBlock", o) - before[o] for o in timing.OUTCOMES} == {
        "ok": 1,
        "timeout": 1,
        "error": 1,
    }


def test_timed_decorates_sync_and_async_functions(tm: TimeoutManager) -> None:
    @tm.timed("decoratedSync")
    def double(x: int) -> int:
        return 2 * x

    @tm.timed("decoratedAsync")
    async def slow() -> str:
        await asyncio.sleep(0.02)
        raise DeadlineExceeded("decoratedAsync", 0.01, 0.02)

    before_sync, before_async = count("decoratedSync", "ok"), count("decoratedAsync", "timeout")
    assert double(21) == 42
    with pytest.raises(DeadlineExceeded):
        asyncio.run(slow())
    assert count("decoratedSync", "ok") == before_sync + 1
    assert count("decoratedAsync", "timeout") == before_async + 1
    assert double.__name__ == "double"


def test_async_with_records_a_cancelled_timeout(tm: TimeoutManager) -> None:
    async def run() -> None:
        async with tm.timed("asyncBlock"):
            await asyncio.wait_for(asyncio.sleep(1), 0.01)

    before = count("asyncBlock", "timeout")
    with pytest.raises(TimeoutError):
        asyncio.run(run())
    assert count("asyncBlock", "timeout") == before + 1


def test_deadline_records_its_own_expiry_as_timeout_and_keeps_the_old_counter() -> None:
    before = count("deadlineOwn", "timeout")
    before_old = REGISTRY.get_sample_value("hourglass_timeouts_total", {"name": "deadlineOwn"}) or 0

    async def run() -> None:
        async with deadline("deadlineOwn", 0.02):
            await asyncio.sleep(1)

    with pytest.raises(DeadlineExceeded):
        asyncio.run(run())
    assert count("deadlineOwn", "timeout") == before + 1
    assert REGISTRY.get_sample_value("hourglass_timeouts_total", {"name": "deadlineOwn"}) == (
        before_old + 1
    )
    ok_before = count("deadlineOwn", "ok")
    with deadline("deadlineOwn", 5):
        pass
    assert count("deadlineOwn", "ok") == ok_before + 1


def test_an_inner_deadline_cut_by_its_parent_is_not_its_own_timeout() -> None:
    """The inner name's value was never reached: counting it as its timeout would censor it."""
    inner_timeouts = count("innerCut", "timeout")

    async def run() -> None:
        async with deadline("outerBinds", 0.02), deadline("innerCut", 30):
            await asyncio.sleep(1)

    with pytest.raises(DeadlineExceeded):
        asyncio.run(run())
    assert count("innerCut", "timeout") == inner_timeouts
    assert count("outerBinds", "timeout") >= 1


def test_polling_records_each_poll(tm: TimeoutManager) -> None:
    before = count("pollRecorded", "ok")
    assert tm.poll(lambda: True, name="pollRecorded") is True
    assert count("pollRecorded", "ok") == before + 1
    with pytest.raises(DeadlineExceeded):
        tm.poll(
            lambda: False, name="pollGaveUp", interval=0.01, max_interval=0.01, max_duration=0.03
        )
    assert count("pollGaveUp", "timeout") == 1

    async def never() -> bool:
        return False

    with pytest.raises(DeadlineExceeded):
        asyncio.run(
            tm.apoll(never, name="apollGaveUp", interval=0.01, max_interval=0.01, max_duration=0.03)
        )
    assert count("apollGaveUp", "timeout") == 1


def test_names_are_bounded() -> None:
    recorder = LatencyRecorder(max_names=3)
    for i in range(10):
        recorder.observe(f"name{i}", 0.5, "ok")
    names = {name for name, _ in recorder.snapshot()}
    assert names == {"name0", "name1", "name2", timing.OTHER}
    cumulative, total, n = recorder.snapshot()[(timing.OTHER, "ok")]
    assert (cumulative[-1], n, total) == (7, 7, 3.5)


def test_exported_buckets_are_cumulative_and_le_labels_parse() -> None:
    timing.default_recorder.observe("exported", 0.5, "ok")
    buckets = [
        s
        for family in REGISTRY.collect()
        if family.name == METRIC
        for s in family.samples
        if s.name.endswith("_bucket") and s.labels["name"] == "exported"
    ]
    assert len(buckets) == len(timing.BUCKETS) + 1 and buckets[-1].labels["le"] == "+Inf"
    bounds = [float(s.labels["le"]) for s in buckets[:-1]]
    assert bounds == list(timing.BUCKETS)
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)
    assert buckets[-1].value == 1
    recorder = LatencyRecorder()
    for value in (0.005, 0.5, 5.0, 5000.0):
        recorder.observe("x", value, "ok")
    cumulative, total, n = recorder.snapshot()[("x", "ok")]
    assert cumulative == sorted(cumulative) and cumulative[-1] == n == 4
    assert cumulative[0] == 1 and cumulative[-2] == 3  # 5000 s only in +Inf
    assert total == pytest.approx(5005.505)
    assert all(float(f"{b:.6g}") == b for b in timing.BUCKETS)


# --- HTTP hooks, against a real aiohttp server on loopback ----------------------------


@pytest.fixture
def server() -> Iterator[str]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=503)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/fail", fail)
    app.router.add_get("/slow", slow)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_httpx_transport_records_each_request(tm: TimeoutManager, server: str) -> None:
    before = {o: count("httpxCall", o) for o in timing.OUTCOMES}
    with httpx.Client(
        timeout=httpx.Timeout(0.2), transport=tm.httpx_transport("httpxCall")
    ) as client:
        assert client.get(f"{server}/ok").text == "ok"
        assert client.get(f"{server}/fail").status_code == 503
        with pytest.raises(httpx.TimeoutException):
            client.get(f"{server}/slow")
    assert {o: count("httpxCall", o) - before[o] for o in timing.OUTCOMES} == {
        "ok": 1,
        "timeout": 1,
        "error": 1,
    }


def test_aiohttp_trace_config_records_each_request(tm: TimeoutManager, server: str) -> None:
    before = {o: count("aiohttpCall", o) for o in timing.OUTCOMES}

    async def run() -> None:
        async with aiohttp.ClientSession(
            trace_configs=[tm.aiohttp_trace_config("aiohttpCall")],
            timeout=aiohttp.ClientTimeout(total=0.2),
        ) as session:
            async with session.get(f"{server}/ok") as response:
                assert await response.text() == "ok"
            async with session.get(f"{server}/fail") as response:
                assert response.status == 503
            with pytest.raises(TimeoutError):
                async with session.get(f"{server}/slow") as response:
                    await response.text()

    asyncio.run(run())
    assert {o: count("aiohttpCall", o) - before[o] for o in timing.OUTCOMES} == {
        "ok": 1,
        "timeout": 1,
        "error": 1,
    }
