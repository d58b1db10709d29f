"""Sessions benchmarks, against a real valkey-server started here (persistence off).

- ``session_create_ratio_vs_raw_redis`` / ``session_touch_ratio_vs_raw_redis``: the
  throughput of ``SessionManager.create`` / ``touch`` over hand-written redis-py code
  sending the equivalent commands in one pipelined round trip (SET PX + 2 ZADD + HSET +
  HINCRBY; PEXPIRE + ZADD), 32 concurrent tasks on each side, same server, same run,
  median of 5 paired rounds in alternating order (goal >= 0.8).
- ``cleanup_expired_per_s``: index entries of expired sessions removed per second by
  ``sm.cleanup()`` (batches of 5,000) with 100,000 expired among 1,000,000
  (``--quick``: 10,000 among 100,000, and ``cleanup_scale`` says 0.1), best of two
  runs (goal >= 200,000).
- ``cleanup_scaling_ratio``: the time to remove the same number of expired sessions
  (50,000; quick 10,000) among 10x more live ones over the time among 1x, best of two
  interleaved runs each (goal <= 1.5).
- ``memory_estimate_error_pct``: the tracker's per-key estimate summed over 2,000 sessions
  of varied sizes against the sum of ``MEMORY USAGE`` (goal <= 20);
  ``memory_estimate_max_error_pct`` is the worst single key, and
  ``memory_index_estimate_error_pct`` compares the whole namespace's accounted total
  (keys + index) against ``MEMORY USAGE`` of the keys and the three index structures.

The large namespaces are loaded by a server-side script writing the same layout the
store writes (loading a million sessions through the client would take minutes and is
not what is measured); expired sessions get keys with a 1 ms TTL, so Redis really
expires them, and last-access scores older than the TTL. Before timing, a SCAN lets
Redis reclaim the lapsed keys (what its own expiry has done long before a CronJob
runs), so what is timed is the cleanup's work: finding and dropping index entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import redis
import redis.asyncio as aioredis

from agent_lib.memory_tracker import error_pct, estimate_key_bytes
from agent_lib.session_manager import SessionManager
from agent_lib.stores.redis import RedisStore
from hourglass_cli._valkey import find_server_binary

CONCURRENCY = 32
ROUNDS = 5
TTL_S = 600.0
_LOADER = """
local n, expired, base = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now, ttl, start = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
for i = start, start + n - 1 do
  local id = string.format('bench%010d', i)
  local score = now
  local px = ttl
  if i < expired then
    score = now - 2 * ttl * 1000
    px = 1
  end
  redis.call('SET', base .. 's:' .. id, '{"bench":true}', 'PX', px)
  redis.call('ZADD', KEYS[1], string.format('%d', score), id)
  redis.call('ZADD', KEYS[2], string.format('%d', score), id)
  redis.call('HSET', KEYS[3], id, 300)
