"""Item lists beside sessions (agent_lib.sessions.items) on a real valkey-server and in memory:
atomic appends, O(limit) reads from the tail, byte accounting, expiry, eviction, cleanup."""

from __future__ import annotations

import asyncio

import pytest

from agent_lib.errors import InvalidSessionId, PayloadTooLarge, SessionConflict
from agent_lib.sessions.items import RecordUpdate, SessionItems
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET
from agent_lib.sessions.stores.items import ITEM_OVERHEAD_BYTES, LIST_OVERHEAD_BYTES
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisCluster, RedisProcess, fresh_namespace


@pytest.fixture(params=["redis", "memory"])
def url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    return redis_server.url if request.param == "redis" else "memory://"


def _manager(url: str, **options: object) -> SessionManager:
    return SessionManager.from_url(url, namespace=fresh_namespace(), **options)  # type: ignore[arg-type]


async def _accounted(sm: SessionManager, sid: str) -> int:
    store = sm.store
    if isinstance(store, RedisStore):
        raw = await store.client.hget(store.index_keys[2], sid)
        return int(raw or 0)
    entry = store._by_access.get(sid)  # type: ignore[attr-defined]
    return 0 if entry is None else int(entry.size)


async def test_append_read_pop_clear(url: str) -> None:
    async with _manager(url) as sm:
        items = SessionItems(sm)
        assert await items.read("conv-1") is None
        assert await items.pop("conv-1") is None
        assert await items.append("conv-1", []) == 0
        assert await items.read("conv-1") is None  # an empty append creates nothing
        assert await items.append("conv-1", [{"n": 1}, {"n": 2}], data={"k": "v"}) == 2
        assert await items.append("conv-1", [{"n": 3}]) == 3
        history = await items.read("conv-1", with_data=True)
        assert history is not None
        assert history.items == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert history.data == {"k": "v"}
        assert history.created_at <= history.last_access
        latest = await items.read("conv-1", 2)
        assert latest is not None and latest.items == [{"n": 2}, {"n": 3}]
        zero = await items.read("conv-1", 0)
        assert zero is not None and zero.items == []
        assert await items.pop("conv-1") == {"n": 3}
        assert await sm.count() == 1
        assert await items.clear("conv-1") is True
        assert await items.read("conv-1") is None
        assert await items.pop("conv-1") is None
        assert await sm.count() == 0


async def test_bytes_follow_the_items(url: str) -> None:
    async with _manager(url) as sm:
        items = SessionItems(sm)
        await items.append("acct", [{"a": 1}], data={})
        base = await _accounted(sm, "acct")
        assert base > LIST_OVERHEAD_BYTES
        one = b'{"text":"' + b"x" * 500 + b'"}'
        await items.append("acct", [{"text": "x" * 500}])
        assert await _accounted(sm, "acct") == base + len(one) + ITEM_OVERHEAD_BYTES
        await items.pop("acct")
        assert await _accounted(sm, "acct") == base
        # Replacing the data changes the accounted bytes by the payload estimate only.
        await items.append("acct", [], data={"state": "y" * 300}, replace_data=True)
        grown = await _accounted(sm, "acct")
        assert grown > base + 250
        await items.append("acct", [], data={}, replace_data=True)
        assert await _accounted(sm, "acct") == base


async def test_items_count_against_max_memory_and_evict_lru(url: str) -> None:
    async with _manager(url, max_memory=20_000) as sm:
        items = SessionItems(sm)
        await items.append("old", [{"t": "a" * 5000}])
        await items.append("new", [{"t": "b" * 5000}])
        for _ in range(4):  # "new" grows past the cap: the least recently used goes
            await items.append("new", [{"t": "c" * 3000}])
        assert await items.read("old") is None
        history = await items.read("new")
        assert history is not None and len(history.items) == 5
        with pytest.raises(PayloadTooLarge):
            await items.append("new", [{"t": "d" * 15_000}])
        after = await items.read("new")
        assert after is not None and len(after.items) == 5  # nothing half-written


