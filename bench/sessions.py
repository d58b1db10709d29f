"""Sessions benchmarks, against a real valkey-server started here (persistence off).

- ``session_create_ratio_vs_raw_redis`` / ``session_touch_ratio_vs_raw_redis``: the
  throughput of ``SessionManager.create`` / ``touch`` over hand-written redis-py code
  sending the equivalent commands in one pipelined round trip (SET PX + 2 ZADD + HSET +
  HINCRBY; PEXPIRE + ZADD), 32 concurrent tasks on each side, same server, same run,
  ``THROUGHPUT_ROUNDS`` rounds back to back in alternating order, best of each side
  (goal >= 0.95): a round on a shared machine is only ever slowed down, by as much as
  20% on either side. ``..._paired_median`` is the median of the round-by-round ratios.
- ``cleanup_expired_per_s``: index entries of expired sessions removed per second by
  ``sm.cleanup()`` (batches of 5,000) with 100,000 expired among 1,000,000
  (``--quick``: 10,000 among 100,000, and ``cleanup_scale`` says 0.1); the live
  sessions stay, each of 5 rounds adds the expired ones again; best round
  (goal >= 250,000). A namespace without item lists skips the per-candidate mark lookup
  (`*listed` is 0); one with them pays one more hash lookup per candidate.
- ``cleanup_scaling_ratio``: the time to remove the same number of expired sessions
  (50,000; quick 10,000) among 10x more live ones (each population on a server of its
  own) over the time among 1x; ``SCALING_ROUNDS`` interleaved rounds after one warm-up
  round each (connections, script cache), best of each (goal <= 1.25). Its spread:
  ``cleanup_scaling_ratio_min`` / ``_median`` / ``_max`` are the same ratio round by
  round (the 10x cleanup over the 1x one run just before it), so a single lucky or
  unlucky round shows.
- ``memory_estimate_error_pct``: the tracker's per-key estimate summed over 2,000 sessions
  of varied sizes against the sum of ``MEMORY USAGE`` (goal <= 20);
  ``memory_estimate_max_error_pct`` is the worst single key, and
  ``memory_index_estimate_error_pct`` compares the whole namespace's accounted total
  (keys + index) against ``MEMORY USAGE`` of the keys and the three index structures.

The large namespaces are loaded by a server-side script writing the same layout the
store writes (loading a million sessions through the client would take minutes and is
not what is measured). An expired session is written as Redis leaves it once its key
expired and was reclaimed: index entries with a last access older than the TTL and no
key. A read pass after each load finishes the hash tables' incremental rehashing, as
steady traffic would. Timings on a shared machine only ever get longer, hence "best".
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

from agent_lib.sessions._memory_estimate import VALUE_HEADER_BYTES, error_pct, estimate_key_bytes
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.redis import RedisStore
from hourglass_cli.valkey_server import find_server_binary

CONCURRENCY = 32
ROUNDS = 5
THROUGHPUT_ROUNDS = 7
SCALING_ROUNDS = 7
TTL_S = 600.0
_LOADER = """
local base, tag, start, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local score, px = ARGV[5], tonumber(ARGV[6])
for i = start, start + n - 1 do
  local id = string.format('%s%010d', tag, i)
  if px > 0 then
    redis.call('SET', base .. id, '{"bench":true}', 'PX', px)
  end
  redis.call('ZADD', KEYS[1], score, id)
  redis.call('ZADD', KEYS[2], score, id)
  redis.call('HSET', KEYS[3], id, 300)
end
redis.call('HINCRBY', KEYS[3], '*total', 300 * n)
redis.call('HSET', KEYS[3], '*ttl_max', ARGV[7])
return n
"""
_SETTLE = """
local base, tag, start, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for i = start, start + n - 1 do
  local id = string.format('%s%010d', tag, i)
  redis.call('ZSCORE', KEYS[1], id)
  redis.call('ZSCORE', KEYS[2], id)
  redis.call('HGET', KEYS[3], id)
  redis.call('EXISTS', base .. id)
