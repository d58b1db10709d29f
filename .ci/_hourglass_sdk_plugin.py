"""pytest plugin: the OpenAI Agents SDK's own session tests, run against HourglassSession.

Loaded by .ci/openai_agents_sdk_sessions.py with ``-p _hourglass_sdk_plugin`` inside the
SDK's unpacked sdist. Before the SDK's test modules import, it starts a real
valkey-server and puts two thin adapters where the tests take their session class:
``agents.SQLiteSession`` (tests/memory/test_session.py) and
``agents.extensions.memory.redis_session.RedisSession``
(tests/extensions/memory/test_redis_session.py). The adapters only translate the
constructors (and RedisSession's ``ping``/``close``, SQLiteSession's sync ``close``);
every call the tests make runs HourglassSession's own code, including the ``run_sync``
cases that call one session from several event loops. None of the SDK's test code is
copied.
"""

from __future__ import annotations

import atexit
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import agents
import agents.extensions.memory.redis_session as sdk_redis

from agent_lib.integrations.openai_agents import HourglassSession
from agent_lib.sessions.manager import SessionManager
from hourglass_cli.valkey_server import EmbeddedValkey

_server = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="hourglass-sdk-"))).start()
atexit.register(_server.stop)


def _namespace(seed: str) -> str:
    return "sdk-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def _sessions(namespace: str, ttl: float) -> SessionManager:
    return SessionManager.from_url(_server.url, namespace=namespace, ttl=ttl, max_lifetime=None)


class SQLiteShaped(HourglassSession):
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
        sessions = _sessions(_namespace(seed), 1800.0)
        super().__init__(session_id, sessions, session_settings=session_settings)

    def close(self) -> None:
        """SQLiteSession.close is synchronous; each loop's pool closes with its loop."""


class RedisShaped(HourglassSession):
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
        sessions = _sessions(_namespace(key_prefix), float(ttl) if ttl else 1800.0)
        super().__init__(session_id, sessions, session_settings=session_settings)

    @classmethod
    def from_url(cls, session_id: str, *, url: str, **kwargs: Any) -> RedisShaped:
        return cls(session_id, **kwargs)

    async def ping(self) -> bool:
        return await self.sessions.count() >= 0

    async def close(self) -> None:
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
