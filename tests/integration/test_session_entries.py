"""Named entries beside sessions (agent_lib.sessions.entries) on a real valkey-server and in
memory: newest-group reads, drops by prefix with exact accounting, expiry and cleanup
taking the entries with the session, clear refusals, and a Redis Cluster."""

from __future__ import annotations

import asyncio

import pytest

from agent_lib.errors import ConfigError, PayloadTooLarge, SessionError, SessionNotFound
from agent_lib.sessions.entries import EntryPut, SessionEntries
from agent_lib.sessions.items import RecordUpdate, SessionItems
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.entries import SET_OVERHEAD_BYTES, entry_cost
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisCluster, RedisProcess, fresh_namespace


@pytest.fixture(params=["redis", "memory"])
def url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    return redis_server.url if request.param == "redis" else "memory://"


def _manager(url: str, **options: object) -> SessionManager:
    return SessionManager.from_url(url, namespace=fresh_namespace(), **options)  # type: ignore[arg-type]


async def _size(sm: SessionManager, sid: str) -> int:
    return (await sm.store.accounted()).sessions.get(sid, 0)


def _put(name: bytes, value: bytes = b"v", replace: bool = True) -> EntryPut:
    return EntryPut(name, value, replace)


async def test_newest_group_and_prefix_reads(url: str) -> None:
    async with _manager(url) as sm:
        entries = SessionEntries(sm)
        assert await entries.read("t") is None
        puts = [
            _put(b"a\x1e1\x1fc"),
            _put(b"a\x1e2\x1fc"),
            _put(b"a\x1e2\x1fw1"),
            _put(b"b\x1e9\x1fc"),
        ]
        assert await entries.write("t", puts) == 4
        newest = await entries.read("t", prefix=b"a\x1e", latest_group=True)
        assert newest is not None
        assert [name for name, _ in newest.entries] == [b"a\x1e2\x1fc", b"a\x1e2\x1fw1"]
        other = await entries.read("t", prefix=b"b\x1e", latest_group=True)
        assert other is not None and [n for n, _ in other.entries] == [b"b\x1e9\x1fc"]
        nothing = await entries.read("t", prefix=b"c\x1e", latest_group=True)
        assert nothing is not None and nothing.entries == []
        everything = await entries.read("t")
        assert everything is not None and [n for n, _ in everything.entries] == sorted(
            put.name for put in puts
        )


async def test_keep_replace_and_drop_account_exactly(url: str) -> None:
    async with _manager(url) as sm:
        entries = SessionEntries(sm)
        await entries.write("t", [_put(b"g\x1fc", b"first")])
        base = await _size(sm, "t") - SET_OVERHEAD_BYTES - entry_cost(b"g\x1fc", b"first")
        await entries.write("t", [_put(b"g\x1fc", b"second, longer", replace=False)])
        kept = await entries.read("t")
        assert kept is not None and kept.entries == [(b"g\x1fc", b"first")]
        await entries.write("t", [_put(b"g\x1fc", b"x" * 500), _put(b"h\x1fc", b"\0\xff" * 9)])
        expected = entry_cost(b"g\x1fc", b"x" * 500) + entry_cost(b"h\x1fc", b"\0\xff" * 9)
        assert await _size(sm, "t") == base + SET_OVERHEAD_BYTES + expected
        await entries.write("t", [], drop=[b"g", b"g\x1f"])  # overlapping prefixes
        assert await _size(sm, "t") == base + SET_OVERHEAD_BYTES + entry_cost(
            b"h\x1fc", b"\0\xff" * 9
        )
        await entries.write("t", [], drop=[b""])
        assert await _size(sm, "t") == base
        assert (await sm.store.accounted()).total == base


