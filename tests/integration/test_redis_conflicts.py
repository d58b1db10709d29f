"""Concurrent writers lose nothing; a taken id is refused; a retried create is recognised.

Against a real valkey-server and the in-process store (the same semantics). The lost
reply is produced by a real TCP proxy between redis-py and the server that drops the
connection after the server has applied the create and before its reply arrives, so
redis-py's own retry sends the same script again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest

from agent_lib import SessionConflict, SessionError, SessionExists, SyncSessionManager
from agent_lib.sessions.manager import SessionManager
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


@pytest.fixture(params=["redis", "memory"])
def store_url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    return redis_server.url if request.param == "redis" else "memory://"


def _append(item: int):  # type: ignore[no-untyped-def]
    def apply(data: dict[str, list[int]]) -> dict[str, list[int]]:
        return {"items": [*data["items"], item]}

    return apply


async def test_concurrent_appends_through_mutate_keep_every_item(store_url: str) -> None:
    async with SessionManager.from_url(store_url, namespace=fresh_namespace()) as sm:
        session = await sm.create({"items": []})
        assert session.version == 1
        results = await asyncio.gather(*(sm.mutate(session.id, _append(i)) for i in range(5)))
        stored = await sm.get(session.id)
        assert stored is not None
        assert sorted(stored.data["items"]) == [0, 1, 2, 3, 4]
        assert stored.version == 6
        assert sorted(r.version for r in results) == [2, 3, 4, 5, 6]


async def test_update_if_version_refuses_a_stale_write(store_url: str) -> None:
    async with SessionManager.from_url(store_url, namespace=fresh_namespace()) as sm:
        session = await sm.create({"n": 0})
        first = await sm.update(session.id, {"n": 1}, if_version=session.version)
        assert first.version == 2
        with pytest.raises(SessionConflict) as caught:
            await sm.update(session.id, {"n": "stale"}, if_version=session.version)
        assert isinstance(caught.value, SessionError)
        assert caught.value.field == "if_version" and caught.value.actual == 2
        unconditional = await sm.update(session.id, {"n": 2})
        assert unconditional.version == 3
        stored = await sm.get(session.id)
        assert stored is not None and stored.data == {"n": 2} and stored.version == 3


def test_sync_manager_mutates_from_threads(redis_server: RedisProcess) -> None:
    with SyncSessionManager.from_url(redis_server.url, namespace=fresh_namespace()) as sm:
        sid = sm.create({"items": []}).id
        threads = [threading.Thread(target=sm.mutate, args=(sid, _append(i))) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        stored = sm.get(sid)
        assert stored is not None and sorted(stored.data["items"]) == [0, 1, 2, 3, 4]
        with pytest.raises(SessionConflict):
            sm.update(sid, {"items": []}, if_version=1)
        # Another client writes between every read and write: mutate gives up.
        with SyncSessionManager.from_url(
            redis_server.url, namespace=sm.manager.store.namespace
        ) as other:
            calls = []

            def interfered(data: object) -> object:
                calls.append(1)
                other.update(sid, {"items": ["other"]})
                return data

            with pytest.raises(SessionConflict):
                sm.mutate(sid, interfered, retries=2)
            assert len(calls) == 3


async def test_create_with_a_taken_id_raises_even_with_equal_data(store_url: str) -> None:
    async with SessionManager.from_url(store_url, namespace=fresh_namespace()) as sm:
        await sm.create({"same": True}, session_id="taken-id")
        with pytest.raises(SessionExists):
            await sm.create({"same": True}, session_id="taken-id")


class _LoseOneReply:
    """A loopback TCP proxy that swallows the server's reply to the first request
    containing ``marker`` and closes that client connection."""

    def __init__(self, port: int, marker: bytes) -> None:
        self.upstream_port = port
        self.marker = marker
        self.dropped = 0
        self._armed = True
        self.server: asyncio.Server | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self.server.sockets[0].getsockname()[1]
        finally:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        lose_next = asyncio.Event()

        async def to_server() -> None:
            while data := await reader.read(65536):
                if self._armed and self.marker in data:
                    self._armed = False
                    lose_next.set()
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                if lose_next.is_set():
                    self.dropped += 1
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        with contextlib.suppress(ConnectionError):
            await asyncio.wait(
                [asyncio.create_task(to_server()), asyncio.create_task(to_client())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        writer.close()
        up_writer.close()


async def test_a_create_retried_after_a_lost_reply_returns_its_own_session(
    redis_server: RedisProcess,
) -> None:
    proxy = _LoseOneReply(redis_server.port, b"lost-reply-marker")
    async with proxy.running() as port:
        url = f"redis://127.0.0.1:{port}/0"
        async with SessionManager.from_url(url, namespace=fresh_namespace()) as sm:
            await sm.count()  # connect and load scripts before the marked call
            session = await sm.create({"m": "lost-reply-marker"}, session_id="retried-id")
            assert proxy.dropped == 1, "the proxy did not lose the reply"
            assert session.data == {"m": "lost-reply-marker"} and session.version == 1
            with pytest.raises(SessionExists):
                await sm.create({"m": "lost-reply-marker"}, session_id="retried-id")
