"""SessionManager on a real 3-master Redis Cluster: single-slot scripts, cleanup per namespace."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis.crc import key_slot

from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisCluster, eventually, keep_touching

pytestmark = pytest.mark.cluster


def _owner(cluster: RedisCluster, key: str) -> int:
    """Index of the master that serves ``key``'s slot (slots were split evenly)."""
    slot = key_slot(key.encode())
    per_node = 16384 // len(cluster.nodes)
    return min(slot // per_node, len(cluster.nodes) - 1)


def _namespaces_on_every_master(cluster: RedisCluster) -> list[str]:
    chosen: dict[int, str] = {}
    for n in range(1000):
        namespace = f"cluster-ns-{n}"
        owner = _owner(cluster, f"{{hourglass:{namespace}}}")
        chosen.setdefault(owner, namespace)
        if len(chosen) == len(cluster.nodes):
            break
    return [chosen[i] for i in sorted(chosen)]


async def test_sessions_and_cleanup_on_every_master(redis_cluster: RedisCluster) -> None:
    namespaces = _namespaces_on_every_master(redis_cluster)
    assert len(namespaces) == 3
    for namespace in namespaces:
        async with SessionManager.from_url(
            redis_cluster.url, namespace=namespace, ttl=1.5, max_sessions=50
        ) as sm:
            idle = [(await sm.create({"idle": i})).id for i in range(40)]
            busy = [(await sm.create({"busy": i})).id for i in range(10)]
            extra = [(await sm.create({"over": i})).id for i in range(5)]
            assert await sm.count() == 50  # the five oldest idle ones were evicted at the cap
            assert [await sm.get(sid) is None for sid in idle[:6]] == [True] * 5 + [False]
            stop = asyncio.Event()
            misses: list[str] = []
            tasks = [
                asyncio.create_task(
                    keep_touching(sm, busy[i::8], stop, misses, grace=1.2, pause=0.02)
                )
                for i in range(8)
            ]
            removed = 0
            deadline = time.monotonic() + 20
            try:
                while removed < len(idle) + len(extra) and time.monotonic() < deadline:
                    removed += (await sm.cleanup(batch_size=7)).removed
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
            assert misses == []
            assert removed == len(idle) + len(extra)  # with the 5 evicted at create
            assert await sm.count() == len(busy)
            store = sm.store
            assert isinstance(store, RedisStore) and store.cluster
        owner = redis_cluster.nodes[_owner(redis_cluster, f"{{hourglass:{namespace}}}")]
        with owner.client() as client:
            keys = client.keys(f"*{namespace}*")
        assert {key_slot(k) for k in keys} == {key_slot(f"{{hourglass:{namespace}}}".encode())}


async def test_cluster_reports_moved_keys_are_followed(redis_cluster: RedisCluster) -> None:
    namespace = _namespaces_on_every_master(redis_cluster)[2]
    async with SessionManager.from_url(redis_cluster.url.split(",")[0], namespace=namespace) as sm:
        session = await sm.create({"via": "first node only"})
        got = await sm.get(session.id)
        assert got is not None and got.data == {"via": "first node only"}
        assert await sm.delete(session.id)

    async def gone() -> bool:
        owner = redis_cluster.nodes[_owner(redis_cluster, f"{{hourglass:{namespace}}}")]
        with owner.client() as client:
            return not client.keys(f"*{namespace}*:s:*")

    await eventually(gone)
    with pytest.raises(redis.exceptions.MovedError):
        key = f"hourglass:{{hourglass:{namespace}}}:lru"
        wrong = next(
            n for i, n in enumerate(redis_cluster.nodes) if i != _owner(redis_cluster, key)
        )
        with wrong.client() as client:
            client.zcard(key)
