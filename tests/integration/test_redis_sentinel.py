"""Sessions through password-protected Sentinels, and a real failover.

Real processes on loopback: a master and a replica with ``requirepass``/``masterauth``,
and three ``valkey-server --sentinel`` processes with ``requirepass`` of their own. The
URL's credentials must reach the sentinels too, or every query fails ("No master
found"). Then the master is SIGKILLed by PID: the sentinels promote the replica, and a
write issued right after the kill succeeds within the client's retry budget.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from agent_lib.sessions.manager import SessionManager
from hourglass_cli.valkey_server import free_port, stop_process
from tests.fixtures.redis_server import (
    START_TIMEOUT_S,
    RedisProcess,
    _spawn,
    fresh_namespace,
    server_binary,
)

PASSWORD = "data-secret"
SENTINEL_PASSWORD = PASSWORD  # the URL's credentials are the sentinels' too
SERVICE = "hourglass"


@dataclass
class _Sentinels:
    master: RedisProcess
    replica: RedisProcess
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}{query}"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=SENTINEL_PASSWORD, socket_timeout=2)

    def master_port(self) -> int:
        with self.client(self.ports[0]) as client:
            reply = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(reply[1])

    def ready(self) -> bool:
        """Every sentinel sees the replica and the two other sentinels."""
        for port in self.ports:
            with self.client(port) as client:
                replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
                others = client.execute_command("SENTINEL", "SENTINELS", SERVICE)
            if len(replicas) != 1 or len(others) != len(self.ports) - 1:
                return False
        return True


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[_Sentinels]:
    master = RedisProcess(tmp_path / "master", password=PASSWORD).start()
    replica = RedisProcess(
        tmp_path / "replica", None, "--replicaof", "127.0.0.1", str(master.port), password=PASSWORD
    ).start()
    group = _Sentinels(master, replica)
    try:
        for index in range(3):
            port = free_port()
            workdir = tmp_path / f"sentinel{index}"
            workdir.mkdir()
            conf = workdir / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\nprotected-mode no\n"
                f"logfile {workdir / 'sentinel.log'}\n"
                f"requirepass {SENTINEL_PASSWORD}\n"
                f"sentinel sentinel-pass {SENTINEL_PASSWORD}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            group.ports.append(port)
            group.processes.append(_spawn([server_binary(), str(conf), "--sentinel"]))
        deadline = time.monotonic() + START_TIMEOUT_S * 3
        while True:
            try:
                if group.ready():
                    break
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sentinels did not discover the replica and each other")
            time.sleep(0.1)
        yield group
    finally:
        for process in group.processes:
            stop_process(process, 5)
        replica.stop()
        master.stop()


@pytest.mark.slow
async def test_password_protected_sentinels_and_a_failover(sentinels: _Sentinels) -> None:
    # A budget of 6 retries (backoff capped at 1 s: about 5 s in all) covers sentinel's
    # 1 s down-after plus the election with margin on a loaded 2-core machine; the
    # default 3 only just does.
    async with SessionManager.from_url(
        sentinels.url(), namespace=fresh_namespace(), retries=6
    ) as sm:
        before = [await sm.create({"n": i}) for i in range(20)]
        with sentinels.master.client() as master:
            assert master.execute_command("WAIT", 1, 5000) == 1  # the replica has them all
        assert sentinels.master_port() == sentinels.master.port
        sentinels.master.kill()  # SIGKILL by PID
        # One call, within the retry budget: it outlasts the promotion.
        after = await sm.create({"written": "across the failover"})
        assert sentinels.master_port() == sentinels.replica.port, "the replica was not promoted"
        got = await sm.get(after.id)
        assert got is not None and got.data == {"written": "across the failover"}
        for session in before:
            assert await sm.get(session.id) is not None
        assert await sm.count() == 21


async def test_sentinel_credentials_reach_the_sentinels(sentinels: _Sentinels) -> None:
    """Without the password on the sentinels, master discovery would fail outright."""
    async with SessionManager.from_url(sentinels.url(), namespace=fresh_namespace()) as sm:
        session = await sm.create({"via": "sentinel"})
        got = await sm.get(session.id)
        assert got is not None and got.data == {"via": "sentinel"}


def test_tls_and_credentials_are_given_to_the_sentinels_too() -> None:
    """No I/O: the clients are built, not connected (TLS needs certificates to run)."""
    from agent_lib.sessions.stores.redis import connect

    client, _ = connect("rediss+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/svc?sentinel_password=sp")
    manager = client.connection_pool.sentinel_manager  # type: ignore[union-attr]
    for sentinel in manager.sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        assert kwargs["password"] == "sp"
        assert "SSL" in sentinel.connection_pool.connection_class.__name__
    assert client.connection_pool.connection_kwargs["password"] == "pw"  # type: ignore[union-attr]
    assert "SSL" in client.connection_pool.connection_class.__name__  # type: ignore[union-attr]
