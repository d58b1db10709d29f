"""Errors by class, not by message text, on a real valkey-server; a cleaner that survives.

redis-py strips the ``OOM``/``READONLY`` prefixes from replies, so the store maps its
exception classes: OOM, READONLY, LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN and
connection or timeout failures are `SessionStoreUnavailable` (or a subclass).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.exceptions as rexc

from agent_lib import (
    SessionStoreFull,
    SessionStoreLoading,
    SessionStoreReadOnly,
    SessionStoreResharding,
    SessionStoreUnavailable,
)
from agent_lib.errors import SessionError
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.redis import RedisStore, _unavailable
from tests.fixtures.redis_server import RedisProcess, eventually, fresh_namespace


async def test_out_of_memory_is_store_full(redis_server_factory: object) -> None:
    server = redis_server_factory("--maxmemory-policy", "noeviction")  # type: ignore[operator]
    async with SessionManager.from_url(server.url, namespace=fresh_namespace()) as sm:
        kept = await sm.create({"a": 1})
        with server.client() as client:
            client.config_set("maxmemory", 1)
        with pytest.raises(SessionStoreFull) as caught:
            await sm.create({"b": 2})
        assert isinstance(caught.value, SessionStoreUnavailable)
        assert caught.value.reason == "oom"
        with server.client() as client:
            client.config_set("maxmemory", 0)
        assert await sm.get(kept.id) is not None


async def test_a_replica_is_read_only(
    redis_server: RedisProcess, redis_server_factory: object
) -> None:
    replica = redis_server_factory("--replicaof", redis_server.host, str(redis_server.port))  # type: ignore[operator]
    async with SessionManager.from_url(replica.url, namespace=fresh_namespace()) as sm:
        with pytest.raises(SessionStoreReadOnly) as caught:
            await sm.create({"a": 1})
        assert isinstance(caught.value, SessionStoreUnavailable)
        assert caught.value.reason == "readonly"


@pytest.mark.parametrize(
    ("error", "ours", "reason"),
    [
        (rexc.OutOfMemoryError("command not allowed"), SessionStoreFull, "oom"),
        (rexc.ReadOnlyError("against a replica"), SessionStoreReadOnly, "readonly"),
        (rexc.BusyLoadingError("loading the dataset in memory"), SessionStoreLoading, "loading"),
        (rexc.MasterDownError("Link with MASTER is down"), SessionStoreLoading, "masterdown"),
        (rexc.TryAgainError("slot migrating"), SessionStoreResharding, "tryagain"),
        (rexc.ClusterDownError("The cluster is down"), SessionStoreResharding, "clusterdown"),
        (rexc.ConnectionError("Connection refused"), SessionStoreUnavailable, "connection"),
        (rexc.TimeoutError("Timeout reading from socket"), SessionStoreUnavailable, "timeout"),
    ],
)  # fmt: skip
def test_each_redis_py_class_maps_to_its_unavailable_class(
    error: Exception, ours: type[SessionStoreUnavailable], reason: str
) -> None:
    """redis-py's own classes (what its parser raises for each reply prefix), no mocks."""
    mapped = _unavailable(error)
    assert type(mapped) is ours and mapped.reason == reason and mapped.field == "store"


async def test_the_periodic_cleaner_logs_any_error_and_goes_on(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agent_lib.sessions")
    sm = SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=0.2, cleanup_interval=0.05
    )
    store = sm.store
    assert isinstance(store, RedisStore)
    session = await sm.create({"a": 1})
    with redis_server.client() as client:
        client.delete(store.index_keys[1])
        client.set(store.index_keys[1], "not a sorted set")  # WRONGTYPE for every cleanup

        async def logged() -> bool:
            return any("cleanup failed" in r.getMessage() for r in caplog.records)

        await eventually(logged)
        assert sm._cleaner is not None and not sm._cleaner.done()
        client.delete(store.index_keys[1])

    async def cleaned() -> bool:
        return await store.count() == 0 and await sm.get(session.id) is None

    await eventually(cleaned)
    assert sm._cleaner is not None and not sm._cleaner.done()
    await sm.close()  # never re-raises what the cleaner met


async def test_close_closes_the_store_even_when_the_cleaner_died(
    redis_server: RedisProcess,
) -> None:
    sm = SessionManager.from_url(redis_server.url, namespace=fresh_namespace(), cleanup_interval=10)
    await sm.create()

    async def boom() -> None:
        raise SessionError("the cleaner met something")

    assert sm._cleaner is not None
    sm._cleaner.cancel()
    sm._cleaner = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0)
    await sm.close()  # the cleaner's error is not re-raised
    assert sm._cleaner is None


async def test_scripts_flushed_from_the_server_are_loaded_again(redis_server: RedisProcess) -> None:
    """A restarted or failed-over server has no scripts: the next call loads them."""
    async with SessionManager.from_url(redis_server.url, namespace=fresh_namespace()) as sm:
        session = await sm.create({"a": 1})
        with redis_server.client() as client:
            client.script_flush()
            assert not any(client.script_exists(*_shas(sm)))
        assert await sm.touch(session.id) is True
        fetched = await sm.get(session.id)
        assert fetched is not None and fetched.data == {"a": 1}
        with redis_server.client() as client:
            assert client.script_exists(*_shas(sm, "access")) == [True]


def _shas(sm: SessionManager, *names: str) -> list[str]:
    """The registered scripts' digests (``names``: only those)."""
    store = sm.store
    assert isinstance(store, RedisStore)
    return [s.sha for name, s in store._scripts.items() if not names or name in names]
