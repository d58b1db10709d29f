"""SessionManager: sessions that expire, stay under their caps and clean themselves.

It replaces the ad-hoc ``_sessions`` dict of agent endpoints: the same calls work on
an in-process store (``memory://``) and on Redis / Valkey (standalone, Sentinel or
Cluster). The manager validates ids, encodes payloads as JSON, enforces the payload
cap and estimates each session's size once; the store applies the expiry rules
(sliding TTL, absolute lifetime, LRU eviction over ``max_sessions``/``max_memory``)
atomically, one round trip per call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from agent_lib.durations import parse_duration
from agent_lib.errors import (
    ConfigError,
    InvalidPayload,
    PayloadTooLarge,
    SessionConflict,
    SessionError,
    SessionExists,
    SessionNotFound,
)
from agent_lib.quantity import parse_quantity
from agent_lib.sessions import _loops
from agent_lib.sessions import metrics as session_metrics
from agent_lib.sessions._ids import (
    new_session_id,
    validate_key_prefix,
    validate_namespace,
    validate_session_id,
)
from agent_lib.sessions._loops import MAX_EVENT_LOOPS
from agent_lib.sessions._memory_estimate import VALUE_HEADER_BYTES, estimate_session_bytes
from agent_lib.sessions.settings import SessionSettings, resolve
from agent_lib.sessions.store_url import check_store_url, url_source
from agent_lib.sessions.stores.base import (
    CleanupReport,
    Limits,
    SessionExistsError,
    SessionStore,
    StoredSession,
)
from agent_lib.sessions.stores.memory import MemoryStore

DEFAULT_MAX_PAYLOAD = 1024 * 1024
"""Largest encoded payload one session may hold (1 MiB)."""

DEFAULT_MUTATE_RETRIES = 16
"""How often `SessionManager.mutate` re-reads and re-applies after a conflict."""

_log = logging.getLogger("agent_lib.sessions")
_T = TypeVar("_T")

__all__ = ["CleanupReport", "Session", "SessionManager", "SyncSessionManager"]


@dataclass
class Session:
    """One session as read: its data, when it was created and last used (epoch seconds),
    and its version, which every write of the data increments (1 when created)."""

    id: str
    data: Any
    created_at: float
    last_access: float
    version: int = 0


def _session(sid: str, stored: StoredSession, data: Any = None) -> Session:
    value = json.loads(stored.payload) if data is None else data
    return Session(sid, value, stored.created_us / 1e6, stored.last_access_us / 1e6, stored.version)


def _seconds(value: float | str | None, field: str) -> float | None:
    return None if value is None else parse_duration(value, field=field)


def _bytes(value: int | str | None, field: str) -> int | None:
    return None if value is None else parse_quantity(value, field=field)


def _count(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, f"must be a positive integer, got {value!r}")
    return value


class SessionManager:
    """Async session API over one namespace of a `SessionStore`.

    Any event loop and any thread may call it, in turn or at once: a Redis store keeps
    one connection pool per live loop (see `agent_lib.sessions._loops`), and the
    periodic cleaner runs in one live loop, started again by the next call from any
    loop once its own loop has ended.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        batch_size: int = 500,
        cleanup_interval: float | None = None,
    ) -> None:
        self.store = store
        self.max_payload = _count(max_payload, "max_payload") or DEFAULT_MAX_PAYLOAD
        self.batch_size = _count(batch_size, "batch_size") or 500
        self.cleanup_interval = cleanup_interval
        self._cleaner: asyncio.Task[None] | None = None
        self._cleaner_lock = threading.Lock()
        session_metrics.observe_limits(store.namespace, store.limits.max_sessions)

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str = "memory://",
        *,
        namespace: str = "default",
        ttl: float | str = 1800.0,
        max_lifetime: float | str | None = 86400.0,
        max_sessions: int | None = None,
        max_memory: int | str | None = None,
        key_prefix: str = "hourglass",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        batch_size: int = 500,
        cleanup_interval: float | str | None = None,
        retries: int = 3,
        socket_timeout: float = 5.0,
        max_event_loops: int = MAX_EVENT_LOOPS,
    ) -> SessionManager:
        """A manager for ``url``: ``memory://``, ``redis://``, ``rediss://``,
        ``redis+cluster://host:port[,host:port]`` or ``redis+sentinel://host:port[,...]/service``.

        Durations are seconds or strings such as ``"30m"``; ``max_memory`` is bytes or a
        quantity such as ``"512Mi"``. No connection is made until the first call; each
        event loop that calls gets its own pool, at most ``max_event_loops`` at once.
        """
        loops = _count(max_event_loops, "max_event_loops") or MAX_EVENT_LOOPS
        limits = Limits(
            ttl_s=parse_duration(ttl, field="ttl"),
            max_lifetime_s=_seconds(max_lifetime, "max_lifetime"),
            max_sessions=_count(max_sessions, "max_sessions"),
            max_memory=_bytes(max_memory, "max_memory"),
        )
        namespace = validate_namespace(namespace)
        key_prefix = validate_key_prefix(key_prefix, field="key_prefix")
        interval = _seconds(cleanup_interval, "cleanup_interval")
        url = check_store_url(url, "url")
        store: SessionStore
        if url.split("://", 1)[0].lower() == "memory":
            store = MemoryStore(namespace=namespace, limits=limits, sweep_interval=interval or 30.0)
            interval = None
        else:
            from agent_lib.sessions.stores.redis import RedisOptions, RedisStore

            store = RedisStore.from_url(
                url,
                namespace=namespace,
                limits=limits,
                key_prefix=key_prefix,
                options=RedisOptions(
                    retries=retries,
                    socket_timeout=socket_timeout,
                    max_event_loops=loops,
                ),
            )
        return cls(store, max_payload=max_payload, batch_size=batch_size, cleanup_interval=interval)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> SessionManager:
        """A manager configured from the pod's environment and mounted policy.

        Precedence, highest first: explicit keyword arguments (``url``, ``namespace``,
        ``ttl``, ``max_lifetime``, ``max_sessions``, ``max_memory``, ``key_prefix``,
        ``batch_size``, ``cleanup_interval``) > environment variables (``REDIS_URL``,
        ``SESSION_TTL_SECONDS``, ``SESSION_CLEANUP_INTERVAL``, ``HOURGLASS_NAMESPACE``) >
        the SessionPolicy in ``$HOURGLASS_CONFIG_DIR/hourglass.yaml`` (default
        ``/etc/hourglass``) > defaults (``memory://``, ttl 30m, lifetime 24h, no caps).
        """
        extra = {
            k: explicit.pop(k)
            for k in ("max_payload", "retries", "socket_timeout", "max_event_loops")
            if k in explicit
        }
        settings: SessionSettings = resolve(explicit, environ)
        # Checked here too, so that an error names REDIS_URL when that is where it came from.
        check_store_url(settings.url, url_source(explicit, environ))
        return cls.from_url(settings.url, **settings.manager_options(), **extra)

    # --- the session API ------------------------------------------------------------

    async def create(self, data: Any = None, session_id: str | None = None) -> Session:
        """Store a new session; a given ``session_id`` that is in use raises `SessionExists`
        (even with equal data). A retry of this very call after a lost reply is recognised
        by the write token it carries, and returns the session it stored."""
        self._ensure_cleaner()
        sid = new_session_id() if session_id is None else validate_session_id(session_id)
        payload = self._encode({} if data is None else data)
        try:
            stored = await self.store.create(sid, payload, self._size(sid, payload))
        except SessionExistsError:
            raise SessionExists(sid) from None
        return _session(sid, stored)

    async def get(self, session_id: str) -> Session | None:
        """The session, renewing its idle TTL; ``None`` when it does not exist (any more)."""
        self._ensure_cleaner()
        sid = validate_session_id(session_id)
        stored = await self.store.get(sid)
        return None if stored is None else _session(sid, stored)

    async def touch(self, session_id: str) -> bool:
        """Renew the idle TTL without reading the data; ``False`` when it does not exist."""
        return await self.store.touch(validate_session_id(session_id))

    async def update(self, session_id: str, data: Any, *, if_version: int | None = None) -> Session:
        """Replace the data (and renew); raises `SessionNotFound` when it does not exist.

        With ``if_version``, the write happens only if that is still the stored version,
        else `SessionConflict` is raised and nothing changes (see `mutate`).
        """
        sid = validate_session_id(session_id)
        if if_version is not None and (
            isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 0
        ):
            raise ConfigError("if_version", f"must be a version number, got {if_version!r}")
        payload = self._encode(data)
        stored = await self.store.update(sid, payload, self._size(sid, payload), if_version)
        if stored is None:
            raise SessionNotFound(sid)
        return _session(sid, stored)

    async def mutate(
        self,
        session_id: str,
        fn: Callable[[Any], Any],
        *,
        retries: int = DEFAULT_MUTATE_RETRIES,
    ) -> Session:
        """Read, apply ``fn(data) -> new data`` and write back only if nobody wrote in
        between; on a conflict, read and apply again (at most ``retries`` more times).

        Returns the stored `Session`. Raises `SessionNotFound` when the session does not
        exist and `SessionConflict` when every attempt lost the race. ``fn`` may run
        more than once, so it must not have side effects.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError("retries", f"must be a non-negative integer, got {retries!r}")
        sid = validate_session_id(session_id)
        attempt = 0
        while True:
            current = await self.get(sid)
            if current is None:
                raise SessionNotFound(sid)
            try:
                return await self.update(sid, fn(current.data), if_version=current.version)
            except SessionConflict:
                attempt += 1
                if attempt > retries:
                    raise
            # Jittered pause so that writers racing for one session spread out.
            await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 10)))  # noqa: S311

    async def delete(self, session_id: str) -> bool:
        """Remove the session; ``True`` when it existed."""
        return await self.store.delete(validate_session_id(session_id))

    async def count(self) -> int:
        """Live sessions in this namespace (also exported as ``hourglass_sessions``)."""
        count = await self.store.count()
        session_metrics.observe_count(self.store.namespace, count)
        return count

    async def cleanup(
        self,
        *,
        batch_size: int | None = None,
        max_batches: int | None = None,
        dry_run: bool = False,
        verify: bool = False,
    ) -> CleanupReport:
        """Remove expired, lifetime-ended and over-cap sessions (guarantees: see the store).

        Afterwards ``hourglass_sessions`` is set from a fresh `count`. With ``verify``
        every index entry is checked against its key (done by itself when Redis has
        evicted keys since the last check).
        """
        report = await self.store.cleanup(
            batch_size=batch_size or self.batch_size,
            max_batches=max_batches,
            dry_run=dry_run,
            verify=verify,
        )
        session_metrics.observe_cleanup(self.store.namespace, report)
        if not dry_run:
            await self.count()
        return report

    async def close(self) -> None:
        """Stop the periodic cleaner and close the store (every loop's pool); never raises
        a cleaner's error. The manager can be used again afterwards."""
        cleaner, self._cleaner = self._cleaner, None
        try:
            await _loops.stop(cleaner)
        finally:
            await self.store.close()

    async def __aenter__(self) -> SessionManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- internals ------------------------------------------------------------------

    def _encode(self, data: Any) -> bytes:
        try:
            payload = json.dumps(
                data, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        except (TypeError, ValueError) as error:
            raise InvalidPayload(f"not JSON-serialisable: {error}") from None
        if len(payload) > self.max_payload:
            raise PayloadTooLarge(len(payload), self.max_payload)
        return payload

    def _size(self, sid: str, payload: bytes) -> int:
        value = len(payload) + VALUE_HEADER_BYTES
        return estimate_session_bytes(len(self.store.key_for(sid)), value, len(sid))

    def _ensure_cleaner(self) -> None:
        """Start the periodic cleaner in this loop unless one runs (in any live loop)."""
        if self.cleanup_interval and not _loops.running(self._cleaner):
            with self._cleaner_lock:
                if not _loops.running(self._cleaner):
                    self._cleaner = asyncio.get_running_loop().create_task(self._clean_forever())

    async def _clean_forever(self) -> None:
        assert self.cleanup_interval
        while True:
            await asyncio.sleep(self.cleanup_interval)
            try:
                await self.cleanup()
            except Exception as error:  # any failure: log it, try again next interval
                _log.warning("periodic session cleanup failed, retrying later: %r", error)


class SyncSessionManager:
    """Blocking facade for threaded apps: a private event loop in a daemon thread.

    Any number of threads may call it at once; `close` waits for the calls already
    made, and a call after it raises `SessionError` instead of blocking forever.
    """

    def __init__(self, factory: Callable[[], SessionManager]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hourglass-sessions", daemon=True
        )
        self._guard = threading.Lock()
        self._closed = False
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._thread.start()
        self._manager = self._call(_build(factory))

    @classmethod
    def from_url(cls, url: str = "memory://", **options: Any) -> SyncSessionManager:
        return cls(lambda: SessionManager.from_url(url, **options))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **explicit: Any
    ) -> SyncSessionManager:
        return cls(lambda: SessionManager.from_env(environ, **explicit))

    @property
    def manager(self) -> SessionManager:
        return self._manager

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise SessionError("SyncSessionManager called from its own loop: await .manager")
        with self._guard:
            if self._closed:
                coro.close()
                raise SessionError("SyncSessionManager is closed")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future.result()

    def create(self, data: Any = None, session_id: str | None = None) -> Session:
        return self._call(self._manager.create(data, session_id))

    def get(self, session_id: str) -> Session | None:
        return self._call(self._manager.get(session_id))

    def touch(self, session_id: str) -> bool:
        return self._call(self._manager.touch(session_id))

    def update(self, session_id: str, data: Any, *, if_version: int | None = None) -> Session:
        return self._call(self._manager.update(session_id, data, if_version=if_version))

    def mutate(
        self,
        session_id: str,
        fn: Callable[[Any], Any],
        *,
        retries: int = DEFAULT_MUTATE_RETRIES,
    ) -> Session:
        return self._call(self._manager.mutate(session_id, fn, retries=retries))

    def delete(self, session_id: str) -> bool:
        return self._call(self._manager.delete(session_id))

    def count(self) -> int:
        return self._call(self._manager.count())

    def cleanup(self, **options: Any) -> CleanupReport:
        return self._call(self._manager.cleanup(**options))

    def close(self) -> None:
        """Wait for the calls in flight, close the manager and stop the loop (once)."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
        try:
            concurrent.futures.wait(pending)
            asyncio.run_coroutine_threadsafe(self._manager.close(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def __enter__(self) -> SyncSessionManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _build(
    factory: Callable[[], SessionManager | Awaitable[SessionManager]],
) -> SessionManager:
    made = factory()
    return await made if asyncio.iscoroutine(made) else made  # type: ignore[return-value]
