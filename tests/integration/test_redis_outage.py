"""The session store going away and coming back: typed errors, no false success, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agent_lib.errors import SessionStoreUnavailable
from agent_lib.sessions.manager import SessionManager
from tests.fixtures.redis_server import RedisProcess, eventually, fresh_namespace

pytestmark = pytest.mark.slow


async def test_stop_mid_run_then_restart(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    # fsync on every write, so what the server acknowledged survives SIGKILL.
    server = redis_server_factory("--appendonly", "yes", "--appendfsync", "always")
    sm = SessionManager.from_url(
        server.url, namespace=fresh_namespace(), ttl=600, retries=2, socket_timeout=1.0
    )
    acked: list[str] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                session = await sm.create({"n": n}, session_id=f"writer-{n:06d}")
            except SessionStoreUnavailable as error:
                failures.append(error)
                await asyncio.sleep(0.05)
            else:
                acked.append(session.id)

    async with sm:
        task = asyncio.create_task(writer())
        try:
            await eventually(lambda: _at_least(acked, 100))
            server.kill()
            await eventually(lambda: _at_least(failures, 3), timeout=20)
            with pytest.raises(SessionStoreUnavailable):
                await sm.get(acked[0])  # an outage is an error, never "not found"
            with pytest.raises(SessionStoreUnavailable):
                await sm.touch(acked[0])
            before_restart = len(acked)
            server.start()
            await eventually(lambda: _at_least(acked, before_restart + 50), timeout=20)
        finally:
            stop.set()
            await task
        assert all(isinstance(f, SessionStoreUnavailable) for f in failures)
        missing = [sid for sid in acked if await sm.get(sid) is None]
        assert missing == [], f"{len(missing)} acknowledged sessions were not saved"
        assert await sm.count() >= len(acked)


async def test_get_after_restart_reloads_scripts(
    redis_server_factory: Callable[..., RedisProcess],
) -> None:
    server = redis_server_factory()
    async with SessionManager.from_url(server.url, namespace=fresh_namespace(), retries=1) as sm:
        first = await sm.create({"a": 1})
        server.stop()
        with pytest.raises(SessionStoreUnavailable):
            await sm.create({"a": 2})
        server.start()  # an empty server: no data, no cached scripts
        assert await sm.get(first.id) is None
        second = await sm.create({"a": 3})
        got = await sm.get(second.id)
        assert got is not None and got.data == {"a": 3}


async def _at_least(items: list[object], n: int) -> bool:
    return len(items) >= n
