"""Sessions in Redis or Valkey (standalone, Sentinel or Cluster) on redis-py's asyncio client.

Key layout of one namespace (``P`` is the SessionPolicy's ``keyPrefix``)::

    P:{P:ns}:s:<id>  the session payload, a string with PX = the sliding TTL
    P:{P:ns}:lru     sorted set id -> last access (us): LRU order and idle deadlines
    P:{P:ns}:born    sorted set id -> creation (us): absolute lifetime
    P:{P:ns}:sizes   hash id -> estimated bytes, plus '*total' (their running sum),
                     '*ttl_max' (longest TTL a writer used) and '*evicted'/'*evicted_bytes'
                     (evictions by writes, reported by the next cleanup)

Scores are microseconds of the server's clock (``TIME``), exact in a double, so LRU
order holds between sessions touched in the same millisecond.

Every key of a namespace shares the hash tag ``{P:ns}``, so all of them live in
one Cluster slot and each Lua script (declared index keys plus session keys built
from the same tag) is single-slot. That is also why cleanup "visits every master":
a namespace has exactly one slot, hence one master, and `cleanup` talks to it; a
deployment with several namespaces runs one cleanup per namespace, which together
reach every master that holds sessions.

Every operation is one EVALSHA; timestamps come from the server's ``TIME`` inside the
script, so clients with skewed clocks agree. Connection failures are retried by
redis-py (``Retry`` with exponential backoff and jitter, bounded) and then surface as
`SessionStoreUnavailable`; nothing is reported as saved unless the script replied.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from agent_lib.errors import (
    ConfigError,
    PayloadTooLarge,
    SessionError,
    SessionStoreUnavailable,
)
from agent_lib.sessions._ids import validate_key_prefix, validate_namespace
from agent_lib.sessions.stores._redis_items import RedisItems
from agent_lib.sessions.stores.base import (
    CleanupReport,
    Limits,
    SessionExistsError,
    SessionStore,
    StoredSession,
)

DEFAULT_RETRIES = 3
DEFAULT_SOCKET_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 2.0
_UNAVAILABLE_REPLIES = (
    "OOM",
    "READONLY",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "LOADING",
    "MASTERDOWN",
    "BUSY",
)
_UNAVAILABLE_ERRORS = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterError, OSError)

AnyRedis = aioredis.Redis | RedisCluster


@cache
def _script(name: str) -> tuple[str, str]:
    folder = resources.files("agent_lib.sessions.stores") / "_lua"
    body = (folder / "common.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()
    return body, hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class RedisOptions:
    """Connection tuning shared by every kind of deployment."""

    retries: int = DEFAULT_RETRIES
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    max_connections: int = 64

    def retry(self) -> Retry:
        return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), self.retries)

    def common(self) -> dict[str, Any]:
        return {
            "retry": self.retry(),
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
        }


def connect(url: str, options: RedisOptions | None = None) -> tuple[AnyRedis, bool]:
    """A client for ``url`` and whether it is a Cluster client (no I/O happens here)."""
    options = options or RedisOptions()
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        # A blocking pool makes a burst of concurrent calls wait for a connection
        # (bounded by the socket timeout) instead of failing with "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=options.max_connections,
            timeout=options.socket_timeout,
            retry_on_error=[rexc.ConnectionError, rexc.TimeoutError],
            **options.common(),
        )
        return aioredis.Redis.from_pool(pool), False
    if scheme in ("redis+cluster", "rediss+cluster"):
        hosts, auth, _, query = _split_multi_host(rest, "url")
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in hosts],
            ssl=scheme.startswith("rediss") or _flag(query, "ssl"),
            max_connections=options.max_connections * 16,
            **auth,
            **options.common(),
        )
        return cluster, True
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        hosts, auth, path, _ = _split_multi_host(rest, "url")
        service, _, db = path.strip("/").partition("/")
        if not service:
            raise ConfigError("url", "redis+sentinel:// needs a service name: host:port/name")
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=dict(options.common()), **options.common()
        )
        master = sentinel.master_for(
            service,
            db=int(db) if db.isdigit() else 0,
            ssl=scheme.startswith("rediss"),
            **auth,
        )
        return master, False
    raise ConfigError(
        "url",
        f"unsupported scheme {scheme!r}: use redis://, rediss://, redis+cluster://, "
        "redis+sentinel:// or memory://",
    )


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true", "yes")


def _split_multi_host(
    rest: str, field: str
) -> tuple[list[tuple[str, int]], dict[str, Any], str, dict[str, list[str]]]:
    """Parse ``[user:pass@]host:port[,host:port]/path?query`` (several hosts allowed)."""
    rest, _, query = rest.partition("?")
    auth: dict[str, Any] = {}
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, sep, password = userinfo.partition(":")
        if sep:
            auth["password"] = unquote(password)
        if user:
            auth["username"] = unquote(user)
    hostlist, slash, path = rest.partition("/")
    hosts: list[tuple[str, int]] = []
    for item in filter(None, hostlist.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(field, f"{item!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise ConfigError(field, "at least one host:port is required")
    return hosts, auth, slash + path, parse_qs(query)


class RedisStore(RedisItems, SessionStore):
    """One namespace of sessions in Redis; see the module docstring for the layout."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        namespace: str,
        limits: Limits,
        key_prefix: str = "hourglass",
        cluster: bool = False,
    ) -> None:
        namespace = validate_namespace(namespace)
        key_prefix = validate_key_prefix(key_prefix)
        self.client = client
        self.limits = limits
        self.cluster = cluster
        self.namespace = namespace
        base = f"{key_prefix}:{{{key_prefix}:{namespace}}}"
        self.session_base = f"{base}:s:"
        self.index_keys = (f"{base}:lru", f"{base}:born", f"{base}:sizes")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str,
        limits: Limits,
        key_prefix: str = "hourglass",
        options: RedisOptions | None = None,
    ) -> RedisStore:
        client, cluster = connect(url, options)
        return cls(
            client, namespace=namespace, limits=limits, key_prefix=key_prefix, cluster=cluster
        )

    def key_for(self, session_id: str) -> str:
        return self.session_base + session_id

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        body, sha = _script(name)
        try:
            try:
                reply = await self.client.evalsha(sha, len(keys), *keys, *args)
            except rexc.NoScriptError:
                await self.client.script_load(body)
                reply = await self.client.evalsha(sha, len(keys), *keys, *args)
            _raise_if_cancelled()
            return reply
        except _UNAVAILABLE_ERRORS as error:
            raise SessionStoreUnavailable(f"session store unreachable: {error}") from error
        except rexc.ResponseError as error:
            if str(error).startswith(_UNAVAILABLE_REPLIES):
                raise SessionStoreUnavailable(f"session store refused: {error}") from error
            raise SessionError(f"session store error: {error}") from error
        except rexc.RedisError as error:
            raise SessionStoreUnavailable(f"session store failed: {error}") from error

    def _keys(self, session_id: str) -> tuple[str, str, str, str]:
        return (*self.index_keys, self.key_for(session_id))

    async def create(self, session_id: str, payload: bytes, size: int) -> StoredSession:
        lim = self.limits
        reply = await self._run(
            "create",
            self._keys(session_id),
            (
                session_id,
                payload,
                size,
                lim.ttl_us,
                lim.lifetime_us,
                lim.max_sessions or 0,
                lim.max_memory or 0,
                self.session_base,
            ),
        )
        status = int(reply[0])
        if status == 0:
            raise SessionExistsError(reply[1])
        if status < 0:
            raise _over_memory(size, lim.max_memory)
        return StoredSession(payload, int(reply[1]), int(reply[1]))

    async def get(self, session_id: str) -> StoredSession | None:
        return await self._access(session_id, "get")

    async def touch(self, session_id: str) -> bool:
        return bool(await self._run_access(session_id, "touch"))

    async def _access(self, session_id: str, mode: str) -> StoredSession | None:
        reply = await self._run_access(session_id, mode)
        if not reply:
            return None
        return StoredSession(reply[0], int(reply[1]), int(reply[2]))

    async def _run_access(self, session_id: str, mode: str) -> Any:
        """One run of the access script, which renews the sliding TTL (``mode``: get/touch)."""
        lim = self.limits
        return await self._run(
            "access",
            self._keys(session_id),
            (session_id, lim.ttl_us, lim.lifetime_us, self.session_base, mode),
        )

    async def update(self, session_id: str, payload: bytes, size: int) -> StoredSession | None:
        lim = self.limits
        reply = await self._run(
            "update",
            self._keys(session_id),
            (
                session_id,
                payload,
                size,
                lim.ttl_us,
                lim.lifetime_us,
                lim.max_memory or 0,
                self.session_base,
            ),
        )
        if not reply:
            return None
        if int(reply[0]) < 0:
            raise _over_memory(size, lim.max_memory)
        return StoredSession(payload, int(reply[1]), int(reply[2]))

    async def delete(self, session_id: str) -> bool:
        reply = await self._run("delete", self._keys(session_id), (session_id, self.session_base))
        return int(reply) > 0

    async def count(self) -> int:
        lim = self.limits
        return int(await self._run("count", self.index_keys, (lim.ttl_us, lim.lifetime_us)))

    async def cleanup(
        self, *, batch_size: int = 500, max_batches: int | None = None, dry_run: bool = False
    ) -> CleanupReport:
        """Remove in atomic batches of ``batch_size`` until nothing is left to remove.

        Each batch is one script that chooses and removes its sessions, so an
        interrupted run leaves a consistent index and the next run carries on, and
        two runs at once each remove what the other did not.
        """
        if batch_size < 1:
            raise ConfigError("batchSize", f"must be at least 1, got {batch_size}")
        started = time.perf_counter()
        lim = self.limits
        report = CleanupReport(dry_run=dry_run)
        if dry_run:
            reply = await self._run(
                "estimate",
                self.index_keys,
                (lim.ttl_us, lim.lifetime_us, lim.max_sessions or 0, lim.max_memory or 0),
            )
            report.scanned, report.expired, report.lifetime_ended, report.evicted = (
                int(v) for v in reply[:4]
            )
            report.bytes_freed = int(reply[4])
        else:
            skipped = 0
            while True:
                args = (
                    self.session_base,
                    lim.ttl_us,
                    lim.lifetime_us,
                    lim.max_sessions or 0,
                    lim.max_memory or 0,
                    batch_size,
                    skipped,
                    1 if report.batches == 0 else 0,
                )
                reply = await self._run("cleanup", self.index_keys, args)
                scanned, expired, ended, evicted, freed, done, skip = (int(v) for v in reply)
                skipped += skip
                report.add(CleanupReport(scanned, expired, evicted, ended, freed, batches=1))
                if done:
                    break
                if max_batches is not None and report.batches >= max_batches:
                    report.complete = False
                    break
        report.duration_s = time.perf_counter() - started
        return report

    async def memory_usage(self, session_id: str) -> int | None:
        """Redis' own ``MEMORY USAGE`` of a session key (for checking the estimates)."""
        try:
            value = await self.client.memory_usage(self.key_for(session_id), samples=0)
        except _UNAVAILABLE_ERRORS as error:
            raise SessionStoreUnavailable(f"session store unreachable: {error}") from error
        return None if value is None else int(value)

    async def close(self) -> None:
        await self.client.aclose()


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that redis-py swallowed.

    redis-py 8.1's asyncio client can absorb the `CancelledError` thrown into a command
    it is awaiting and return normally, leaving the task's cancel request pending; a
    cancelled cleanup then ran to the end, and `SessionManager.close` waited for it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _over_memory(size: int, limit: int | None) -> SessionError:
    """A single session larger than the whole namespace's ``max_memory``."""
    return PayloadTooLarge(size, limit or 0)
