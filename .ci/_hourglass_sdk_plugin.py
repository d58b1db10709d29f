"""pytest plugin: the OpenAI Agents SDK's own session tests, run against HourglassSession.

Loaded by .ci/openai_agents_sdk_sessions.py with ``-p _hourglass_sdk_plugin`` inside the
SDK's unpacked sdist. Before the SDK's test modules import, it starts a real
valkey-server and puts two thin adapters where the tests take their session class:
``agents.SQLiteSession`` (tests/memory/test_session.py) and
``agents.extensions.memory.redis_session.RedisSession``
(tests/extensions/memory/test_redis_session.py). The adapters only translate the
constructors; every call the tests make runs HourglassSession's own code. None of the
SDK's test code is copied.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import tempfile
import weakref
from pathlib import Path
from typing import Any

import agents
import agents.extensions.memory.redis_session as sdk_redis

from agent_lib.integrations.openai_agents import HourglassSession
from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager
from hourglass_cli.valkey_server import EmbeddedValkey

_server = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="hourglass-sdk-"))).start()
atexit.register(_server.stop)


def _namespace(seed: str) -> str:
    return "sdk-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


class _PerLoop(HourglassSession):
    """HourglassSession with one SessionManager per event loop: the tests call one
    session object from ``run_sync`` threads and thread pools, each with its own loop,
    and a Redis connection belongs to the loop that opened it."""

    def __init__(self, session_id: str, namespace: str, ttl: float, **settings: Any) -> None:
        self._options = {"namespace": namespace, "ttl": ttl, "max_lifetime": None}
        self._managers: weakref.WeakKeyDictionary[Any, SessionManager] = weakref.WeakKeyDictionary()
        super().__init__(session_id, self._manager(None), **settings)

    def _manager(self, loop: Any) -> SessionManager:
        if loop is None:
            return SessionManager.from_url(_server.url, **self._options)  # type: ignore[arg-type]
        manager = self._managers.get(loop)
        if manager is None:
            manager = self._managers[loop] = self._manager(None)
        return manager

    def _bind(self) -> None:
        self.sessions = self._manager(asyncio.get_running_loop())
        self._items = SessionItems(self.sessions)

    async def get_items(self, limit: int | None = None) -> Any:
        self._bind()
        return await super().get_items(limit)

    async def add_items(self, items: Any) -> None:
        self._bind()
        await super().add_items(items)

    async def pop_item(self) -> Any:
        self._bind()
        return await super().pop_item()

    async def clear_session(self) -> None:
        self._bind()
        await super().clear_session()


class SQLiteShaped(_PerLoop):
    """Takes SQLiteSession's constructor; each database path is its own namespace."""

    def __init__(
        self,
        session_id: str,
        db_path: str | Path = ":memory:",
        sessions_table: str = "agent_sessions",
        messages_table: str = "agent_messages",
        session_settings: Any = None,
    ) -> None:
        seed = f"{db_path}|{sessions_table}|{messages_table}"
        if str(db_path) == ":memory:":
            seed += f"|{id(self)}"
        super().__init__(session_id, _namespace(seed), 1800.0, session_settings=session_settings)

    def close(self) -> None:
        """SQLiteSession.close is synchronous; the managers close with their loops."""


class RedisShaped(_PerLoop):
    """Takes RedisSession's constructor; each key prefix is its own namespace."""

    def __init__(
        self,
        session_id: str,
        *,
        redis_client: Any = None,
        key_prefix: str = "agents:session",
        ttl: int | None = None,
        session_settings: Any = None,
    ) -> None:
        super().__init__(
            session_id,
            _namespace(key_prefix),
            float(ttl) if ttl else 1800.0,
            session_settings=session_settings,
        )

    @classmethod
    def from_url(cls, session_id: str, *, url: str, **kwargs: Any) -> RedisShaped:
        return cls(session_id, **kwargs)

    async def ping(self) -> bool:
        self._bind()
        return await self.sessions.count() >= 0

    async def close(self) -> None:
        self._bind()
        await self.sessions.close()


agents.SQLiteSession = SQLiteShaped  # type: ignore[misc,assignment]
sdk_redis.RedisSession = RedisShaped  # type: ignore[misc,assignment]


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """Prove the substitution happened: the tests' conversations are in valkey-server."""
    import redis

    with redis.Redis.from_url(_server.url) as client:
        lists = sum(1 for _ in client.scan_iter("hourglass:{hourglass:sdk-*}:i:*"))
        indexed = sum(1 for _ in client.scan_iter("hourglass:{hourglass:sdk-*}:lru"))
    print(f"\nHourglassSession on valkey-server: {indexed} namespaces, {lists} item lists left")
    if indexed == 0 and exitstatus == 0:
        session.exitstatus = 1
        print("no session reached valkey-server: the substitution did not take effect")
