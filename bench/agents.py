"""Agent-framework sessions: HourglassSession against the OpenAI Agents SDK's own store.

- ``agents_session_add_get_ratio_vs_sdk_redis``: throughput of one turn's storage work,
  ``add_items`` (a user message and a reply) then ``get_items(limit=20)``, through
  `HourglassSession` over the same through the SDK's ``RedisSession`` (with a TTL, as a
  service would run it), on the same valkey-server in the same run, 32 concurrent
  workers over 64 conversations that start with 40 items each; the best of 7 rounds of
  each side in alternating order (goal >= 1.0), as for the sessions ratios;
  ``..._paired_median`` is the median of the round-by-round ratios.
- ``langgraph_put_get_ratio_vs_raw_redis``: throughput of `HourglassSaver` ``aput`` then
  ``aget_tuple`` of a 10 KiB checkpoint, each on a new thread, over raw redis-py writing
  and reading the same serialized bytes with the same two round trips (a pipeline of SET
  with the TTL and RPUSH of the thread to a registry list, then GET; ``aput`` needs no
  registry: ``list(None)`` finds threads in the namespace's session index), 32
  concurrent workers, best of 7 rounds of each side in alternating order (goal >= 0.7).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from agents.extensions.memory.redis_session import RedisSession

from agent_lib.integrations.openai_agents import HourglassSession
from agent_lib.sessions.manager import SessionManager
from bench.sessions import TTL_S, _best_ratio, _server

CONVERSATIONS = 64
PREFILL = 40
LIMIT = 20


def run(quick: bool) -> dict[str, float]:
    with _server() as url:
        return asyncio.run(_all(url, quick))


def _turn(i: int) -> list[Any]:
    return [
        {"role": "user", "content": f"question {i}: what changed since the last deploy?"},
        {"role": "assistant", "content": f"answer {i}: " + "the timeout profile moved. " * 4},
    ]


async def _prefill(sessions: list[Any]) -> None:
    for session in sessions:
        for i in range(PREFILL // 2):
            await session.add_items(_turn(i))


def _op(sessions: list[Any]) -> Callable[[int], Awaitable[object]]:
    async def turn(i: int) -> object:
        session = sessions[i % len(sessions)]
        await session.add_items(_turn(i))
        return await session.get_items(limit=LIMIT)

    return turn


async def _all(url: str, quick: bool) -> dict[str, float]:
    ops = 1_600 if quick else 8_000
    client = aioredis.Redis.from_url(url, max_connections=64)
    async with SessionManager.from_url(url, namespace="bench-agents", ttl=TTL_S) as sm:
        ours = [HourglassSession(f"conv-{n}", sm) for n in range(CONVERSATIONS)]
        theirs = [
            RedisSession(f"conv-{n}", redis_client=client, key_prefix="sdk", ttl=int(TTL_S))
            for n in range(CONVERSATIONS)
        ]
        try:
            await _prefill(ours)
            await _prefill(theirs)
            best, paired_median = await _best_ratio(_op(ours), _op(theirs), ops)
        finally:
            await client.aclose()
    metrics = {
        "agents_session_add_get_ratio_vs_sdk_redis": best,
        "agents_session_add_get_ratio_vs_sdk_redis_paired_median": paired_median,
    }
    best, paired_median = await _langgraph_ratio(url, ops)
    metrics["langgraph_put_get_ratio_vs_raw_redis"] = best
    metrics["langgraph_put_get_ratio_vs_raw_redis_paired_median"] = paired_median
    return metrics


async def _langgraph_ratio(url: str, ops: int) -> tuple[float, float]:
    from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

    from agent_lib.integrations.langgraph import HourglassSaver

    checkpoint = create_checkpoint(empty_checkpoint(), None, 1)
    checkpoint["channel_values"] = {"notes": os.urandom(5 * 1024).hex()}  # 10 KiB
    metadata: Any = {"source": "loop", "step": 1}
    client = aioredis.Redis.from_url(url, max_connections=64)
    async with SessionManager.from_url(url, namespace="bench-langgraph", ttl=TTL_S) as sm:
        saver = HourglassSaver(sm)
        blob = saver.serde.dumps_typed(checkpoint)[1]
        ttl_ms = int(TTL_S * 1000)
        rounds = iter(range(1_000_000_000))

        async def ours(i: int) -> object:
            config: Any = {"configurable": {"thread_id": f"t{next(rounds)}", "checkpoint_ns": ""}}
            stored = await saver.aput(config, checkpoint, metadata, {})
            return await saver.aget_tuple(stored)

        async def theirs(i: int) -> object:
            key = f"raw:{{raw:lg}}:{next(rounds)}"
            pipe = client.pipeline(transaction=False)
            pipe.set(key, blob, px=ttl_ms)
            pipe.rpush("raw:{raw:lg}:threads", key)
            await pipe.execute()
            return await client.get(key)

        try:
            return await _best_ratio(ours, theirs, ops)
        finally:
            await client.aclose()
