"""The store's socket timeout on a real valkey-server frozen with SIGSTOP.

``_redis_timeouts`` keeps redis-py's bound without a timer per command: reads have
deadlines that one watchdog per loop checks, and only a write that can wait gets a
timer. The bound must hold as before: a read from a server that answers nothing, and
a write larger than the socket buffers to a server that reads nothing, give up after
the socket timeout (a read within 1.25 of it), the connection is closed, and the next
call, once the server runs again, works on a fresh one; with no read pending, the
watchdog sets no timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
import weakref
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc

from agent_lib.errors import SessionStoreUnavailable
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores import _redis_timeouts as _timeouts
from agent_lib.sessions.stores.base import Limits
from agent_lib.sessions.stores.redis import RedisOptions, RedisStore, connect
from tests.fixtures.redis_server import RedisProcess, fresh_namespace

pytestmark = pytest.mark.timeout(60)
TIMEOUT_S = 0.5
BIG = 64 * 1024 * 1024
"""Far more than loopback's socket buffers (a few MiB): the write must wait to drain."""


@contextlib.contextmanager
def _frozen(server: RedisProcess) -> Iterator[None]:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def test_a_write_to_a_frozen_server_gives_up_after_the_socket_timeout(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    server = redis_server_factory()

    async def scenario() -> tuple[float, bool, bytes | None]:
        client, _ = connect(server.url, RedisOptions(socket_timeout=TIMEOUT_S, retries=0))
        assert isinstance(client, aioredis.Redis)
        try:
            await client.set("small", b"x")  # connected before the freeze
            with _frozen(server):
                started = time.monotonic()
                with pytest.raises(rexc.TimeoutError, match="writing"):
                    await client.set("big", b"\0" * BIG)
                waited = time.monotonic() - started
                idle = list(client.connection_pool._available_connections)  # type: ignore[attr-defined]
                closed = all(not c.is_connected for c in idle)
            return waited, closed, await client.get("small")
        finally:
            await client.aclose()

    waited, closed, after = asyncio.run(scenario())
    assert TIMEOUT_S <= waited < TIMEOUT_S * 10, waited
    assert closed, "a half-written connection went back to the pool open"
    assert after == b"x"


def test_a_read_from_a_frozen_server_gives_up_after_the_socket_timeout(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    server = redis_server_factory()

    async def scenario() -> tuple[float, bool, bytes | None, bool]:
        client, _ = connect(server.url, RedisOptions(socket_timeout=TIMEOUT_S, retries=0))
        assert isinstance(client, aioredis.Redis)
        try:
            await client.set("small", b"x")
            with _frozen(server):
                started = time.monotonic()
                with pytest.raises(rexc.TimeoutError, match="reading"):
                    await client.get("small")
                waited = time.monotonic() - started
                idle = list(client.connection_pool._available_connections)  # type: ignore[attr-defined]
                closed = all(not c.is_connected for c in idle)
            value = await client.get("small")
            await asyncio.sleep(TIMEOUT_S)  # the watchdog's last look, with nothing pending
            watchdog = _timeouts._WATCHDOGS[asyncio.get_running_loop()]
            return waited, closed, value, watchdog._handle is None
        finally:
            await client.aclose()

    waited, closed, value, asleep = asyncio.run(scenario())
    assert TIMEOUT_S <= waited < TIMEOUT_S * 3, waited
    assert closed, "a connection whose read timed out went back to the pool open"
    assert value == b"x"
    assert asleep, "the watchdog kept a timer with no read pending"


def test_a_closed_loop_leaves_no_watchdog_behind(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    """Sync callers run ``asyncio.run`` per request: each loop must go when it closes."""
    server = redis_server_factory()
    client, _ = connect(server.url, RedisOptions(socket_timeout=TIMEOUT_S))
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def call() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        fresh, _ = connect(server.url, RedisOptions(socket_timeout=TIMEOUT_S))
        try:
            await fresh.set("k", b"v")
        finally:
            await fresh.aclose()

    for _ in range(3):
        asyncio.run(call())
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]
    del client


def test_the_store_reports_a_frozen_server_as_unavailable_in_bounded_time(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    server = redis_server_factory()
    store = RedisStore.from_url(
        server.url,
        namespace=fresh_namespace(),
        limits=Limits(ttl_s=600),
        options=RedisOptions(socket_timeout=TIMEOUT_S, retries=1),
    )

    async def scenario() -> tuple[float, object]:
        sm = SessionManager(store)
        try:
            await sm.create({"n": 1}, "before")
            with _frozen(server):
                started = time.monotonic()
                with pytest.raises(SessionStoreUnavailable):
                    await sm.create({"n": 2}, "during")
                waited = time.monotonic() - started
            found = await sm.get("before")
            return waited, None if found is None else found.data
        finally:
            await sm.close()

    waited, data = asyncio.run(scenario())
    assert waited < 30 * TIMEOUT_S, waited  # a few tries, each bounded
    assert data == {"n": 1}
