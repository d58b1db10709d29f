"""The store's connection pool on a real valkey-server: a burst waits, a full pool times out.

`_WaitingPool` replaced redis-py's BlockingConnectionPool (which pays a Condition and a
timeout on every command) with a plain pool that waits only when it is full.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_lib.errors import SessionStoreUnavailable
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import Limits
from agent_lib.sessions.stores.redis import RedisOptions, RedisStore
from tests.fixtures.redis_server import RedisProcess, fresh_namespace

pytestmark = pytest.mark.timeout(60)


def _manager(server: RedisProcess, **options: float) -> SessionManager:
    store = RedisStore.from_url(
        server.url,
        namespace=fresh_namespace(),
        limits=Limits(ttl_s=600),
        options=RedisOptions(max_connections=2, **options),  # type: ignore[arg-type]
    )
    return SessionManager(store)


def test_a_burst_wider_than_the_pool_waits_and_every_call_lands(
    redis_server: RedisProcess,
) -> None:
    async def burst() -> tuple[list[int], int]:
        sm = _manager(redis_server)
        try:
            await asyncio.gather(*(sm.create({"i": i}, f"s{i}") for i in range(60)))
            found = await asyncio.gather(*(sm.get(f"s{i}") for i in range(60)))
            pool = sm.store.client.connection_pool  # type: ignore[attr-defined]
            return [s.data["i"] for s in found if s is not None], len(pool._available_connections)
        finally:
            await sm.close()

    values, opened = asyncio.run(burst())
    assert values == list(range(60))
    assert opened <= 2


def test_a_full_pool_gives_up_after_the_socket_timeout(redis_server: RedisProcess) -> None:
    async def starved() -> float:
        sm = _manager(redis_server, socket_timeout=0.3)
        await sm.create({}, "warm")
        pool = sm.store.client.connection_pool  # type: ignore[attr-defined]
        held = [await pool.get_connection(), await pool.get_connection()]
        started = time.monotonic()
        try:
            with pytest.raises(SessionStoreUnavailable):
                await sm.get("warm")
            return time.monotonic() - started
        finally:
            for connection in held:
                await pool.release(connection)
            await sm.close()

    waited = asyncio.run(starved())
    assert waited >= 0.3


def test_a_waiting_call_takes_the_connection_released_to_it(redis_server: RedisProcess) -> None:
    async def handed_over() -> dict[str, int]:
        sm = _manager(redis_server, socket_timeout=5)
        await sm.create({"n": 1}, "warm")
        pool = sm.store.client.connection_pool  # type: ignore[attr-defined]
        held = [await pool.get_connection(), await pool.get_connection()]
        waiting = asyncio.create_task(sm.get("warm"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await pool.release(held.pop())
        try:
            found = await asyncio.wait_for(waiting, 2)
            return found.data if found is not None else {}
        finally:
            for connection in held:
                await pool.release(connection)
            await sm.close()

    assert asyncio.run(handed_over()) == {"n": 1}