end
return n
"""


def run(quick: bool) -> dict[str, float]:
    with _server() as url:
        return asyncio.run(_all(url, quick))


async def _all(url: str, quick: bool) -> dict[str, float]:
    scale = 0.1 if quick else 1.0
    ops = 3_200 if quick else 16_000
    metrics: dict[str, float] = {}
    for name, ratios in (("create", _create_ratio), ("touch", _touch_ratio)):
        best, paired_median = await ratios(url, ops)
        metrics[f"session_{name}_ratio_vs_raw_redis"] = best
        metrics[f"session_{name}_ratio_vs_raw_redis_paired_median"] = paired_median
    expired, live = int(100_000 * scale), int(1_000_000 * scale)
    async with _Population(url, live - expired) as population:
        rates = [expired / await population.clean(expired) for _ in range(ROUNDS)]
    metrics["cleanup_expired_per_s"] = max(rates)
    metrics["cleanup_scale"] = scale
    metrics.update(await _scaling(10_000 if quick else 50_000, int(100_000 * scale)))
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
) -> tuple[float, float]:
    """Best throughput of ours over the best of raw, rounds back to back (order
    alternating), and the median of the round-by-round ratios."""
    await _throughput(ours, CONCURRENCY * 20)  # warm up connections and scripts
    await _throughput(raw, CONCURRENCY * 20)
    mine, theirs = [], []
    for round_ in range(THROUGHPUT_ROUNDS):
        if round_ % 2:
            mine.append(await _throughput(ours, ops))
            theirs.append(await _throughput(raw, ops))
        else:
            theirs.append(await _throughput(raw, ops))
            mine.append(await _throughput(ours, ops))
    paired = [m / t for m, t in zip(mine, theirs, strict=True)]
    return max(mine) / max(theirs), statistics.median(paired)


def _raw_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, max_connections=64)


async def _create_ratio(url: str, ops: int) -> tuple[float, float]:
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


async def _touch_ratio(url: str, ops: int) -> tuple[float, float]:
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


class _Population:
    """A namespace of ``live`` sessions on its own server, to which each round adds
    expired ones and times their cleanup; the live ones stay for every round."""

    def __init__(self, url: str, live: int) -> None:
        self.url, self.live, self.rounds = url, live, 0
        self.manager = SessionManager.from_url(
            url, namespace="bench-clean", ttl=TTL_S, max_lifetime=None, batch_size=5000
        )

    async def __aenter__(self) -> _Population:
        await self._load("live", self.live, time.time_ns() // 1000, int(TTL_S * 1000))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.manager.close()
        async with aioredis.Redis.from_url(self.url, socket_timeout=300) as client:
            await client.flushdb()

    async def clean(self, expired: int) -> float:
        """Add ``expired`` sessions Redis already expired; return the cleanup's seconds."""
        self.rounds += 1
        idle_since = time.time_ns() // 1000 - int(2 * TTL_S * 1e6)
        await self._load(f"gone{self.rounds}-", expired, idle_since, 0)
        report = await self.manager.cleanup()
        if report.expired != expired:
            raise RuntimeError(f"cleanup removed {report.expired}, expected {expired}")
        return report.duration_s

    async def _load(self, tag: str, count: int, score_us: int, px_ms: int) -> None:
        """Write the store's own layout server-side; ``px_ms`` 0 writes no key at all,
        the state Redis leaves once it has expired and reclaimed a session's key."""
        store = self.manager.store
        assert isinstance(store, RedisStore)
        chunk = 5_000
        args = (store.session_base, tag)
        ttl_us = store.limits.ttl_us  # what the store's writers note as '*ttl_max'

        # A client of its own: a long script on a busy machine must not hit the store's
        # 5 s socket timeout and be retried into a BUSY server.
        async with aioredis.Redis.from_url(self.url, socket_timeout=300) as client:
            for start in range(0, count, chunk):
                n = min(chunk, count - start)
                await client.eval(
                    _LOADER, 3, *store.index_keys, *args, start, n, score_us, px_ms, ttl_us
                )
            # Reads finish the incremental rehashing an insert-only load leaves half
            # done, as an agent's steady traffic would; otherwise a run just past a
            # power of two pays for rehashing, not for cleaning.
            for start in range(0, count, chunk):
                n = min(chunk, count - start)
                await client.eval(_SETTLE, 3, *store.index_keys, *args, start, n)


async def _scaling(expired: int, live: int) -> dict[str, float]:
    """Cleanup time among 10x ``live`` over the time among 1x, rounds interleaved: the
    best over the best, and the spread of the round-by-round ratios."""
    with _server() as small_url, _server() as large_url:
        async with (
            _Population(small_url, live) as small,
            _Population(large_url, 10 * live) as large,
        ):
            await small.clean(expired)  # warm-up: connections, the scripts' first load
            await large.clean(expired)
            small_s, large_s = [], []
            for _ in range(SCALING_ROUNDS):
                small_s.append(await small.clean(expired))
                large_s.append(await large.clean(expired))
    return scaling_figures(small_s, large_s)


def scaling_figures(small_s: list[float], large_s: list[float]) -> dict[str, float]:
    """``cleanup_scaling_ratio`` (best over best) and the spread of the paired rounds."""
    paired = sorted(big / little for little, big in zip(small_s, large_s, strict=True))
    return {
        "cleanup_scaling_ratio": min(large_s) / min(small_s),
        "cleanup_scaling_ratio_min": paired[0],
        "cleanup_scaling_ratio_median": statistics.median(paired),
        "cleanup_scaling_ratio_max": paired[-1],
        "cleanup_scaling_rounds": float(len(paired)),
    }


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
            value = len(payload.encode()) + VALUE_HEADER_BYTES  # the stored value's header
            estimate = estimate_key_bytes(len(store.key_for(session.id)), value)
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