async def test_item_writes_bump_the_version(url: str) -> None:
    """Appending and popping are data writes: a conditional update made before them conflicts."""
    async with _manager(url) as sm:
        items = SessionItems(sm)
        await items.append("v", [{"n": 1}], data={"who": "me"})
        first = await sm.get("v")
        assert first is not None and first.version == 1 and first.data == {"who": "me"}
        await items.append("v", [{"n": 2}])
        assert await items.pop("v") == {"n": 2}
        assert await items.pop("v") == {"n": 1}
        assert await items.pop("v") is None  # nothing popped: no write
        now = await sm.get("v")
        assert now is not None and now.version == 4 and now.data == {"who": "me"}
        with pytest.raises(SessionConflict):
            await sm.update("v", {"who": "stale"}, if_version=first.version)
        await items.append("v", [{"n": 3}], data={"who": "you"}, replace_data=True)
        history = await items.read("v", with_data=True)
        assert history is not None and history.data == {"who": "you"}  # no header in it
        assert history.items == [{"n": 3}]
        updated = await sm.update("v", {"who": "us"}, if_version=5)
        assert updated is not None and updated.version == 6


async def test_an_append_examines_a_bounded_batch(redis_server: RedisProcess) -> None:
    """A new conversation after the cap was lowered evicts at most WRITE_EVICTION_BUDGET
    sessions (declared in a second call), their item lists with them; cleanup does the rest."""
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_server.url, namespace=namespace) as loose:
        for n in range(100):
            await SessionItems(loose).append(f"c{n}", [{"n": n}])
    async with SessionManager.from_url(
        redis_server.url, namespace=namespace, max_sessions=10
    ) as tight:
        await SessionItems(tight).append("newest", [{"n": -1}])
        assert await tight.count() == 101 - WRITE_EVICTION_BUDGET
        with redis_server.client() as client:
            lists = client.keys(f"*{namespace}*:i:*")
        assert len(lists) == 101 - WRITE_EVICTION_BUDGET
        report = await tight.cleanup()
        assert report.evicted == 100 + 1 - 10  # the write's evictions and cleanup's
        assert await tight.count() == 10
        with redis_server.client() as client:
            assert len(client.keys(f"*{namespace}*:i:*")) == 10
        history = await SessionItems(tight).read("newest")
        assert history is not None and history.items == [{"n": -1}]


async def test_concurrent_appends_lose_nothing(url: str) -> None:
    async with _manager(url) as first, _manager(url) as _:
        writers = [SessionItems(first) for _ in range(4)]

        async def write(worker: int) -> None:
            for i in range(25):
                await writers[worker].append("shared", [{"w": worker, "i": i}])

        await asyncio.gather(*(write(w) for w in range(4)))
        history = await writers[0].read("shared")
        assert history is not None and len(history.items) == 100
        for worker in range(4):  # each writer's own order is kept
            mine = [item["i"] for item in history.items if item["w"] == worker]
            assert mine == list(range(25))


async def test_expired_session_reads_empty_and_restarts(url: str) -> None:
    async with _manager(url, ttl=0.3) as sm:
        items = SessionItems(sm)
        await items.append("brief", [{"n": 1}, {"n": 2}])
        await asyncio.sleep(0.5)
        assert await items.read("brief") is None
        assert await items.pop("brief") is None
        await items.append("brief", [{"n": 3}])  # a new conversation, without the old items
        history = await items.read("brief")
        assert history is not None and history.items == [{"n": 3}]


async def test_lifetime_ends_history(url: str) -> None:
    async with _manager(url, ttl=60, max_lifetime=0.4) as sm:
        items = SessionItems(sm)
        await items.append("life", [{"n": 1}])
        await asyncio.sleep(0.6)
        assert await items.read("life") is None


async def test_cleanup_removes_conversations_with_their_items(redis_server: RedisProcess) -> None:
    namespace = fresh_namespace()
    async with SessionManager.from_url(
        redis_server.url, namespace=namespace, ttl=0.3, max_lifetime=None
    ) as sm:
        items = SessionItems(sm)
        for n in range(5):
            await items.append(f"c{n}", [{"n": i} for i in range(10)])
        assert await sm.count() == 5
        await asyncio.sleep(0.5)
        assert await sm.count() == 0
        with redis_server.client() as client:
            lists = client.keys(f"*{namespace}*:i:*")
        assert len(lists) == 5  # the item lists outlive the expired keys until cleanup
        await items.append("live", [{"n": 0}])
        report = await sm.cleanup()
        assert report.expired == 5
        with redis_server.client() as client:
            assert [k.decode() for k in client.keys(f"*{namespace}*:i:*")] == [
                f"hourglass:{{hourglass:{namespace}}}:i:live"
            ]
            sizes = client.hgetall(f"hourglass:{{hourglass:{namespace}}}:sizes")
        assert int(sizes[b"*total"]) == await _accounted(sm, "live")
        assert not any(k.startswith(b"*i:c") for k in sizes)  # no marker outlives its list
        assert int(sizes[b"*listed"]) == 1  # the one session left with a list
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("hourglass_sessions", {"namespace": namespace}) == 1


