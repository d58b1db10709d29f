"""Soak: mixed session traffic with cleanups and profile reloads, against a real Valkey.

16 asyncio tasks create, get, update and delete their own sessions (each call inside a
deadline taken from the live TimeoutManager profile) while a second manager runs a
cleanup every 2 s (as the CronJob would) and the mounted profile is swapped
kubelet-style every 5 s. Some sessions are abandoned on purpose so that Redis expires
them and cleanup has work. Checks: zero errors, zero live sessions lost (a session used
within its TTL is never missing), every reload applied, and the process RSS flat
(a leak check, with a generous bound). Throughput and RSS are printed; the figures in
docs/reliability.md come from this test.

``HOURGLASS_SOAK_SECONDS`` sets the duration (default 60).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from agent_lib import SessionManager, TimeoutManager, atomic_swap
from tests.fixtures.redis_server import RedisProcess, fresh_namespace
from tests.fixtures.timeouts import builtin_bundle

SECONDS = float(os.environ.get("HOURGLASS_SOAK_SECONDS", "60"))
TASKS = 16
TTL_S = 10.0
CLEANUP_EVERY_S = 2.0
RELOAD_EVERY_S = 5.0
WORKING_SET = 24
RSS_GROWTH_LIMIT_MB = 50.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(SECONDS) + 90)]


@dataclass
class Tally:
    ops: int = 0
    creates: int = 0
    abandoned: int = 0
    deletes: int = 0
    lost: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cleanups: int = 0
    cleaned: int = 0
    reloads: int = 0
    swaps: int = 0


def _bundle(request_s: int) -> str:
    content = builtin_bundle()
    assert "request: 120" in content  # dev's request timeout in the built-in profiles
    return content.replace("request: 120", f"request: {request_s}")


async def _agent(
    sm: SessionManager, tm: TimeoutManager, name: str, tally: Tally, end: float
) -> None:
    rng = random.Random(name)
    mine: dict[str, float] = {}  # session id -> monotonic time of its last successful use
    n = 0
    while time.monotonic() < end:
        n += 1
        roll = rng.random()
        try:
            async with tm.deadline("request"):
                if len(mine) < WORKING_SET or roll < 0.1:
                    session = await sm.create({"agent": name, "turn": n, "text": "x" * (n % 400)})
                    tally.creates += 1
                    if roll < 0.05:
                        tally.abandoned += 1  # never used again: Redis expires it
                    else:
                        mine[session.id] = time.monotonic()
                else:
                    sid = rng.choice(list(mine))
                    used = mine[sid]
                    if roll < 0.55:
                        found = await sm.get(sid) is not None
                    elif roll < 0.95:
                        found = True
                        await sm.update(sid, {"agent": name, "turn": n})
                    else:
                        found = await sm.delete(sid)
                        del mine[sid]
                        tally.deletes += 1
                    if not found and time.monotonic() - used < TTL_S - 2:
                        tally.lost.append(sid)
                    elif sid in mine:
                        mine[sid] = time.monotonic()
            tally.ops += 1
        except Exception as error:  # the soak's promise is zero errors: record, go on
            tally.errors.append(f"{type(error).__name__}: {error}")
        if n % 50 == 0:
            await asyncio.sleep(0)


async def _cleaner(url: str, namespace: str, tally: Tally, end: float) -> None:
    async with SessionManager.from_url(url, namespace=namespace, ttl=TTL_S) as sm:
        while time.monotonic() < end:
            await asyncio.sleep(CLEANUP_EVERY_S)
            try:
                report = await sm.cleanup()
            except Exception as error:
                tally.errors.append(f"cleanup: {type(error).__name__}: {error}")
                continue
            tally.cleanups += 1
            tally.cleaned += report.removed


async def _reloader(folder: Path, tm: TimeoutManager, tally: Tally, end: float) -> None:
    value = 30
    while time.monotonic() + RELOAD_EVERY_S < end:
        await asyncio.sleep(RELOAD_EVERY_S)
        value = 30 + (value - 29) % 20
        await asyncio.to_thread(atomic_swap, folder, {"hourglass.yaml": _bundle(value)})
        tally.swaps += 1
        for _ in range(400):
            if tm.get("request") == value:
                tally.reloads += 1
                break
            await asyncio.sleep(0.025)
        else:
            tally.errors.append(f"reload to request={value}s not applied within 10 s")


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1e6


@pytest.fixture
def profile_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "hourglass"
    atomic_swap(folder, {"hourglass.yaml": _bundle(30)})
    yield folder


async def test_soak_mixed_traffic_with_cleanups_and_reloads(
    redis_server: RedisProcess, profile_folder: Path, request: pytest.FixtureRequest
) -> None:
    namespace = fresh_namespace()
    tally = Tally()
    with TimeoutManager(config_dir=profile_folder, environ={}) as tm:
        async with SessionManager.from_url(redis_server.url, namespace=namespace, ttl=TTL_S) as sm:
            # Warm up (connections, scripts, imports) before the first RSS reading.
            await _agent(sm, tm, "warmup", Tally(), time.monotonic() + 2)
            rss_before = _rss_mb()
            started = time.monotonic()
            end = started + SECONDS
            await asyncio.gather(
                *(_agent(sm, tm, f"agent{i}", tally, end) for i in range(TASKS)),
                _cleaner(redis_server.url, namespace, tally, end),
                _reloader(profile_folder, tm, tally, end),
            )
            elapsed = time.monotonic() - started
            rss_after = _rss_mb()
            live = await sm.count()
        assert tm.last_error is None
    summary = (
        f"soak {elapsed:.0f}s: {tally.ops} ops ({tally.ops / elapsed:.0f}/s) from {TASKS} tasks; "
        f"{tally.creates} created, {tally.abandoned} abandoned, {tally.deletes} deleted, "
        f"{live} live at the end; {tally.cleanups} cleanups removed {tally.cleaned}; "
        f"{tally.reloads}/{tally.swaps} reloads applied; "
        f"errors {len(tally.errors)}, lost {len(tally.lost)}; "
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB ({rss_after - rss_before:+.1f} MB)"
    )
    _report(request, summary)
    assert tally.errors == [], tally.errors[:5]
    assert tally.lost == [], f"{len(tally.lost)} live sessions lost: {tally.lost[:5]}"
    assert tally.cleanups > 0 and tally.swaps > 0
    assert tally.reloads == tally.swaps, "a profile swap was never applied"
    assert tally.ops > 0 and tally.cleaned > 0
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MB


def _report(request: pytest.FixtureRequest, line: str) -> None:
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)
