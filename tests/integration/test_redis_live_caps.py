"""Caps, counts and lifetimes stay true when Redis deletes keys on its own (real valkey).

Redis expires a busy session's key at its absolute lifetime while its index entry sits
near the recent end of the LRU order, and under a ``volatile-*`` policy it evicts
session keys without touching the index. Neither may cost a live session its place,
and after a cleanup the count, the byte total and ``hourglass_sessions`` match the keys
that exist. A lowered cap is reached by cleanup, not by one write; removals by writes
survive a cleanup killed half-way; a lost index entry cannot restart a lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


def _store(sm: SessionManager) -> RedisStore:
    assert isinstance(sm.store, RedisStore)
    return sm.store


def _existing(sm: SessionManager, client: redis.Redis) -> set[str]:
    base = _store(sm).session_base
    pattern = base.replace("{", "\\{").replace("}", "\\}") + "*"
    return {k.decode().removeprefix(base) for k in client.scan_iter(match=pattern, count=1000)}


def _sizes(sm: SessionManager, client: redis.Redis) -> tuple[dict[str, int], int]:
    raw = {k.decode(): int(v) for k, v in client.hgetall(_store(sm).index_keys[2]).items()}
    return {k: v for k, v in raw.items() if not k.startswith("*")}, raw.get("*total", 0)


@pytest.mark.parametrize("cap", ["max_sessions", "max_memory"])
async def test_a_dead_recent_session_does_not_evict_a_live_one(
    redis_server: RedisProcess, cap: str
) -> None:
    """A, the most recently used, reaches its lifetime; B and C are live; D evicts nobody."""
    limit: dict[str, object] = {"max_sessions": 3} if cap == "max_sessions" else {}
    async with SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=60, max_lifetime=1.2, **limit
    ) as probe:
        size = probe._size("x" * 22, b'{"n":0}')  # every session below has this size
    if cap == "max_memory":
        limit = {"max_memory": 3 * size + size // 2}
    async with SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=60, max_lifetime=1.2, **limit
    ) as sm:
        a = await sm.create({"n": 0})
        await asyncio.sleep(0.6)
        b, c = await sm.create({"n": 1}), await sm.create({"n": 2})
        await asyncio.sleep(0.2)
        assert await sm.touch(a.id)  # A is now the most recently used
        await asyncio.sleep(0.6)  # A's lifetime has ended: Redis deleted its key
        d = await sm.create({"n": 3})
        for live in (b, c, d):
            assert await sm.get(live.id) is not None, f"live session {live.data} was evicted"
        report = await sm.cleanup()
        assert report.evicted == 0
        assert report.expired + report.lifetime_ended == 1
        assert await sm.count() == 3


async def test_redis_eviction_is_noticed_and_counts_match_after_cleanup(
    redis_server_factory: object,
) -> None:
    """Under volatile-lru Redis evicts session keys behind the index's back; cleanup
    notices (INFO stats) and checks the index against the keys."""
    pytest.importorskip("prometheus_client")
    from agent_lib.sessions import metrics as session_metrics

    server = redis_server_factory("--maxmemory-policy", "volatile-lru", "--maxmemory", "2mb")  # type: ignore[operator]
    namespace = fresh_namespace()
    async with SessionManager.from_url(server.url, namespace=namespace, ttl=600) as sm:
        for i in range(300):
            await sm.create({"i": i, "text": "x" * 4000})
        with server.client() as client:
            client.config_set("maxmemory", 0)  # no more evictions while the test looks
            exists = _existing(sm, client)
            assert len(exists) < 300, "Redis evicted nothing: the test needs memory pressure"
            report = await sm.cleanup()
            assert report.expired == 300 - len(exists)
            assert await sm.count() == len(exists)
            sizes, total = _sizes(sm, client)
            assert set(sizes) == exists and total == sum(sizes.values())
            assert (await sm.cleanup()).removed == 0
        metrics = session_metrics._get()
        assert metrics is not None
        assert metrics.sessions.labels(namespace=namespace)._value.get() == len(exists)


async def test_an_evicting_policy_is_warned_about_once_even_without_config(
    redis_server_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Managed services disable CONFIG: the policy is read from INFO memory."""
    server = redis_server_factory(  # type: ignore[operator]
        "--maxmemory-policy", "allkeys-lru", "--rename-command", "CONFIG", ""
    )
    caplog.set_level(logging.WARNING, logger="agent_lib.sessions")
    async with SessionManager.from_url(server.url, namespace=fresh_namespace()) as sm:
        for _ in range(3):
            await sm.get((await sm.create()).id)
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert len(warnings) == 1 and "allkeys-lru" in warnings[0], warnings