async def test_restart_keeps_history(redis_server: RedisProcess) -> None:
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_server.url, namespace=namespace) as sm:
        await SessionItems(sm).append("kept", [{"turn": 1}, {"turn": 2}])
    async with SessionManager.from_url(redis_server.url, namespace=namespace) as again:
        history = await SessionItems(again).read("kept")
        assert history is not None and history.items == [{"turn": 1}, {"turn": 2}]


async def test_list_key_shares_the_session_hash_tag(redis_server: RedisProcess) -> None:
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_server.url, namespace=namespace) as sm:
        await SessionItems(sm).append("tagged", [{"x": 1}])
        store = sm.store
        assert isinstance(store, RedisStore)
        tag = f"{{hourglass:{namespace}}}"
        assert store.items_key_for("tagged") == f"hourglass:{tag}:i:tagged"
        assert await store.client.llen(store.items_key_for("tagged")) == 1


async def test_bad_input_names_the_field(url: str) -> None:
    async with _manager(url, max_payload=100) as sm:
        items = SessionItems(sm)
        with pytest.raises(InvalidSessionId):
            await items.append("a:b", [{"x": 1}])
        with pytest.raises(PayloadTooLarge):
            await items.append("ok", [{"x": "y" * 200}])
        with pytest.raises(Exception, match="item is not JSON"):
            await items.append("ok", [{1, 2}])
        assert await items.read("ok") is None


@pytest.mark.cluster
async def test_items_on_redis_cluster(redis_cluster: RedisCluster) -> None:
    """Every items script is single-slot: the list shares the namespace's hash tag."""
    async with SessionManager.from_url(redis_cluster.url, namespace=fresh_namespace()) as sm:
        items = SessionItems(sm)
        await items.append("clustered", [{"n": i} for i in range(30)])
        latest = await items.read("clustered", 5)
        assert latest is not None and [i["n"] for i in latest.items] == [25, 26, 27, 28, 29]
        assert await items.pop("clustered") == {"n": 29}
        assert await items.clear("clustered") is True
        assert await items.read("clustered") is None
        # shared records: written, read and compacted by single-slot scripts too
        update = RecordUpdate("shared", {"f": 1}, owner="o")
        await items.append("owner", [1], records=[update], must_not_exist=True)
        found = await items.read("owner", records=["shared"])
        assert found is not None and found.records["shared"].fields == {"f": 1}
        await items.clear("owner")
        report = await sm.cleanup()
        assert report.to_dict()["records_removed"] == 1
        assert await items.read_records(["shared"]) == {}


async def test_a_list_marked_before_item_bytes_were_kept_is_counted_once(
    redis_server: RedisProcess,
) -> None:
    """Item marks of the layout before issue 25 hold 1, not the items' part: the first
    write that needs the part counts the list once and keeps the figure."""
    async with _manager(redis_server.url) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        items = SessionItems(sm)
        await items.append("old", [{"n": 1}, {"n": 2}], data={"d": 1})
        exact = await store.accounted()
        await store.client.hset(store.index_keys[2], "*i:old", 1)  # as the old layout left it
        await sm.update("old", {"d": 1})
        assert await store.accounted() == exact
        assert await items.pop("old") == {"n": 2}
        one = len(b'{"n":2}') + ITEM_OVERHEAD_BYTES
        after = await store.accounted()
        assert after.sessions["old"] == exact.sessions["old"] - one == after.total


async def test_get_items_limits_follow_sqlite_session(url: str) -> None:
    """The Agents SDK's SQLiteSession: None, negative or very large is all, 0 is none."""
    from agents.memory import SQLiteSession

    from agent_lib.integrations.openai_agents import HourglassSession

    async with _manager(url) as sm:
        ours, ref = HourglassSession("conv", sm), SQLiteSession("conv")
        turns = [{"role": "user", "content": f"turn {n}"} for n in range(3)]
        for session in (ours, ref):
            await session.add_items(list(turns))
        for limit in (None, -1, -7, 0, 1, 2, 3, 4, 2**31, 2**63 - 1):
            assert await ours.get_items(limit) == await ref.get_items(limit), limit
        assert await ours.get_items(2**64) == turns
