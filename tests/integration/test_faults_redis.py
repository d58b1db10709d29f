"""Faults in the session store: Redis SIGKILLed under load, cleanup killed half-way.

Real valkey-server processes (tests/fixtures/redis_server.py), real `hourglass cleanup`
subprocesses, killed by PID with SIGKILL. The checks are about what a caller was told:
a call either succeeded (and what it saved is there after the restart, since the
server runs with ``appendfsync always``) or raised `SessionStoreUnavailable`; nothing
reported saved is missing, and the store's index agrees with its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from agent_lib import SessionManager
from agent_lib.errors import SessionNotFound, SessionStoreUnavailable
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisProcess, eventually, fresh_namespace

pytestmark = pytest.mark.slow

AGENTS = 2
TASKS_PER_AGENT = 4
KILL_CYCLES = 3
TTL_S = 600


# --- Redis SIGKILLed while agents work -------------------------------------------------


@dataclass
class Known:
    """What the test was told about one session, and what it may hold after a failed write."""

    data: Any
    allowed: list[Any] = field(default_factory=list)
    deleted: bool = False
    maybe_deleted: bool = False


@dataclass
class Ledger:
    sessions: dict[str, Known] = field(default_factory=dict)
    uncertain_creates: dict[str, Any] = field(default_factory=dict)
    acked: int = 0
    unavailable: int = 0
    errors: list[str] = field(default_factory=list)


async def _agent_task(sm: SessionManager, name: str, ledger: Ledger, stop: asyncio.Event) -> None:
    """Create, touch, update and delete its own sessions until told to stop."""
    rng = random.Random(name)
    mine: list[str] = []
    n = 0
    while not stop.is_set():
        n += 1
        live = [s for s in mine if not ledger.sessions[s].maybe_deleted]
        op = rng.choice(["create", "create", "touch", "update", "update", "delete"])
        if op != "create" and not live:
            op = "create"
        try:
            if op == "create":
                sid = f"{name}-{n:07d}"
                ledger.uncertain_creates[sid] = {"v": n}
                session = await sm.create({"v": n}, session_id=sid)
                del ledger.uncertain_creates[sid]
                ledger.sessions[session.id] = Known({"v": n})
                mine.append(session.id)
            elif op == "touch":
                sid = rng.choice(live)
                if not await sm.touch(sid):
                    ledger.errors.append(f"touch {sid}: acknowledged session missing")
            elif op == "update":
                sid = rng.choice(live)
                ledger.sessions[sid].allowed.append({"v": n})
                await sm.update(sid, {"v": n})
                ledger.sessions[sid].data = {"v": n}
                ledger.sessions[sid].allowed.clear()
            else:
                sid = rng.choice(live)
                ledger.sessions[sid].maybe_deleted = True
                await sm.delete(sid)
                ledger.sessions[sid].deleted = True
            ledger.acked += 1
        except SessionStoreUnavailable:
            ledger.unavailable += 1
            await asyncio.sleep(0.02)
        except SessionNotFound as error:
            ledger.errors.append(f"{op}: acknowledged session missing: {error}")
        except Exception as error:  # anything else is a broken promise
            ledger.errors.append(f"{op}: {type(error).__name__}: {error}")
            await asyncio.sleep(0.02)


@pytest.mark.timeout(150)
async def test_sigkill_while_agents_create_and_touch(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    server = redis_server_factory("--appendonly", "yes", "--appendfsync", "always")
    namespace = fresh_namespace()
    managers = [
        SessionManager.from_url(
            server.url, namespace=namespace, ttl=TTL_S, retries=1, socket_timeout=1.0
        )
        for _ in range(AGENTS)
    ]
    ledger = Ledger()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_agent_task(sm, f"a{a}t{t}", ledger, stop))
        for a, sm in enumerate(managers)
        for t in range(TASKS_PER_AGENT)
    ]
    try:
        for _ in range(KILL_CYCLES):
            acked = ledger.acked
            await eventually(_more(ledger, "acked", acked + 300), timeout=30)
            server.kill()
            failed = ledger.unavailable
            await eventually(_more(ledger, "unavailable", failed + 8), timeout=30)
            server.start()
        await eventually(_more(ledger, "acked", ledger.acked + 300), timeout=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    try:
        assert ledger.errors == []
        await _check_ledger(managers[0], ledger)
        await _check_index(managers[0], server)
    finally:
        for sm in managers:
            await sm.close()
    print(
        f"\nsigkill x{KILL_CYCLES}: {ledger.acked} calls acknowledged, "
        f"{ledger.unavailable} raised SessionStoreUnavailable, "
        f"{len(ledger.sessions)} sessions checked"
    )


def _more(ledger: Ledger, attribute: str, target: int) -> Callable[[], Any]:
    async def check() -> bool:
        return int(getattr(ledger, attribute)) >= target

    return check


async def _check_ledger(sm: SessionManager, ledger: Ledger) -> None:
    missing, wrong = [], []
    for sid, known in ledger.sessions.items():
        got = await sm.get(sid)
        if known.deleted:
            if got is not None:
                wrong.append(f"{sid}: deleted, yet still there")
        elif got is None:
            if not known.maybe_deleted:
                missing.append(sid)
        elif got.data != known.data and got.data not in known.allowed:
            wrong.append(f"{sid}: holds {got.data}, acknowledged {known.data}")
    for sid, data in ledger.uncertain_creates.items():
        got = await sm.get(sid)
        if got is not None and got.data != data:
            wrong.append(f"{sid}: half-created with {got.data}")
    assert missing == [], f"{len(missing)} acknowledged sessions lost: {missing[:5]}"
    assert wrong == []


async def _check_index(sm: SessionManager, server: RedisProcess) -> None:
    """The three index structures name exactly the session keys that exist."""
    store = sm.store
    assert isinstance(store, RedisStore)
    lru, born, sizes = store.index_keys
    with server.client() as client:
        keys = {
            k.decode().removeprefix(store.session_base)
            for k in client.scan_iter(match=store.session_base.replace("{", "\\{") + "*")
        }
        lru_ids = {m.decode() for m in client.zrange(lru, 0, -1)}
        born_ids = {m.decode() for m in client.zrange(born, 0, -1)}
        fields = {k.decode(): int(v) for k, v in client.hgetall(sizes).items()}
    size_map, total = _split_sizes(fields)
    assert lru_ids == keys, f"index without session: {sorted(lru_ids - keys)[:5]}"
    assert born_ids == keys and set(size_map) == keys
    assert total == sum(size_map.values())
    assert await sm.count() == len(keys)


def _split_sizes(fields: dict[str, int]) -> tuple[dict[str, int], int]:
    """The sizes hash: per-session estimates, and the running total. Fields starting
    with ``*`` are the store's bookkeeping (no session id can contain ``*``)."""
    marks = sum(1 for k in fields if k.startswith("*i:"))
    assert fields.get("*listed", 0) == marks, "the count of item-list marks drifted"
    sizes = {k: v for k, v in fields.items() if not k.startswith("*")}
    return sizes, fields.get("*total", 0)