end
redis.call('HINCRBY', KEYS[3], '*total', 300 * n)
return n
"""


def run(quick: bool) -> dict[str, float]:
    with _server() as url:
        metrics = asyncio.run(_all(url, quick))
    return metrics


async def _all(url: str, quick: bool) -> dict[str, float]:
    scale = 0.1 if quick else 1.0
    ops = 3_200 if quick else 16_000
    metrics: dict[str, float] = {}
    metrics["session_create_ratio_vs_raw_redis"] = await _create_ratio(url, ops)
    metrics["session_touch_ratio_vs_raw_redis"] = await _touch_ratio(url, ops)
    expired, live = int(100_000 * scale), int(1_000_000 * scale)
    rates = [(await _cleanup_run(url, expired, live - expired))[0] for _ in range(2)]
    metrics["cleanup_expired_per_s"] = max(rates)
    metrics["cleanup_scale"] = scale
    same = 10_000 if quick else 50_000
    small, large = [], []
    for _ in range(2):  # interleaved, best of each: a busy machine only ever adds time
        small.append((await _cleanup_run(url, same, int(100_000 * scale)))[1])
        large.append((await _cleanup_run(url, same, int(1_000_000 * scale)))[1])
    metrics["cleanup_scaling_ratio"] = min(large) / min(small)
    metrics.update(await _memory_errors(url))
    return metrics


# --- throughput ratios ----------------------------------------------------------------


async def _throughput(op: Callable[[int], Awaitable[object]], total: int) -> float:
    per_task = total // CONCURRENCY

    async def worker(offset: int) -> None:
        for i in range(offset, offset + per_task):
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(t * per_task) for t in range(CONCURRENCY)))
    return per_task * CONCURRENCY / (time.perf_counter() - started)


async def _best_ratio(
    ours: Callable[[int], Awaitable[object]], raw: Callable[[int], Awaitable[object]], ops: int
) -> float:
    """Median over rounds of ours/raw measured back to back (order alternating), which
    cancels most of the drift a shared, busy machine adds."""
    await _throughput(ours, CONCURRENCY * 20)  # warm up connections and scripts
    await _throughput(raw, CONCURRENCY * 20)
    ratios = []
    for round_ in range(ROUNDS):
        if round_ % 2:
            mine, theirs = await _throughput(ours, ops), await _throughput(raw, ops)
        else:
            theirs, mine = await _throughput(raw, ops), await _throughput(ours, ops)
        ratios.append(mine / theirs)
    return statistics.median(ratios)


def _raw_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, max_connections=64)


async def _create_ratio(url: str, ops: int) -> float:
    async with SessionManager.from_url(url, namespace="bench-create", ttl=TTL_S) as sm:
        raw = _raw_client(url)
        base = "raw:{raw:bench-create}:"
        ttl_ms = int(TTL_S * 1000)

        async def ours(i: int) -> object:
            return await sm.create({"user": "bench", "n": i})

        async def theirs(i: int) -> object:
            sid = secrets.token_urlsafe(16)
            payload = json.dumps({"user": "bench", "n": i}, separators=(",", ":")).encode()
            size = estimate_key_bytes(len(base) + 2 + len(sid), len(payload))
            now = time.time_ns() // 1000
            pipe = raw.pipeline(transaction=False)
            pipe.set(base + "s:" + sid, payload, px=ttl_ms)
            pipe.zadd(base + "lru", {sid: now})
            pipe.zadd(base + "born", {sid: now})
            pipe.hset(base + "sizes", sid, size)
            pipe.hincrby(base + "sizes", "*total", size)
            return await pipe.execute()

        try:
            return await _best_ratio(ours, theirs, ops)
        finally:
            await raw.aclose()


async def _touch_ratio(url: str, ops: int) -> float:
    async with SessionManager.from_url(url, namespace="bench-touch", ttl=TTL_S) as sm:
        ids = [(await sm.create({"n": i})).id for i in range(256)]
        raw = _raw_client(url)
        base = "raw:{raw:bench-touch}:"
        ttl_ms = int(TTL_S * 1000)

        async def ours(i: int) -> object:
            return await sm.touch(ids[i % len(ids)])

        async def theirs(i: int) -> object:
            sid = ids[i % len(ids)]
            pipe = raw.pipeline(transaction=False)
            pipe.pexpire(base + "s:" + sid, ttl_ms)
            pipe.zadd(base + "lru", {sid: time.time_ns() // 1000})
            return await pipe.execute()

        try:
            return await _best_ratio(ours, theirs, ops)
        finally:
            await raw.aclose()


# --- cleanup --------------------------------------------------------------------------


async def _cleanup_run(url: str, expired: int, live: int) -> tuple[float, float]:
    """Load ``expired`` + ``live`` sessions, clean up; return (removed per s, seconds)."""
    namespace = f"bench-clean-{secrets.token_hex(4)}"
    async with SessionManager.from_url(
        url, namespace=namespace, ttl=TTL_S, max_lifetime=None, batch_size=5000
    ) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        await _load(url, store, expired, live)
        await _reclaim_expired(store)
        report = await sm.cleanup()
        if report.expired != expired:
            raise RuntimeError(f"cleanup removed {report.expired}, expected {expired}")
        await _flush(url)
        return report.expired / report.duration_s, report.duration_s


async def _flush(url: str) -> None:
    """Empty the server and wait for its background free to finish before the next run."""
    async with aioredis.Redis.from_url(url, socket_timeout=300) as client:
        await client.flushdb()
        while int((await client.info("memory")).get("lazyfree_pending_objects", 0)):
            await asyncio.sleep(0.05)


async def _reclaim_expired(store: RedisStore) -> None:
    """Let Redis reclaim the lapsed keys first, as it has long done when a CronJob runs.

    Active expiry stops at 10 % stale keys, and SCAN deletes every expired key it
    meets; without this the first run would pay for Redis' own housekeeping.
    """
    await asyncio.sleep(0.01)
    async for _ in store.client.scan_iter(count=10_000):
        pass


async def _load(url: str, store: RedisStore, expired: int, live: int) -> None:
    now = time.time_ns() // 1000
    total, chunk = expired + live, 5_000
    base = store.session_base[: -len("s:")]
    # A client of its own: a long script on a busy machine must not hit the store's
    # 5 s socket timeout and be retried into a BUSY server.
    async with aioredis.Redis.from_url(url, socket_timeout=300) as client:
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            await client.eval(
                _LOADER, 3, *store.index_keys, n, expired, base, now, int(TTL_S * 1000), start
            )


# --- memory estimate ------------------------------------------------------------------


async def _memory_errors(url: str) -> dict[str, float]:
    async with SessionManager.from_url(url, namespace="bench-memory", ttl=TTL_S) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        estimated = measured = 0
        worst = 0.0
        for i in range(2000):
            data = {"turn": i, "text": "t" * ((i * 7919) % 3000), "tags": ["a"] * (i % 5)}
            session = await sm.create(data)
            payload = json.dumps(data, separators=(",", ":"))
            estimate = estimate_key_bytes(len(store.key_for(session.id)), len(payload.encode()))
            usage = await store.memory_usage(session.id)
            assert usage is not None
            estimated, measured = estimated + estimate, measured + usage
            worst = max(worst, error_pct(estimate, usage))
        index_usage = 0
        for key in store.index_keys:
            index_usage += int(await store.client.memory_usage(key, samples=0) or 0)
        accounted = int(await store.client.hget(store.index_keys[2], "*total") or 0)
        return {
            "memory_estimate_error_pct": error_pct(estimated, measured),
            "memory_estimate_max_error_pct": worst,
            "memory_index_estimate_error_pct": error_pct(accounted, measured + index_usage),
        }


# --- server ---------------------------------------------------------------------------


@contextlib.contextmanager
def _server() -> Iterator[str]:
    """A private valkey-server on a free loopback port, persistence off, stopped by PID."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="hg-bench-"))
    args = [find_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
