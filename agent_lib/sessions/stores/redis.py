"""Sessions in Redis or Valkey (standalone, Sentinel or Cluster) on redis-py's asyncio client.

Key layout of one namespace (``P`` is the SessionPolicy's ``keyPrefix``)::

    P:{P:ns}:s:<id>  the session: '~<version>:<birth us>:<write token>\n' + JSON payload,
                     a string with PX = the sliding TTL (capped by the lifetime)
    P:{P:ns}:i:<id>  the session's item list, if it has one (`RedisItems`): no TTL of its
                     own, removed with the session; marked by the field '*i:<id>' of sizes
    P:{P:ns}:r:<rid> a shared record's fields (`stores.records`), a hash; its owners (session
    P:{P:ns}:o:<rid> id -> value) in a second one; no TTL, never a session; their bytes
                     are the field '*r:<rid>' of sizes
    P:{P:ns}:records set of the shared records' ids, which cleanup compacts
    P:{P:ns}:lru     sorted set id -> last access (us): LRU order and idle deadlines
    P:{P:ns}:born    sorted set id -> creation (us): absolute lifetime
    P:{P:ns}:sizes   hash id -> estimated bytes, plus '*total' (their running sum),
                     '*ttl_max' (longest TTL a writer used), '*evicted'/'*expired'/
                     '*evicted_bytes' (removals by writes, reported by the next cleanup)
                     and '*evictions_seen'/'*sweep' (Redis' own evictions, checked)

Scores are microseconds of the server's clock (``TIME``), exact in a double, so LRU
order holds between sessions touched in the same millisecond.

Every key of a namespace shares the hash tag ``{P:ns}``, so all of them live in
one Cluster slot, and every script declares every key it touches: while the slot
migrates, the server answers ASK or TRYAGAIN before a script runs instead of failing
it half-way. A write that must evict (or a cleanup batch) first reads its candidates,
then removes them in a second call that declares their keys and re-checks each.
That is also why cleanup "visits every master":
a namespace has exactly one slot, hence one master, and `cleanup` talks to it; a
deployment with several namespaces runs one cleanup per namespace, which together
reach every master that holds sessions.

Every operation is one EVALSHA (two when a write must evict); timestamps come from
the server's ``TIME`` inside the script, so clients with skewed clocks agree.
Connection failures are retried by redis-py (``Retry`` with exponential backoff and
jitter, bounded), ``TRYAGAIN``/``CLUSTERDOWN`` by this module with the same backoff,
and then surface as `SessionStoreUnavailable` (a subclass per cause, chosen by
redis-py's exception class); nothing is reported as saved unless the script replied.

Guarantees hold under ``maxmemory-policy noeviction`` only: any other policy lets Redis
delete session keys (``volatile-*``) or the index itself (``allkeys-*``) behind the
index's back. The store reads the policy on first use and warns once; cleanup notices
Redis' evictions (``INFO stats``) and checks every index entry against its key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import EqualJitterBackoff, ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript

from agent_lib.errors import (
    ConfigError,
    PayloadTooLarge,
    SessionConflict,
    SessionError,
    SessionStoreFull,
    SessionStoreLoading,
    SessionStoreReadOnly,
    SessionStoreResharding,
    SessionStoreUnavailable,
)
from agent_lib.sessions._ids import validate_key_prefix, validate_namespace
from agent_lib.sessions._loops import MAX_EVENT_LOOPS, PerLoop
from agent_lib.sessions.stores._redis_entries import RedisEntries
from agent_lib.sessions.stores._redis_items import RedisItems
from agent_lib.sessions.stores._redis_timeouts import with_cheap_timeouts
from agent_lib.sessions.stores._value import born as _born
from agent_lib.sessions.stores._value import unwrap as _unwrap
from agent_lib.sessions.stores.base import (
    WRITE_EVICTION_BUDGET,
    Accounted,
    CleanupReport,
    Limits,
    SessionExistsError,
    SessionStore,
    StoredSession,
)
from agent_lib.sessions.stores.entries import (
    ENTRY_OVERHEAD_BYTES,
    GROUP_END,
    SET_OVERHEAD_BYTES,
)
from agent_lib.sessions.stores.items import ITEM_OVERHEAD_BYTES, LIST_OVERHEAD_BYTES
from agent_lib.sessions.stores.records import FIELD_OVERHEAD_BYTES, RECORD_OVERHEAD_BYTES

DEFAULT_RETRIES = 3
DEFAULT_SOCKET_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 2.0
EVICTION_RECHECKS = 4
"""Most extra passes one cleanup makes while Redis keeps evicting keys during it."""
_log = logging.getLogger("agent_lib.sessions")

AnyRedis = aioredis.Redis | RedisCluster

# (redis-py exception class, our class, reason code), most specific first.
_ERROR_CLASSES: tuple[tuple[type[Exception], type[SessionStoreUnavailable], str], ...] = (
    (rexc.OutOfMemoryError, SessionStoreFull, "oom"),
    (rexc.ReadOnlyError, SessionStoreReadOnly, "readonly"),
    (rexc.BusyLoadingError, SessionStoreLoading, "loading"),
    (rexc.MasterDownError, SessionStoreLoading, "masterdown"),
    (rexc.TryAgainError, SessionStoreResharding, "tryagain"),
    (rexc.ClusterDownError, SessionStoreResharding, "clusterdown"),
    (rexc.AuthenticationError, SessionStoreUnavailable, "auth"),
    (rexc.AuthenticationWrongNumberOfArgsError, SessionStoreUnavailable, "auth"),
    (rexc.AuthorizationError, SessionStoreUnavailable, "noperm"),
    (rexc.TimeoutError, SessionStoreUnavailable, "timeout"),
    (rexc.ConnectionError, SessionStoreUnavailable, "connection"),
    (rexc.ClusterError, SessionStoreResharding, "clusterdown"),
    (rexc.RedisClusterException, SessionStoreResharding, "clusterdown"),
    (TimeoutError, SessionStoreUnavailable, "timeout"),
    (OSError, SessionStoreUnavailable, "connection"),
)
# Refusals that last while a slot migrates, a cluster heals or Sentinel promotes a
# replica: retried by `RedisStore._run` with this backoff (redis-py's cluster client
# retries TRYAGAIN without sleeping, and each redis-py retry reuses one address).
_RETRY_BACKOFF = EqualJitterBackoff(cap=2.0, base=0.1)
_TRANSIENT = ("tryagain", "clusterdown", "masterdown", "loading", "readonly", "connection")


_AUTH_FAILED = "session store refused the credentials (auth): the user or password is wrong"
_AUTH_MISSING = "session store needs a password (auth): the URL gives none"


def _worth_retrying(error: SessionError) -> bool:
    return isinstance(error, SessionStoreUnavailable) and error.reason in _TRANSIENT


# Policies under which Redis deletes keys on its own when memory runs out.
_EVICTING_POLICIES = ("volatile-", "allkeys-")


def _unavailable(error: BaseException) -> SessionError:
    """Our exception for a redis-py one, chosen by its class (replies lose their prefix)."""
    for raised, ours, reason in _ERROR_CLASSES:
        if isinstance(error, raised):
            if reason == "auth":  # never a reply's text: it may quote what was sent
                text = str(error).lower()
                missing = "authentication required" in text or "must be called with" in text
                return ours(_AUTH_MISSING if missing else _AUTH_FAILED, reason)
            verb = "unreachable" if reason in ("connection", "timeout") else "refused"
            return ours(f"session store {verb} ({reason}): {error}", reason)
    if isinstance(error, rexc.ResponseError) and str(error).startswith("BUSY"):
        return SessionStoreUnavailable(f"session store busy: {error}", "busy")
    if isinstance(error, rexc.ResponseError):
        return SessionError(f"session store error: {error}")
    return SessionStoreUnavailable(f"session store failed: {error}", "error")


@cache
def _script(name: str) -> str:
    # Beside this module, not looked up by package name: the deprecated `agent_lib.stores`
    # alias can leave that name's module spec without a package path.
    folder = Path(__file__).with_name("_lua")
    # The item accounting's constants come from Python, so both stores use the same.
    constants = (
        f"local ITEM_OVERHEAD, LIST_OVERHEAD = {ITEM_OVERHEAD_BYTES}, {LIST_OVERHEAD_BYTES}\n"
        f"local RECORD_OVERHEAD, FIELD_OVERHEAD = {RECORD_OVERHEAD_BYTES}, "
        f"{FIELD_OVERHEAD_BYTES}\n"
    )
    if name.startswith("entries_"):  # only these scripts need the entries' constants
        constants += (
            f"local ENTRY_OVERHEAD, SET_OVERHEAD = {ENTRY_OVERHEAD_BYTES}, {SET_OVERHEAD_BYTES}\n"
            f"local GROUP_END = '\\{GROUP_END[0]}'\n"
        )
    common = (folder / "common.lua").read_text()
    return constants + common + "\n" + (folder / f"{name}.lua").read_text()


class _WaitingPool(aioredis.ConnectionPool):
    """A pool that, when full, waits for a released connection (up to ``wait_timeout``)
    instead of raising "Too many connections".

    redis-py's BlockingConnectionPool waits too, but takes a Condition and starts a
    timeout on every call, free connections or not: about 10 us of client CPU per
    command, a tenth of a small command's whole cost. Here a call pays only when the
    pool is full.
    """

    def __init__(self, *args: Any, wait_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait_timeout = wait_timeout
        self._released: asyncio.Event | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        deadline: float | None = None
        get: Callable[[], Awaitable[Any]] = super().get_connection  # untyped in redis-py
        while True:
            try:
                return await get()
            except rexc.ConnectionError:
                if self.can_get_connection():
                    raise  # not a full pool: a connection that failed
            loop = asyncio.get_running_loop()
            deadline = deadline if deadline is not None else loop.time() + self.wait_timeout
            if self._released is None:
                self._released = asyncio.Event()
            try:
                await asyncio.wait_for(self._released.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise rexc.ConnectionError("No connection available.") from None

    async def release(self, connection: Any) -> None:
        await super().release(connection)
        released, self._released = self._released, None
        if released is not None:
            released.set()  # every waiter tries again; those that lose wait on a new event


@dataclass(frozen=True)
class RedisOptions:
    """Connection tuning shared by every kind of deployment."""

    retries: int = DEFAULT_RETRIES
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    max_connections: int = 64
    max_event_loops: int = MAX_EVENT_LOOPS  # one pool per live event loop, at most this many

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
        # A burst of concurrent calls waits for a connection (bounded by the socket
        # timeout) instead of failing with "too many connections".
        try:
            pool = _WaitingPool.from_url(
                url,
                max_connections=options.max_connections,
                wait_timeout=options.socket_timeout,
                retry_on_error=[rexc.ConnectionError, rexc.TimeoutError],
                **options.common(),
            )
        except (ValueError, TypeError) as error:
            raise ConfigError("url", _rejected_option(error)) from None
        pool.connection_class = with_cheap_timeouts(pool.connection_class)
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
        hosts, auth, path, query = _split_multi_host(rest, "url")
        service, _, db = path.strip("/").partition("/")
        if not service:
            raise ConfigError("url", "redis+sentinel:// needs a service name: host:port/name")
        tls: dict[str, Any] = {"ssl": scheme.startswith("rediss") or _flag(query, "ssl")}
        # The sentinels need the credentials and TLS too: a password-protected Sentinel
        # otherwise answers every query with an authentication error ("No master found").
        # sentinel_password / sentinel_username in the query override them for sentinels.
        sentinel_auth = dict(auth)
        for name in ("password", "username"):
            if f"sentinel_{name}" in query:
                sentinel_auth[name] = query[f"sentinel_{name}"][-1]
        sentinel = Sentinel(
            hosts,
            sentinel_kwargs={**options.common(), **sentinel_auth, **tls},
            **options.common(),
        )
        master = sentinel.master_for(service, db=int(db) if db.isdigit() else 0, **auth, **tls)
        return master, False
    raise ConfigError(
        "url",
        f"unsupported scheme {scheme!r}: use redis://, rediss://, redis+cluster://, "
        "redis+sentinel:// or memory://",
    )


def _rejected_option(error: Exception) -> str:
    """redis-py's complaint about a URL, by the option's name only (values may be secret)."""
    named = re.search(r"Invalid value for '(\w+)'", str(error))
    option = f" {named.group(1)}" if named else "s"
    return f"redis-py does not accept the URL's query option{option}"


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
            raise ConfigError(field, "every host must be host:port with a port from 1 to 65535")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise ConfigError(field, "at least one host:port is required")
    return hosts, auth, slash + path, parse_qs(query)


class RedisStore(RedisItems, RedisEntries, SessionStore):
    """One namespace of sessions in Redis; see the module docstring for the layout."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        namespace: str,
        limits: Limits,
        key_prefix: str = "hourglass",
        cluster: bool = False,
        retries: int = DEFAULT_RETRIES,
        factory: Callable[[], AnyRedis] | None = None,
        max_event_loops: int = MAX_EVENT_LOOPS,
    ) -> None:
        namespace = validate_namespace(namespace)
        key_prefix = validate_key_prefix(key_prefix)
        # A connection belongs to one event loop: ``factory`` makes a client for each
        # further loop (without one, ``client`` serves one loop only).
        self._clients: PerLoop[AnyRedis] = PerLoop(
            factory or _one_loop_only, _aclose, limit=max_event_loops, first=client
        )
        self.limits = limits
        self.cluster = cluster
        self.namespace = namespace
        self.retries = retries
        base = f"{key_prefix}:{{{key_prefix}:{namespace}}}"
        self.session_base = f"{base}:s:"
        self.items_base = f"{base}:i:"
        self.records_base = f"{base}:r:"
        self.owners_base = f"{base}:o:"
        self.records_set = f"{base}:records"
        self.index_keys = (f"{base}:lru", f"{base}:born", f"{base}:sizes")
        # The same as bytes for the per-session key lists (redis-py encodes str each call).
        self._key_heads = [key.encode() for key in self.index_keys]
        self._session_base_b, self._items_base_b = (
            self.session_base.encode(),
            base.encode() + b":i:",
        )
        self._scripts: dict[str, AsyncScript] = {}
        self._policy_checked = False

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
        options = options or RedisOptions()
        client, cluster = connect(url, options)
        return cls(
            client,
            namespace=namespace,
            limits=limits,
            key_prefix=key_prefix,
            cluster=cluster,
            retries=options.retries,
            factory=lambda: connect(url, options)[0],
            max_event_loops=options.max_event_loops,
        )

    @property
    def client(self) -> AnyRedis:
        """The client of the running event loop (made on the loop's first call)."""
        return self._clients.get()

    def key_for(self, session_id: str) -> str:
        return self.session_base + session_id

    def _registered(self, name: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(_script(name))
        return script

    async def _evalsha(
        self, script: AsyncScript, keys: Sequence[str | bytes], args: Sequence[Any]
    ) -> Any:
        """``script(keys, args)`` without redis-py's per-call wrapper (a hot path)."""
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except rexc.NoScriptError:
            script.sha = await self.client.script_load(script.script)
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)

    async def _run(self, name: str, keys: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        if not self._policy_checked:
            await self._check_policy()
        script = self._registered(name)
        attempt = 0
        while True:
            try:
                reply = await self._evalsha(script, keys, args)
                _raise_if_cancelled()
                return reply
            except (rexc.RedisError, rexc.RedisClusterException, TimeoutError, OSError) as error:
                mapped = _unavailable(error)
                attempt += 1
                if not _worth_retrying(mapped) or attempt > self.retries:
                    raise mapped from error
                # Every script can run twice safely: a moving slot refuses it before it
                # runs, and a write retried after a lost reply finds its own token. A
                # failover (or a migration) takes seconds: back off longer than redis-py
                # does within one attempt, so the retries outlast it.
                await asyncio.sleep(_RETRY_BACKOFF.compute(attempt))

    async def _check_policy(self) -> None:
        """Warn once when the server's ``maxmemory-policy`` lets Redis delete session keys.

        Read from ``INFO memory``, which managed services allow where ``CONFIG`` is
        disabled; a failure here is left to the call that follows to report.
        """
        self._policy_checked = True
        try:
            if isinstance(self.client, RedisCluster):
                await self.client.initialize()
                node = self.client.get_node_from_key(self.index_keys[0])
                info = await self.client.info("memory", target_nodes=node)
            else:
                info = await self.client.info("memory")
        except (TimeoutError, rexc.RedisError, rexc.RedisClusterException, OSError) as error:
            self._policy_checked = False
            _log.debug("could not read maxmemory-policy: %s", error)
            return
        policy = str(info.get("maxmemory_policy", ""))
        if policy.startswith(_EVICTING_POLICIES):
            _log.warning(
                "session store namespace %s: Redis maxmemory-policy is %s, under which Redis "
                "deletes %s on its own when memory runs out: caps, count() and cleanup "
                "reports are only exact under noeviction (see docs/troubleshooting.md)",
                self.namespace,
                policy,
                "session keys" if policy.startswith("volatile-") else "any key, the index too",
            )

    def _keys(self, session_id: str, *others: str) -> list[str | bytes]:
        """The index keys, then each session's key and item list: a script that may
        remove a session declares its item list too."""
        base, items = self._session_base_b, self._items_base_b
        sid = session_id.encode()
        keys: list[str | bytes] = [*self._key_heads, base + sid, items + sid]
        for other in others:
            more = other.encode()
            keys += (base + more, items + more)
        return keys

    async def create(self, session_id: str, payload: bytes, size: int) -> StoredSession:
        lim = self.limits
        token = secrets.token_urlsafe(9)
        args = (
            session_id,
            payload,
            size,
            lim.ttl_us,
            lim.lifetime_us,
            lim.max_sessions or 0,
            lim.max_memory or 0,
            self.session_base,
            token,
            WRITE_EVICTION_BUDGET,
        )
        reply = await self._run("create", self._keys(session_id), args)
        if int(reply[0]) == 3:  # over a cap: again, declaring the sessions it may remove
            others = [_text(i) for i in reply[1]]
            keys = self._keys(session_id, *others)
            reply = await self._run("create", keys, (*args, *reply[2]))
        status = int(reply[0])
        if status == 0:
            raise SessionExistsError(None)
        if status == 2:  # this call's own write, retried by redis-py after a lost reply
            version, stored = _unwrap(reply[1])
            born = _born(reply[1]) or 0
            return StoredSession(stored, born, born, version)
        if status < 0:
            raise _over_memory(size, lim.max_memory)
        return StoredSession(payload, int(reply[1]), int(reply[1]), 1)

    async def get(self, session_id: str) -> StoredSession | None:
        reply = await self._run_access(session_id, "get")
        if not reply:
            return None
        version, payload = _unwrap(reply[0])
        return StoredSession(payload, int(reply[1]), int(reply[2]), version)

    async def touch(self, session_id: str) -> bool:
        return bool(await self._run_access(session_id, "touch"))

    async def _run_access(self, session_id: str, mode: str) -> Any:
        """One run of the access script, which renews the sliding TTL (``mode``: get/touch)."""
        lim = self.limits
        return await self._run(
            "access",
            self._keys(session_id),
            (session_id, lim.ttl_us, lim.lifetime_us, self.session_base, mode),
        )

    async def update(
        self, session_id: str, payload: bytes, size: int, if_version: int | None = None
    ) -> StoredSession | None:
        lim = self.limits
        args = (
            session_id,
            payload,
            size,
            lim.ttl_us,
            lim.lifetime_us,
            lim.max_memory or 0,
            self.session_base,
            "" if if_version is None else if_version,
            WRITE_EVICTION_BUDGET,
            secrets.token_urlsafe(9),
        )
        reply = await self._run("update", self._keys(session_id), args)
        if reply and int(reply[0]) == 3:  # over max_memory: again, declaring candidates
            others = [_text(i) for i in reply[1]]
            keys = self._keys(session_id, *others)
            reply = await self._run("update", keys, (*args, *reply[2]))
        if not reply:
            return None
        status = int(reply[0])
        if status == -2:
            raise SessionConflict(session_id, if_version or 0, int(reply[1]))
        if status < 0:
            raise _over_memory(size, lim.max_memory)
        return StoredSession(payload, int(reply[1]), int(reply[2]), int(reply[3]))

    async def delete(self, session_id: str) -> bool:
        reply = await self._run("delete", self._keys(session_id), (session_id, self.session_base))
        return int(reply) > 0

    async def count(self) -> int:
        lim = self.limits
        return int(await self._run("count", self.index_keys, (lim.ttl_us, lim.lifetime_us)))

    async def cleanup(
        self,
        *,
        batch_size: int = 500,
        max_batches: int | None = None,
        dry_run: bool = False,
        verify: bool = False,
    ) -> CleanupReport:
        """Remove in batches of ``batch_size`` until nothing is left to remove.

        Each batch chooses its candidates in one script and removes them in a second
        that declares their keys and re-checks each, so an interrupted run leaves a
        consistent index and the next run carries on, and two runs at once each remove
        what the other did not. Removals by writes are reported by the first batch and
        subtracted from their counters only once the run has finished. When Redis has
        evicted keys since the last check (or ``verify``), every index entry is checked
        against its key, so ``count()`` and the byte total match what exists.
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
            await self._cleanup_batches(report, batch_size, max_batches, verify)
            await self._recheck_evictions(report, batch_size, max_batches)
        report.duration_s = time.perf_counter() - started
        return report

    async def _cleanup_batches(
        self, report: CleanupReport, batch_size: int, max_batches: int | None, verify: bool
    ) -> None:
        lim = self.limits
        caps = (lim.ttl_us, lim.lifetime_us, lim.max_sessions or 0, lim.max_memory or 0)
        skipped = 0
        by_writes = (0, 0, 0)
        batches_before = report.batches
        while True:
            first = report.batches == batches_before
            args = (*caps, batch_size, skipped, int(first), int(verify))
            reply = await self._run("cleanup", self.index_keys, args)
            scanned, expired, w_evicted, w_expired, freed, done, w_bytes = (
                int(v) for v in reply[:7]
            )
            if first:
                by_writes = (w_evicted, w_expired, w_bytes)
            batch = CleanupReport(scanned, expired + w_expired, w_evicted, 0, freed, batches=1)
            chosen = reply[7:]
            if chosen:
                ids = [_text(v) for v in chosen[1::3]]
                extra: list[Any] = [self.session_base]
                for kind, score in zip(chosen[0::3], chosen[2::3], strict=True):
                    extra += [kind, score]
                keys = self._keys(ids[0], *ids[1:])
                second = await self._run("cleanup_keys", keys, (*caps, *extra))
                k_expired, k_ended, k_evicted, k_freed, kept, over = (int(v) for v in second)
                batch.add(CleanupReport(0, k_expired, k_evicted, k_ended, k_freed))
                skipped += kept
                if over and (k_evicted or k_expired or k_ended):
                    done = 0
            report.add(batch)
            if done:
                break
            if max_batches is not None and report.batches >= max_batches:
                report.complete = False
                break
        if any(by_writes):
            await self._run("ack", self.index_keys, by_writes)
        await self._compact_records(report, batch_size)

    async def _compact_records(self, report: CleanupReport, batch_size: int) -> None:
        """Drop record owners that are no longer live sessions, and records without one
        (`stores.records`): one pass over the set naming them, a batch at a time."""
        lim = self.limits
        keys = [*self.index_keys, self.records_set]
        cursor: bytes | int = 0
        removed = 0
        while True:
            cursor, ids = await self._run("records_scan", keys, (cursor, batch_size))
            if ids:
                names = [_text(i) for i in ids]
                record_keys = list(keys)
                for name in names:
                    record_keys += self._record_keys(name)
                args = (lim.ttl_us, lim.lifetime_us, *names)
                gone, freed = await self._run("records_compact", record_keys, args)
                removed += int(gone)
                report.bytes_freed += int(freed)
            if int(cursor) == 0:
                break
        if removed:
            report.extra["records_removed"] = removed

    async def accounted(self) -> Accounted:
        """The bytes accounted against ``max_memory``: the running total and each indexed
        session's figure (one read of the sizes hash, for diagnostics and tests)."""
        try:
            fields = await self.client.hgetall(self.index_keys[2])
        except (rexc.RedisError, OSError) as error:
            raise _unavailable(error) from error
        named = {_text(k): int(v) for k, v in fields.items() if _text(k)[:3] != "*i:"}
        sizes = {k: v for k, v in named.items() if not k.startswith("*")}
        records = {k[3:]: v for k, v in named.items() if k.startswith("*r:")}
        return Accounted(named.get("*total", 0), sizes, records)

    async def _recheck_evictions(
        self, report: CleanupReport, batch_size: int, max_batches: int | None
    ) -> None:
        """At ``maxmemory`` a cleanup's own commands make Redis evict more keys while it
        runs, behind a check that has passed them: while the eviction counter has moved
        since the last check began, check again (at most ``EVICTION_RECHECKS`` passes,
        within ``max_batches``). The report says whether it held still
        (``evictions_settled``; when not, counts may be off until the next run)."""
        rechecks = 0
        while True:
            moved = int(await self._run("evictions", self.index_keys, ()))
            spent = max_batches is not None and report.batches >= max_batches
            if not moved or rechecks == EVICTION_RECHECKS or spent or not report.complete:
                break
            rechecks += 1
            await self._cleanup_batches(report, batch_size, max_batches, False)
        report.extra.update(evictions_settled=not moved, eviction_rechecks=rechecks)

    async def memory_usage(self, session_id: str) -> int | None:
        """Redis' own ``MEMORY USAGE`` of a session key (for checking the estimates)."""
        try:
            value = await self.client.memory_usage(self.key_for(session_id), samples=0)
        except (rexc.RedisError, OSError) as error:
            raise _unavailable(error) from error
        return None if value is None else int(value)

    async def close(self) -> None:
        await self._clients.aclose()


def _one_loop_only() -> AnyRedis:
    raise ConfigError(
        "client",
        "a RedisStore built around one client serves one event loop; build it with "
        "RedisStore.from_url (or give a factory) to use it from several",
    )


async def _aclose(client: AnyRedis) -> None:
    await client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