async def test_a_lowered_cap_is_reached_by_cleanup_not_by_one_write(redis_url: str) -> None:
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_url, namespace=namespace, ttl=600) as loose:
        for i in range(2000):
            await loose.create({"i": i})
    async with SessionManager.from_url(
        redis_url, namespace=namespace, ttl=600, max_sessions=10
    ) as tight:
        await tight.create({"new": True})
        with redis.Redis.from_url(redis_url) as client:
            indexed = client.zcard(_store(tight).index_keys[0])
        assert indexed >= 2001 - WRITE_EVICTION_BUDGET, "one write evicted a whole backlog"
        report = await tight.cleanup(batch_size=500)
        assert await tight.count() == 10
        assert report.evicted == 2001 - 10


_LOADER = """
for i = 1, tonumber(ARGV[2]) do
  local id = string.format('old%08d', i)
  redis.call('ZADD', KEYS[1], ARGV[1], id)
  redis.call('ZADD', KEYS[2], ARGV[1], id)
  redis.call('HSET', KEYS[3], id, 300)
end
redis.call('HINCRBY', KEYS[3], '*total', 300 * tonumber(ARGV[2]))
return 1
"""


async def test_evictions_by_writes_survive_a_killed_cleanup(redis_server: RedisProcess) -> None:
    """Writes evict at the cap; a real `hourglass cleanup` is SIGKILLed after its first
    batch; the next run still reports every eviction."""
    namespace = fresh_namespace()
    async with SessionManager.from_url(
        redis_server.url, namespace=namespace, ttl=600, max_sessions=5
    ) as sm:
        for i in range(12):
            await sm.create({"i": i})
        store = _store(sm)
        with redis_server.client() as client:
            # Index entries of sessions whose keys Redis already expired: many one-entry
            # batches for the killed run to work through.
            stale = str(time.time_ns() // 1000 - 3_600_000_000)
            client.eval(_LOADER, 3, *store.index_keys, stale, 20_000)
            proc = _cleanup_cli(redis_server.url, namespace, "--batch-size", "1")
            try:
                deadline = time.monotonic() + 30
                while client.zcard(store.index_keys[0]) > 5 + 20_000 - 50:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline
                    time.sleep(0.005)
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        report = await sm.cleanup(batch_size=5000)
        assert report.evicted == 7, report
        assert (await sm.cleanup()).evicted == 0  # reported once the run has finished


def _cleanup_cli(url: str, namespace: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_", "HOURGLASS_"))}
    hourglass = Path(sys.executable).with_name("hourglass")
    args = [str(hourglass), "cleanup", "--redis-url", url, "--namespace", namespace, *extra]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.parametrize("read", ["touch", "get"])
async def test_a_lost_creation_entry_cannot_restart_the_lifetime(
    redis_server: RedisProcess, read: str
) -> None:
    async with SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=60, max_lifetime=1.5
    ) as sm:
        session = await sm.create({"a": 1})
        await asyncio.sleep(0.5)
        with redis_server.client() as client:
            assert client.zrem(_store(sm).index_keys[1], session.id) == 1
        if read == "touch":
            assert await sm.touch(session.id)
        else:
            assert await sm.get(session.id) is not None
        await asyncio.sleep(1.15)  # 1.65 s after creation: past the 1.5 s lifetime
        assert await sm.get(session.id) is None


async def test_cleanup_verify_drops_entries_whose_key_was_deleted(
    redis_server: RedisProcess,
) -> None:
    """A key deleted behind the index's back (no Redis eviction to notice): `--verify`."""
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_server.url, namespace=namespace, ttl=600) as sm:
        ids = [(await sm.create({"i": i})).id for i in range(5)]
        with redis_server.client() as client:
            client.delete(_store(sm).key_for(ids[0]))
        assert (await sm.cleanup()).removed == 0
        assert await sm.count() == 5
        result = subprocess.run(
            [str(Path(sys.executable).with_name("hourglass")), "cleanup", "--redis-url",
             redis_server.url, "--namespace", namespace, "--verify", "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert '"expired": 1' in result.stdout
        assert await sm.count() == 4
