"""SessionManager against a real valkey-server: expiry, caps, accounting, races, cleanup."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis
from redis.crc import key_slot

from agent_lib.errors import (
    InvalidSessionId,
    PayloadTooLarge,
    SessionExists,
    SessionNotFound,
    SessionStoreUnavailable,
)
from agent_lib.sessions._memory_estimate import VALUE_HEADER_BYTES, error_pct, estimate_key_bytes
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import (
    RedisProcess,
    RedisSentinel,
    eventually,
    free_port,
    fresh_namespace,
    keep_touching,
)


def _manager(url: str, **options: object) -> SessionManager:
    return SessionManager.from_url(url, namespace=fresh_namespace(), **options)  # type: ignore[arg-type]


def _index(sm: SessionManager) -> tuple[str, str, str]:
    store = sm.store
    assert isinstance(store, RedisStore)
    return store.index_keys


async def test_crud_round_trip(redis_url: str) -> None:
    async with _manager(redis_url) as sm:
        created = await sm.create({"user": "ada", "turns": [1, 2]})
        got = await sm.get(created.id)
        assert got is not None and got.data == {"user": "ada", "turns": [1, 2]}
        assert got.created_at == created.created_at <= got.last_access
        updated = await sm.update(created.id, {"user": "ada", "turns": [1, 2, 3]})
        assert updated.data["turns"] == [1, 2, 3]
        assert await sm.touch(created.id) is True
        assert await sm.count() == 1
        assert await sm.delete(created.id) is True
        assert await sm.delete(created.id) is False
        assert await sm.get(created.id) is None
        assert await sm.touch(created.id) is False
        with pytest.raises(SessionNotFound):
            await sm.update(created.id, {})
        assert await sm.count() == 0


async def test_explicit_ids_and_conflicts(redis_url: str) -> None:
    async with _manager(redis_url) as sm:
        await sm.create({"a": 1}, session_id="client-chosen_01")
        with pytest.raises(SessionExists):
            await sm.create({"a": 2}, session_id="client-chosen_01")
        for bad in (
            "*",
            "abc*defgh",
            "{tag}abcdef",
            "a:b:c:d:e",
            "with space!",
            "é" * 10,
            "x" * 129,
        ):
            with pytest.raises(InvalidSessionId):
                await sm.get(bad)


async def test_keys_share_one_hash_tag(redis_server: RedisProcess) -> None:
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_server.url, namespace=namespace) as sm:
        session = await sm.create({"k": "v"})
    with redis_server.client() as client:
        keys = sorted(k.decode() for k in client.keys(f"*{namespace}*"))
    tag = f"{{hourglass:{namespace}}}"
    assert keys == sorted(
        [f"hourglass:{tag}:{suffix}" for suffix in ("born", "lru", "sizes")]
        + [f"hourglass:{tag}:s:{session.id}"]
    )
    assert len({key_slot(k.encode()) for k in keys}) == 1


async def test_payload_cap(redis_url: str) -> None:
    async with _manager(redis_url, max_payload=1000) as sm:
        session = await sm.create({"x": "y" * 900})
        with pytest.raises(PayloadTooLarge) as caught:
            await sm.update(session.id, {"x": "y" * 1000})
        assert caught.value.limit == 1000
        got = await sm.get(session.id)
        assert got is not None and got.data == {"x": "y" * 900}


async def test_sliding_ttl_renews_on_read_and_touch(redis_url: str) -> None:
    async with _manager(redis_url, ttl=1.5, max_lifetime=60) as sm:
        kept = await sm.create({"n": 1})
        dropped = await sm.create({"n": 2})
        for step in range(8):  # 2 s of activity, longer than the 1.5 s TTL
            await asyncio.sleep(0.25)
            assert (await sm.get(kept.id) if step % 2 else await sm.touch(kept.id)) not in (
                None,
                False,
            )

        store = sm.store
        assert isinstance(store, RedisStore)

        async def dropped_is_gone() -> bool:  # EXISTS does not renew, unlike get/touch
            return not await store.client.exists(store.key_for(dropped.id))

        await eventually(dropped_is_gone, timeout=3)
        assert await sm.get(kept.id) is not None

        async def kept_is_gone() -> bool:
            return not await store.client.exists(store.key_for(kept.id))

        waited = await eventually(kept_is_gone, timeout=3)
        assert waited >= 0.5  # it was just renewed by the previous get
        assert await sm.count() == 0
        report = await sm.cleanup()
        assert report.expired == 2 and report.bytes_freed > 0
        again = await sm.cleanup()
        assert again.removed == 0 and again.scanned == 0


async def test_absolute_lifetime_ends_touched_sessions(redis_url: str) -> None:
    async with _manager(redis_url, ttl=30, max_lifetime=1) as sm:
        session = await sm.create({"n": 1})

        async def gone_despite_touching() -> bool:
            return not await sm.touch(session.id)

        waited = await eventually(gone_despite_touching, timeout=3)
        assert waited >= 0.5
        assert await sm.get(session.id) is None
        assert await sm.count() == 0


async def test_cleanup_ends_lifetime_and_reports(redis_url: str) -> None:
    namespace = fresh_namespace()
    writer = SessionManager.from_url(redis_url, namespace=namespace, ttl=30, max_lifetime=30)
    async with writer:
        ids = [(await writer.create({"i": i})).id for i in range(5)]
    # A later policy shortens the lifetime: the cleanup ends sessions past the new one.
    async with SessionManager.from_url(
        redis_url, namespace=namespace, ttl=30, max_lifetime=0.2
    ) as sm:
        await asyncio.sleep(0.3)
        dry = await sm.cleanup(dry_run=True)
        assert dry.lifetime_ended == 5 and dry.dry_run
        report = await sm.cleanup()
        assert report.lifetime_ended == 5 and report.expired == 0
        assert all([await sm.get(i) is None for i in ids])


async def test_lru_eviction_at_the_cap(redis_url: str) -> None:
    async with _manager(redis_url, max_sessions=3) as sm:
        first = await sm.create({"n": 1})
        second = await sm.create({"n": 2})
        third = await sm.create({"n": 3})
        assert await sm.touch(first.id)  # now `second` is the least recently used
        fourth = await sm.create({"n": 4})
        assert await sm.get(second.id) is None
        for kept in (first, third, fourth):
            assert await sm.get(kept.id) is not None
        assert await sm.count() == 3
        report = await sm.cleanup()
        assert (report.evicted, report.bytes_freed > 0) == (1, True)  # reported once
        assert (await sm.cleanup()).evicted == 0


async def test_cleanup_evicts_over_a_lowered_cap(redis_url: str) -> None:
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_url, namespace=namespace) as writer:
        ids = [(await writer.create({"i": i})).id for i in range(10)]
    async with SessionManager.from_url(redis_url, namespace=namespace, max_sessions=4) as sm:
        report = await sm.cleanup()
        assert report.evicted == 6
        assert [await sm.get(i) is not None for i in ids] == [False] * 6 + [True] * 4


async def test_memory_cap_evicts_least_recently_used(redis_url: str) -> None:
    async with _manager(redis_url, max_memory="8Ki") as sm:
        blob = "z" * 1500
        ids = [(await sm.create({"b": blob})).id for _ in range(4)]
        assert await sm.touch(ids[0])
        for _ in range(2):  # four fit under 8Ki: the two least recently used make room
            await sm.create({"b": blob})
        _, _, sizes = _index(sm)
        store = sm.store
        assert isinstance(store, RedisStore)
        total = int(await store.client.hget(sizes, "*total"))
        assert 0 < total <= 8 * 1024
        assert await sm.get(ids[0]) is not None, "recently touched session was evicted"
        assert await sm.get(ids[1]) is None, "least recently used session survived"
        assert await sm.get(ids[2]) is None
        assert await sm.get(ids[3]) is not None
        assert await sm.count() == 4
        with pytest.raises(PayloadTooLarge):
            await sm.create({"b": "z" * 9000})


async def test_memory_estimate_matches_memory_usage(redis_url: str) -> None:
    async with _manager(redis_url) as sm:
        store = sm.store
        assert isinstance(store, RedisStore)
        rng = random.Random(7)
        errors = []
        for _ in range(60):
            session = await sm.create({"text": "w" * rng.randint(0, 4000)})
            measured = await store.memory_usage(session.id)
            payload_len = len(f'{{"text":"{session.data["text"]}"}}')
            assert measured is not None
            estimate = estimate_key_bytes(
                len(store.key_for(session.id)), payload_len + VALUE_HEADER_BYTES
            )
            errors.append(error_pct(estimate, measured))
        assert max(errors) <= 20, errors
        assert sum(errors) / len(errors) <= 5


async def test_cleanup_never_deletes_sessions_being_touched(redis_url: str) -> None:
    """8 tasks keep touching 40 sessions while cleanups evict 180 others over a cap of 60."""
    namespace = fresh_namespace()
    writer = SessionManager.from_url(redis_url, namespace=namespace, ttl=5)
    cleaner = SessionManager.from_url(redis_url, namespace=namespace, ttl=5, max_sessions=60)
    async with writer, cleaner:
        idle = [(await writer.create({"idle": i})).id for i in range(200)]
        busy = [(await writer.create({"busy": i})).id for i in range(40)]
        stop = asyncio.Event()
        wrongly_gone: list[str] = []
        tasks = [
            asyncio.create_task(
                keep_touching(writer, busy[i::8], stop, wrongly_gone, grace=4, pause=0.005)
            )
            for i in range(8)
        ]
        await asyncio.sleep(0.05)
        evicted = 0
        try:
            for _ in range(1000):
                if evicted >= 180:
                    break
                report = await cleaner.cleanup(batch_size=4, max_batches=2)
                evicted += report.evicted
                await asyncio.sleep(0.002)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert wrongly_gone == []
        assert evicted == 180
        assert all([await writer.get(sid) is not None for sid in busy])
        assert [await writer.get(sid) is not None for sid in idle] == [False] * 180 + [True] * 20
        assert await writer.count() == 60


async def test_two_concurrent_cleanups_count_each_session_once(redis_url: str) -> None:
    """Two cleanups at once (two CronJob runs overlapping): every expired session is
    removed and reported by exactly one of them. How the work splits is up to timing:
    a run whose candidates the other already removed re-checks them and counts nothing."""
    namespace = fresh_namespace()
    async with SessionManager.from_url(redis_url, namespace=namespace, ttl=0.2) as sm:
        for i in range(600):
            await sm.create({"i": i})
        keep = await sm.create({"keep": True})
        await asyncio.sleep(0.3)
        assert await sm.touch(keep.id) is False  # every one of them idled out
        async with SessionManager.from_url(redis_url, namespace=namespace, ttl=60) as writer:
            live = await writer.create({"live": True})  # its key outlives the 0.2 s policy
        other = SessionManager.from_url(redis_url, namespace=namespace, ttl=0.2)
        async with other:
            first, second = await asyncio.gather(
                sm.cleanup(batch_size=25), other.cleanup(batch_size=25)
            )
        assert first.expired + second.expired == 601
        assert first.complete and second.complete
        assert await sm.get(live.id) is not None
        lru, born, sizes = _index(sm)
        store = sm.store
        assert isinstance(store, RedisStore)
        assert await store.client.zcard(lru) == 1
        assert await store.client.zcard(born) == 1
        assert int(await store.client.hget(sizes, "*total")) == int(
            await store.client.hget(sizes, live.id)
        )


async def test_interrupted_cleanup_is_finished_by_the_next_run(redis_url: str) -> None:
    async with _manager(redis_url, ttl=0.2) as sm:
        for i in range(300):
            await sm.create({"i": i})
        await asyncio.sleep(0.3)
        partial = await sm.cleanup(batch_size=50, max_batches=2)
        assert partial.expired == 100 and not partial.complete

        lru, _, sizes = _index(sm)
        store = sm.store
        assert isinstance(store, RedisStore)
        assert await store.client.zcard(lru) == 200
        rest = await sm.cleanup(batch_size=50)
        assert rest.complete and rest.expired == 200
        assert await store.client.zcard(lru) == 0
        assert int(await store.client.hget(sizes, "*total") or 0) == 0


async def test_cleanup_cost_follows_removals_not_live_sessions(redis_url: str) -> None:
    async with _manager(redis_url, ttl=30) as sm:
        for i in range(500):
            await sm.create({"i": i})
        report = await sm.cleanup(batch_size=100)
        assert report.scanned == 0 and report.removed == 0 and report.batches == 1


async def test_nothing_listening_is_a_typed_error() -> None:
    sm = SessionManager.from_url(
        f"redis://127.0.0.1:{free_port()}/0", namespace=fresh_namespace(), retries=1
    )
    async with sm:
        with pytest.raises(SessionStoreUnavailable):
            await sm.create({"a": 1})


def test_fixture_server_is_real(redis_server: RedisProcess) -> None:
    with redis_server.client() as client:
        info = client.info("server")
    assert info["tcp_port"] == redis_server.port
    assert redis_server.pid is not None and info["process_id"] == redis_server.pid
    with pytest.raises(redis.ResponseError):
        redis_server.client().execute_command("NO-SUCH-COMMAND")


async def test_sentinel_url_finds_the_master(redis_sentinel: RedisSentinel) -> None:
    async with SessionManager.from_url(redis_sentinel.url, namespace=fresh_namespace()) as sm:
        session = await sm.create({"via": "sentinel"})
        got = await sm.get(session.id)
        assert got is not None and got.data == {"via": "sentinel"}
    with redis_sentinel.master.client() as client:
        assert client.exists(f"hourglass:{{hourglass:{sm.store.namespace}}}:s:{session.id}")  # type: ignore[attr-defined]


async def test_periodic_cleanup_inside_the_agent(redis_url: str) -> None:
    async with _manager(redis_url, ttl=0.2, cleanup_interval=0.1) as sm:
        for i in range(20):
            await sm.create({"i": i})
        lru, _, _ = _index(sm)
        store = sm.store
        assert isinstance(store, RedisStore)

        async def index_emptied() -> bool:
            return int(await store.client.zcard(lru)) == 0

        await eventually(index_emptied, timeout=10)