async def test_must_exist_and_refusals(url: str) -> None:
    async with _manager(url, max_payload=1024) as sm:
        entries = SessionEntries(sm)
        with pytest.raises(SessionNotFound):
            await entries.write("gone", [], drop=[b"x"], must_exist=True)
        assert await sm.count() == 0, "a refused write creates nothing"
        with pytest.raises(ConfigError, match=r"puts.*NUL"):
            await entries.write("t", [_put(b"a\0b")])
        with pytest.raises(ConfigError, match=r"puts.*twice"):
            await entries.write("t", [_put(b"a"), _put(b"a")])
        with pytest.raises(ConfigError, match="prefix"):
            await entries.read("t", prefix=b"\xff")
        with pytest.raises(PayloadTooLarge):
            await entries.write("t", [_put(b"a", b"x" * 2000)])
        await SessionItems(sm).append("list", [1])
        with pytest.raises(SessionError):
            await entries.write("list", [_put(b"a")])


async def test_entries_go_with_their_session(url: str) -> None:
    async with _manager(url, ttl=0.3) as sm:
        entries = SessionEntries(sm)
        await entries.write("t", [_put(b"g\x1fc", b"x" * 100)])
        await asyncio.sleep(0.5)
        assert await entries.read("t") is None
        await sm.cleanup()
        assert (await sm.store.accounted()).total == 0
        if isinstance(sm.store, RedisStore):
            assert await sm.store.client.exists(sm.store.items_key_for("t")) == 0
        assert await entries.write("t", [_put(b"new\x1fc")]) == 1, "a new session, empty"


async def test_session_ids_are_the_live_ones_under_a_prefix(url: str) -> None:
    """How an integration finds its sessions without a registry: ended ones (not yet
    cleaned up) and other prefixes are left out, ids that are glob patterns match as text."""
    async with _manager(url, ttl=0.4) as sm:
        entries = SessionEntries(sm)
        await entries.write("lg-old", [_put(b"g\x1fc")])
        await asyncio.sleep(0.6)
        await entries.write("lg-b", [_put(b"g\x1fc")])
        await entries.write("lg-a", [_put(b"g\x1fc")])
        await sm.create(session_id="lgx")
        await sm.create(session_id="other")
        assert await entries.session_ids("lg-") == ["lg-a", "lg-b"]
        assert await entries.session_ids("") == ["lg-a", "lg-b", "lgx", "other"]
        assert await entries.session_ids("lg?") == []
        assert await entries.session_ids("none") == []
        with pytest.raises(ConfigError, match="prefix"):
            await entries.session_ids(b"lg-")  # type: ignore[arg-type]


async def test_entries_on_redis_cluster(redis_cluster: RedisCluster) -> None:
    async with SessionManager.from_url(
        redis_cluster.url, namespace=fresh_namespace(), max_sessions=2
    ) as sm:
        entries = SessionEntries(sm)
        for n in range(3):  # the third evicts the first: its keys declared, on one slot
            await entries.write(f"t{n}", [_put(b"g\x1fc", b"x" * 50)])
        assert await entries.read("t0") is None
        found = await entries.read("t2", latest_group=True)
        assert found is not None and found.entries == [(b"g\x1fc", b"x" * 50)]
        assert await entries.session_ids("t") == ["t1", "t2"], "one slot, one scan"


async def test_records_on_create_register_once_per_life(url: str) -> None:
    async with _manager(url) as sm:
        entries, items = SessionEntries(sm), SessionItems(sm)

        async def write(n: int) -> None:
            update = RecordUpdate("registry", fields={"n": n}, owner=f"life {n}")
            await entries.write("t", [_put(b"g\x1fc")], records=[update], records_on_create=True)

        await write(1)
        await write(2)  # the session lives: its registration stands
        found = await items.read_records(["registry"], owners=True)
        assert found["registry"].fields == {"n": 1}
        assert found["registry"].owners == {"t": "life 1"}
        await sm.delete("t")
        await write(3)  # a new life registers again
        found = await items.read_records(["registry"], owners=True)
        assert found["registry"].fields == {"n": 3}
        assert found["registry"].owners == {"t": "life 3"}