# --- cleanup killed half-way -----------------------------------------------------------

_LOADER = """
local n, expired, base, now, ttl, start = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
for i = start, start + n - 1 do
  local id = string.format('load%010d', i)
  local score, px = now, ttl
  if i < expired then
    score, px = now - 4 * 3600 * 1000000, 1
  end
  redis.call('SET', base .. id, '{"load":true}', 'PX', px)
  redis.call('ZADD', KEYS[1], string.format('%d', score), id)
  redis.call('ZADD', KEYS[2], string.format('%d', score), id)
  redis.call('HSET', KEYS[3], id, 100)
end
redis.call('HINCRBY', KEYS[3], '*total', 100 * n)
redis.call('HSET', KEYS[3], '*ttl_max', ARGV[7])
return n
"""
"""Writes the store's layout (see agent_lib/sessions/stores/redis.py) for many sessions at once:
``expired`` of them idle for 4 h with keys Redis expires at once, the rest fresh; like
the store's writers, it notes the TTL it used as ``*ttl_max``."""


def _load(store: RedisStore, client: redis.Redis, expired: int, live: int) -> list[str]:
    now = time.time_ns() // 1000
    total = expired + live
    for start in range(0, total, 20_000):
        n = min(20_000, total - start)
        ttl_ms = int(store.limits.ttl_us // 1000)
        client.eval(
            _LOADER, 3, *store.index_keys, n, expired, store.session_base, now, ttl_ms, start,
            store.limits.ttl_us,
        )  # fmt: skip
    return [f"load{i:010d}" for i in range(expired, total)]


def _check_consistent(store: RedisStore, client: redis.Redis, live: list[str]) -> int:
    """Index and keys agree apart from expired entries still awaiting removal; returns
    how many such entries are left."""
    lru, born, sizes = store.index_keys
    lru_ids = {m.decode() for m in client.zrange(lru, 0, -1)}
    born_ids = {m.decode() for m in client.zrange(born, 0, -1)}
    fields = {k.decode(): int(v) for k, v in client.hgetall(sizes).items()}
    size_map, total = _split_sizes(fields)
    assert lru_ids == born_ids == set(size_map), "the three indexes disagree"
    assert total == sum(size_map.values()), "the memory total drifted from the entries"
    assert set(live) <= lru_ids, "a live session lost its index entries"
    pipe = client.pipeline(transaction=False)
    for sid in live:
        pipe.exists(store.session_base + sid)
    assert all(pipe.execute()), "a live session was deleted"
    return len(lru_ids) - len(live)


def _cleanup_cli(url: str, namespace: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_", "HOURGLASS_"))}
    hourglass = Path(sys.executable).with_name("hourglass")
    args = [str(hourglass), "cleanup", "--redis-url", url, "--namespace", namespace, *extra]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


async def _touch_forever(sm: SessionManager, ids: list[str], stop: asyncio.Event) -> int:
    touched = 0
    rng = random.Random(len(ids))
    while not stop.is_set():
        assert await sm.touch(rng.choice(ids)), "a live session vanished under cleanup"
        touched += 1
        await asyncio.sleep(0)
    return touched


@pytest.mark.timeout(120)
async def test_cleanup_sigkilled_half_way_then_rerun(redis_server: RedisProcess) -> None:
    namespace, expired = fresh_namespace(), 150_000
    async with SessionManager.from_url(redis_server.url, namespace=namespace, ttl=1800) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        with redis_server.client() as client:
            live = _load(store, client, expired=expired, live=5_000)
            stop = asyncio.Event()
            touchers = [asyncio.create_task(_touch_forever(sm, live, stop)) for _ in range(4)]
            process = _cleanup_cli(redis_server.url, namespace, "--batch-size", "100")
            try:
                before = client.zcard(store.index_keys[0])
                while client.zcard(store.index_keys[0]) > before - expired // 2:
                    assert process.poll() is None, "cleanup ended before it could be killed"
                    await asyncio.sleep(0.002)
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.communicate(timeout=10)
            left = _check_consistent(store, client, live)
            assert 0 < left < expired, "the kill did not land half-way"

            rerun = _cleanup_cli(redis_server.url, namespace, "--json")
            out, err = rerun.communicate(timeout=60)
            stop.set()
            touched = sum(await asyncio.gather(*touchers))
            assert rerun.returncode == 0, err
            report = json.loads(out)
            assert report["expired"] == left and report["evicted"] == 0
            assert _check_consistent(store, client, live) == 0
        assert await sm.count() == len(live)
    print(
        f"\ncleanup SIGKILLed with {left} of {expired} left; rerun removed them; {touched} touches"
    )


@pytest.mark.timeout(120)
async def test_cleanup_task_cancelled_then_rerun(redis_server: RedisProcess) -> None:
    namespace, expired = fresh_namespace(), 100_000
    async with SessionManager.from_url(redis_server.url, namespace=namespace, ttl=1800) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        with redis_server.client() as client:
            live = _load(store, client, expired=expired, live=5_000)
            task = asyncio.create_task(sm.cleanup(batch_size=100))
            before = client.zcard(store.index_keys[0])
            while client.zcard(store.index_keys[0]) > before - expired // 2:
                assert not task.done(), "cleanup ended before it could be cancelled"
                await asyncio.sleep(0.002)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            left = _check_consistent(store, client, live)
            assert 0 < left < expired
            report = await sm.cleanup()
            assert report.expired == left and report.complete
            assert _check_consistent(store, client, live) == 0
        assert await sm.count() == len(live)
