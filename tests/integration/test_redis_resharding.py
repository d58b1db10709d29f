"""A namespace's Cluster slot migrates between two real masters while agents work.

CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE in small chunks with pauses (so creates,
item appends, capped evictions, reads and cleanups run while the keys are split between
the nodes),
then SETSLOT NODE everywhere. Every script declares every key it touches, so the nodes
answer ASK or TRYAGAIN instead of failing a script half-way, and the store retries
TRYAGAIN with backoff: no call fails, and the index still agrees with the keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisCluster, running_cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def private_cluster() -> Iterator[RedisCluster]:
    """A cluster of its own: migrating a slot must not disturb the shared one."""
    with running_cluster("hg-reshard-") as cluster:
        yield cluster


def _node_id(client: redis.Redis) -> str:
    return str(client.execute_command("CLUSTER", "MYID").decode())


def _migrate(cluster: RedisCluster, slot: int, source: int, target: int) -> int:
    """Move ``slot`` from node ``source`` to node ``target``; returns the keys moved."""
    src, dst = cluster.nodes[source], cluster.nodes[target]
    with src.client() as s, dst.client() as d:
        src_id, dst_id = _node_id(s), _node_id(d)
        d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        moved = 0
        while keys := s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 5):
            s.execute_command("MIGRATE", dst.host, dst.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            time.sleep(0.02)  # keep the slot split a while: agents work meanwhile
        for node in cluster.nodes:
            with node.client() as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return moved


async def test_sessions_survive_their_slot_migrating(private_cluster: RedisCluster) -> None:
    namespace = "resharded"
    slot = key_slot(b"{hourglass:resharded}")
    per_node = 16384 // len(private_cluster.nodes)
    source = min(slot // per_node, len(private_cluster.nodes) - 1)
    target = (source + 1) % len(private_cluster.nodes)
    async with SessionManager.from_url(
        private_cluster.url, namespace=namespace, ttl=3, max_sessions=60, retries=6
    ) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        for i in range(80):
            await sm.create({"idle": i})  # 20 evicted at the cap, before the migration
        busy = [(await sm.create({"busy": i})).id for i in range(10)]
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def creating() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    await sm.create({"during": n})  # evicts at the cap: declared keys
                except Exception as error:
                    failures.append(error)
                await asyncio.sleep(0.03)  # a full cap's turnover takes ~2 s

        async def conversing() -> None:
            """Item lists: new conversations evict at the cap, with their lists declared."""
            items, n = SessionItems(sm), 0
            while not stop.is_set():
                n += 1
                try:
                    await items.append(f"conv{n % 25}", [{"turn": n}])
                    await items.read(f"conv{(n + 7) % 25}", 5)
                    if n % 5 == 0:
                        await items.pop(f"conv{(n + 3) % 25}")
                except Exception as error:
                    failures.append(error)
                await asyncio.sleep(0.02)

        async def touching() -> None:
            while not stop.is_set():
                for sid in busy:
                    try:
                        await sm.touch(sid)
                    except Exception as error:
                        failures.append(error)
                await asyncio.sleep(0.05)

        async def cleaning() -> None:
            while not stop.is_set():
                try:
                    await sm.cleanup(batch_size=7)
                except Exception as error:
                    failures.append(error)
                await asyncio.sleep(0.03)

        tasks = [asyncio.create_task(job()) for job in (creating, conversing, touching, cleaning)]
        try:
            await asyncio.sleep(0.3)
            moved = await asyncio.to_thread(_migrate, private_cluster, slot, source, target)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert moved > 0
        assert failures == [], failures[:3]
        for sid in busy:
            assert await sm.get(sid) is not None, "a session in use was lost"
        for _ in range(2):  # everything but the busy ones goes idle
            await asyncio.sleep(1.6)
            assert all([await sm.touch(sid) for sid in busy])
        await sm.cleanup()
        assert await sm.count() == len(busy)
    with private_cluster.nodes[target].client() as client:
        lru = set(client.zrange(store.index_keys[0], 0, -1))
        keys = set(client.keys(f"*{namespace}*:s:*"))
        assert {k.decode().rsplit(":", 1)[1] for k in keys} == {m.decode() for m in lru}
        lists = {k.decode().rsplit(":", 1)[1] for k in client.keys(f"*{namespace}*:i:*")}
        assert lists == set(), f"item lists outlived their sessions: {sorted(lists)[:5]}"
    with private_cluster.nodes[source].client() as client:
        assert client.keys(f"*{namespace}*") == []
