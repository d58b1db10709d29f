"""`TimeoutManager`: an agent's named timeouts, from the mounted ``hourglass.yaml``, live.

Where a value comes from, highest first (the documented precedence):

1. code: ``TimeoutManager(overrides={"llmCall": 5})`` and ``tm.override(llmCall=5)``;
2. environment: ``HOURGLASS_TIMEOUT_<UPPER_SNAKE>`` per timeout (``HOURGLASS_TIMEOUT_LLM_CALL=30s``)
   and the established ``SESSION_TTL_SECONDS`` for ``sessionIdle`` (the specific
   ``HOURGLASS_TIMEOUT_SESSION_IDLE`` wins over it);
3. the mounted config: ``$HOURGLASS_CONFIG_DIR/hourglass.yaml`` (default ``/etc/hourglass``),
   profile ``HOURGLASS_PROFILE`` (or the ``profile`` argument) else its ``defaultProfile``;
4. the built-in profile of the environment when no file is mounted: ``HOURGLASS_PROFILE``
   if it names a built-in, else ``HOURGLASS_ENV``, else the suffix of the pod's namespace
   (``agents-prod`` -> ``prod``), else ``dev``.

Each (re)load builds one immutable `TimeoutConfig` with every layer already merged,
and swaps a single reference to it; `TimeoutManager.get` is then one dict lookup,
with no lock. A reload that fails validation (invalid, empty, half-written or
deleted file) keeps the last good snapshot, sets `TimeoutManager.last_error` and
logs the field and the reason; the next good reload clears it.

Reading each layer is `agent_lib.timeouts._layers`' job; this module merges and swaps.

In a pod (``HOURGLASS_CONFIG_WATCH``, default ``auto``) the same ConfigMap also arrives
through the Kubernetes API (`agent_lib.timeouts.apiwatch`), through the same validation
and last-good logic. Both sources deliver a `ConfigVersion` (`agent_lib.timeouts._sources`);
which one runs is decided in one place, by revision (`agent_lib.timeouts._arbiter`); the
pod's annotations say what it runs (`agent_lib.timeouts._pod_report`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from agent_lib.config import CONFIG_KEY, parse_config
from agent_lib.errors import ConfigError, UnknownTimeout
from agent_lib.timeouts import _http, _http_timing
from agent_lib.timeouts._arbiter import Arbiter, Stamp
from agent_lib.timeouts._cluster_link import ClusterLink
from agent_lib.timeouts._layers import (
    DEFAULT_CONFIG_DIR,
    ENV_CONFIG_DIR,
    ENV_PROFILE,
    NAMESPACE_FILE,
    EnvTimeouts,
    builtin_bundle,
    code_overrides,
    detect_environment,
    select_profile,
    unknown_builtin,
)
from agent_lib.timeouts._pod_report import Applied
from agent_lib.timeouts._sources import ConfigVersion, FileSource
from agent_lib.timeouts.apiwatch import ENV_CONFIG_WATCH, config_watch_mode
from agent_lib.timeouts.deadlines import Deadline, remaining
from agent_lib.timeouts.metrics import TimeoutEvents
from agent_lib.timeouts.polling import PollingPolicy, apoll, poll_with
from agent_lib.timeouts.reload import WatchSettings
from agent_lib.timeouts.timing import Timed

if TYPE_CHECKING:
    import aiohttp
    import httpx

logger = logging.getLogger("agent_lib.timeouts")

_MISSING: Any = object()
T = TypeVar("T")
D = TypeVar("D")

Callback = Callable[["TimeoutConfig", "TimeoutConfig"], object]


# --- the snapshot ---------------------------------------------------------------------


@dataclass(frozen=True)
class TimeoutConfig:
    """One resolved profile, with every precedence layer applied; never changes."""

    name: str
    """The profile's name (``prod``)."""
    timeouts: Mapping[str, float]
    """Timeout name -> seconds (read-only)."""
    polling: PollingPolicy
    source: str
    """Where the profile came from: the file's path, or ``builtin``."""
    hash: str
    """Content hash of the source (the ConfigMap's ``hourglass.dev/config-hash``)."""
    loaded_at: float
    """``time.time()`` of the load."""
    origins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Timeout name -> its layer: ``override``, ``env``, ``config`` or ``builtin``."""
    namespace: str | None = None
    revision: int | None = None
    """The revision its writer stored beside it; None for the built-ins and older writers."""

    def get(self, name: str, default: float | None = None) -> float | None:
        return self.timeouts.get(name, default)

    def __getitem__(self, name: str) -> float:
        try:
            return self.timeouts[name]
        except KeyError:
            raise UnknownTimeout(name, sorted(self.timeouts)) from None

    def _same_values(self, other: TimeoutConfig) -> bool:
        """Same profile, values and origins (an override equal to the file's value still
        changes where the value comes from, so it is a new snapshot)."""
        return (self.name, self.hash, dict(self.timeouts), self.polling, dict(self.origins)) == (
            other.name,
            other.hash,
            dict(other.timeouts),
            other.polling,
            dict(other.origins),
        )


@dataclass(frozen=True)
class _Base:
    """A profile as read from the file or the built-ins, before env and code overrides."""

    name: str
    timeouts: Mapping[str, float]
    polling: PollingPolicy
    source: str
    hash: str
    namespace: str | None
    layer: str
    revision: int | None = None
    """The writer's revision (``agent_lib.config.revision``); None for the built-ins."""


# --- the manager ----------------------------------------------------------------------


class TimeoutManager:
    """Named timeouts for one agent process, reloaded live from the mounted ConfigMap.

    ``with TimeoutManager() as tm:`` watches the folder in a background thread while
    inside; ``async with`` does the same on the running event loop. Without either,
    the values loaded at construction stay (call `reload` to re-read).
    """

    def __init__(
        self,
        config_dir: str | Path | None = None,
        profile: str | None = None,
        *,
        overrides: Mapping[str, float | str] | None = None,
        environ: Mapping[str, str] | None = None,
        watch: WatchSettings | None = None,
        namespace_file: str | Path = NAMESPACE_FILE,
        config_watch: str | None = None,
    ) -> None:
        env = dict(os.environ if environ is None else environ)
        self.config_watch = config_watch_mode(
            {ENV_CONFIG_WATCH: config_watch} if config_watch is not None else env
        )
        """``HOURGLASS_CONFIG_WATCH`` (or the ``config_watch`` argument): api, file or auto."""
        self.config_dir = Path(config_dir or env.get(ENV_CONFIG_DIR) or DEFAULT_CONFIG_DIR)
        self.path = self.config_dir / CONFIG_KEY
        self.profile = profile or env.get(ENV_PROFILE, "").strip() or None
        self._profile_field = "profile" if profile else ENV_PROFILE
        self.events = TimeoutEvents()
        self._environ = env
        self._namespace_file = namespace_file
        self._env = EnvTimeouts(env)
        self._overrides = code_overrides(overrides or {})
        self._override_blocks: dict[int, dict[str, float]] = {}
        """The `override` calls not yet undone, oldest first (later ones win)."""
        self._next_block = 0
        self._callbacks: list[Callback] = []
        self._lock = threading.RLock()
        self._last_error: str | None = None
        self._file = FileSource(self.config_dir, self.reload, watch or WatchSettings())
        self._rejected_hash: str | None = None
        self._link: ClusterLink | None = None
        self._arbiter = Arbiter(Stamp("builtin", None, ""))
        self._base = self._initial_base()
        self._current = self._merge(self._base)
        self._values: dict[str, float] = dict(self._current.timeouts)
        self.events.config_info(self._current.name, self._current.hash)

    # --- reads: lock-free ---------------------------------------------------------------

    @overload
    def get(self, name: str) -> float: ...
    @overload
    def get(self, name: str, default: D) -> float | D: ...

    def get(self, name: str, default: Any = _MISSING) -> Any:
        """Seconds for timeout ``name``; unknown names raise `UnknownTimeout` (a KeyError)."""
        try:
            return self._values[name]
        except KeyError:
            if default is _MISSING:
                raise UnknownTimeout(name, sorted(self._values)) from None
            return default

    def __getitem__(self, name: str) -> float:
        return self.get(name)

    @property
    def current(self) -> TimeoutConfig:
        """The active snapshot."""
        return self._current

    @property
    def last_error(self) -> str | None:
        """``field: reason`` of the last rejected reload, until the next good one."""
        return self._last_error

    @property
    def watching(self) -> str:
        """How the folder is watched now: ``inotify``, ``polling``, ``waiting`` or ``stopped``."""
        return self._file.state

    @property
    def api_watch(self) -> str:
        """The API watch: ``off``, ``connecting``, ``watching``, ``retrying`` or ``stopped``."""
        return self._link.state if self._link is not None else "off"

    def stats(self) -> dict[str, dict[str, float]]:
        """Plain counters: timeouts and elapsed seconds per name, reloads per result."""
        return self.events.stats()

    # --- deadlines and polling ----------------------------------------------------------

    def deadline(self, name: str, seconds: float | None = None) -> Deadline:
        """A deadline of the profile's ``name`` timeout (or ``seconds``), for with/async with."""
        budget = self.get(name) if seconds is None else seconds
        return Deadline(name, budget, events=self.events)

    def httpx_timeout(self, name: str, *, connect: str | None = "connect") -> httpx.Timeout:
        """An ``httpx.Timeout`` from timeout ``name`` (``connect`` for connecting),
        capped by the active deadline: ``AsyncOpenAI(timeout=tm.httpx_timeout("llmCall"))``."""
        return _http.httpx_timeout(self, name, connect=connect)

    def aiohttp_timeout(
        self, name: str, *, connect: str | None = "connect"
    ) -> aiohttp.ClientTimeout:
        """An ``aiohttp.ClientTimeout`` from timeout ``name``, capped by the active deadline."""
        return _http.aiohttp_timeout(self, name, connect=connect)

    @staticmethod
    def timed(name: str) -> Timed:
        """Record how long a block (``with``/``async with``) or each call of a decorated
        function takes, as one operation of ``name`` (ok, timeout or error)."""
        return Timed(name)

    def httpx_transport(self, name: str, transport: Any | None = None) -> httpx.BaseTransport:
        """An httpx transport that records each request as one operation of ``name``."""
        return _http_timing.httpx_transport(name, transport)

    def httpx_async_transport(
        self, name: str, transport: Any | None = None
    ) -> httpx.AsyncBaseTransport:
        """The asyncio form of `httpx_transport`."""
        return _http_timing.httpx_async_transport(name, transport)

    def aiohttp_trace_config(self, name: str) -> aiohttp.TraceConfig:
        """An aiohttp ``TraceConfig`` that records each request as one operation of ``name``."""
        return _http_timing.aiohttp_trace_config(name)

    @staticmethod
    def remaining() -> float | None:
        """Seconds left in the innermost active deadline (None outside any)."""
        return remaining()

    @overload
    def poll(
        self, check: Callable[[], Awaitable[T]], *, name: str = "poll", **policy: float
    ) -> Coroutine[Any, Any, T]: ...
    @overload
    def poll(self, check: Callable[[], T], *, name: str = "poll", **policy: float) -> T: ...

    def poll(self, check: Callable[[], Any], *, name: str = "poll", **policy: float) -> Any:
        """`poll` with this profile's polling policy (keyword arguments override fields).

        An ``async def`` check makes this return a coroutine, as the module-level `poll`.
        """
        if inspect.iscoroutinefunction(check):
            return self.apoll(check, name=name, **policy)
        return poll_with(check, self._policy(policy), name=name, events=self.events)

    async def apoll(self, check: Callable[[], Any], *, name: str = "poll", **policy: float) -> Any:
        """The asyncio form of `poll`; ``check`` may be sync or async."""
        return await apoll(check, policy=self._policy(policy), name=name, events=self.events)

    def _policy(self, changes: Mapping[str, float]) -> PollingPolicy:
        return replace(self._current.polling, **changes) if changes else self._current.polling

    # --- changes --------------------------------------------------------------------

    def on_change(self, callback: Callback) -> Callback:
        """Call ``callback(old, new)`` after every swap; usable as a decorator."""
        with self._lock:
            self._callbacks.append(callback)
        return callback

    def override(
        self, values: Mapping[str, float | str] | None = None, /, **more: float | str
    ) -> _Undo:
        """Set code overrides (the highest layer) now; leaving the result as a context undoes it.

        Each call is its own block: undoing it removes only what it set, whatever the
        order blocks end in (nested, or concurrent in threads and tasks); where blocks
        set the same name, the most recent one still active wins.
        """
        parsed = code_overrides({**(values or {}), **more})
        with self._lock:
            block = self._next_block
            self._next_block += 1
            self._override_blocks[block] = parsed
            self._swap(self._merge(self._base))
        return _Undo(self, block)

    def _restore_overrides(self, block: int) -> None:
        """Remove one `override` block (again: nothing)."""
        with self._lock:
            if self._override_blocks.pop(block, None) is not None:
                self._swap(self._merge(self._base))

    def _code_values(self) -> dict[str, float]:
        """The code layer: constructor overrides, then the active blocks in order."""
        values = dict(self._overrides)
        for block in self._override_blocks.values():
            values.update(block)
        return values

    def reload(self) -> bool:
        """Re-read the file now; True if the snapshot changed. Never raises on bad content."""
        with self._lock:
            changed = self._reload_file()
        self._report()
        return changed

    def _reload_file(self) -> bool:
        try:
            version = self._file.read()
        except ConfigError as error:
            self._reject(error)
            return False
        if version is None:
            if self._base.layer == "config" and not self._from_api():
                self._reject(ConfigError(CONFIG_KEY, f"{self.path} does not exist (deleted?)"))
            return False
        return self._offer(version)

    def _offer(self, version: ConfigVersion) -> bool:
        """One version from either source: the arbiter decides, then validation, then swap."""
        if not self._arbiter.offer(version, api_in_use=self._api_in_use()):
            logger.debug("hourglass: %s is not newer than the config in use", version.label)
            self.events.reload("unchanged")
            return False
        try:
            if version.problem is not None:
                raise version.problem
            if version.raw is None:
                raise ConfigError(CONFIG_KEY, f"{version.label} has no key {CONFIG_KEY}")
            base = self._parse_base(version)
            snapshot = self._merge(base)
        except ConfigError as error:
            self._reject(error, version.label, version)
            return False
        self._arbiter.adopted(version)
        self._base = base
        self._last_error = self._rejected_hash = None
        changed = self._swap(snapshot)
        self.events.reload("ok" if changed else "unchanged")
        return changed

    def _api_in_use(self) -> bool:
        """Whether the file may be behind another source: an API watch runs, or ran."""
        link = self._link
        watching = link is not None and link.watch is not None
        return watching or self._arbiter.resource_version is not None

    def _from_api(self) -> bool:
        return self._base.source.startswith("api:")

    def _apply_api(self, version: ConfigVersion) -> None:
        """The API watch's callback: one version of the ConfigMap, as read from the API."""
        with self._lock:
            self._offer(version)
        self._report()

    def _namespace_label(self) -> str:
        link = self._link
        return link.cluster.namespace if link is not None and link.cluster is not None else "-"

    def _report(self) -> None:
        link = self._link
        if link is not None:
            current = self._current
            link.report(Applied(current.hash, current.name, self._last_error, self._rejected_hash))

    def _reject(
        self, error: ConfigError, source: str | None = None, version: ConfigVersion | None = None
    ) -> None:
        self._last_error = f"{error.field}: {error.reason}"
        self._rejected_hash = version.digest if version is not None and version.raw else None
        self.events.reload("error")
        logger.error(
            "hourglass: rejected %s: field=%s reason=%s; keeping profile %s (hash %s)",
            source or self.path,
            error.field,
            error.reason,
            self._current.name,
            self._current.hash,
            extra={"field": error.field, "reason": error.reason},
        )

    def _swap(self, snapshot: TimeoutConfig) -> bool:
        old = self._current
        if snapshot._same_values(old):
            if snapshot.revision != old.revision:
                self._current = snapshot  # the same values, written again (a revert)
            return False
        self._current = snapshot
        self._values = dict(snapshot.timeouts)
        self.events.config_info(snapshot.name, snapshot.hash)
        logger.info(
            "hourglass: timeout profile %s (hash %s) from %s",
            snapshot.name,
            snapshot.hash,
            snapshot.source,
        )
        for callback in list(self._callbacks):
            try:
                result = callback(old, snapshot)
                if inspect.isawaitable(result):
                    self._schedule(result)
            except Exception:
                logger.exception("hourglass: on_change callback %r failed", callback)
        return True

    def _schedule(self, awaitable: Any) -> None:
        """Async callbacks run on the event loop of ``async with``; elsewhere they are refused."""
        loop = self._file.loop
        if loop is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            logger.error("hourglass: an async on_change callback needs `async with` the manager")
            return
        asyncio.run_coroutine_threadsafe(_await(awaitable), loop)

    # --- building snapshots ---------------------------------------------------------

    def _initial_base(self) -> _Base:
        try:
            version = self._file.read()
            if version is not None:
                base = self._parse_base(version)
                self._arbiter.adopted(version)
                return base
        except ConfigError as error:
            self._last_error = f"{error.field}: {error.reason}"
            logger.error(
                "hourglass: cannot use %s (field=%s reason=%s); using the built-in profile",
                self.path,
                error.field,
                error.reason,
            )
        return self._builtin_base()

    def _parse_base(self, version: ConfigVersion) -> _Base:
        raw = version.raw or b""
        bundle = parse_config(raw, CONFIG_KEY)
        name, profile = select_profile(bundle, self.profile, version.label, self._profile_field)
        return _Base(
            name=name,
            timeouts=profile.timeouts,
            polling=PollingPolicy.from_rendered(profile.polling),
            source=version.label,
            hash=version.digest,
            namespace=bundle.namespace,
            layer="config",
            revision=version.revision,
        )

    def _builtin_base(self) -> _Base:
        bundle, digest = builtin_bundle()
        environ = dict(self._environ)
        if self.profile:
            environ[ENV_PROFILE] = self.profile
        name = detect_environment(environ, self._namespace_file)
        profile = bundle.profiles[name]
        unknown = unknown_builtin(self.profile or "", self._profile_field)
        if unknown is not None and self._last_error is None:
            self._last_error = f"{unknown.field}: {unknown.reason}"
            logger.warning("hourglass: %s; using the built-in profile %s", unknown, name)
        return _Base(
            name=name,
            timeouts=profile.timeouts,
            polling=PollingPolicy.from_rendered(profile.polling),
            source="builtin",
            hash=digest,
            namespace=None,
            layer="builtin",
        )

    def _merge(self, base: _Base) -> TimeoutConfig:
        values = dict(base.timeouts)
        origins = dict.fromkeys(values, base.layer)
        for layer, layer_values in (
            ("env", self._env.resolve(values)),
            ("override", self._code_values()),
        ):
            values.update(layer_values)
            origins.update(dict.fromkeys(layer_values, layer))
        return TimeoutConfig(
            name=base.name,
            timeouts=MappingProxyType(values),
            polling=base.polling,
            source=base.source,
            hash=base.hash,
            loaded_at=time.time(),
            origins=MappingProxyType(origins),
            namespace=base.namespace,
            revision=base.revision,
        )

    # --- watching -------------------------------------------------------------------

    def start(self) -> TimeoutManager:
        """Watch the folder from a background thread (returns once the watch is in place)."""
        if self._file.state == "stopped":
            self._file.start()
            self._start_link()
        return self

    def stop(self) -> None:
        self._file.stop()
        self._stop_link()

    def _start_link(self) -> None:
        """In a pod: the API watch and the pod report (see `ClusterLink`); else nothing."""
        if self._link is None:
            link = ClusterLink(self.config_watch, self._environ, self._apply_api)
            self._link = link
            with self._lock:
                current, error = self._current, self._last_error
            link.start(Applied(current.hash, current.name, error, self._rejected_hash))

    def _stop_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.stop()

    def __enter__(self) -> TimeoutManager:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def astart(self) -> TimeoutManager:
        """Watch the folder from a task on the running loop (returns once in place)."""
        if self._file.state == "stopped":
            await self._file.astart()
            self._start_link()
        return self

    async def astop(self) -> None:
        await self._file.astop()
        await asyncio.to_thread(self._stop_link)

    async def __aenter__(self) -> TimeoutManager:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def __repr__(self) -> str:
        current = self._current
        return (
            f"<TimeoutManager profile={current.name} hash={current.hash} "
            f"source={current.source} watching={self.watching} api={self.api_watch}>"
        )


class AsyncTimeoutManager(TimeoutManager):
    """The asyncio spelling: ``async with AsyncTimeoutManager() as tm`` (no thread started).

    Plain ``with`` is refused so that an asyncio app does not start a watcher thread
    by mistake; everything else is `TimeoutManager`.
    """

    def __enter__(self) -> TimeoutManager:
        raise TypeError("AsyncTimeoutManager is used with `async with`")

    async def poll(  # type: ignore[override]
        self, check: Callable[[], Any], *, name: str = "poll", **policy: float
    ) -> Any:
        """`TimeoutManager.apoll`: await the check until it is truthy."""
        return await self.apoll(check, name=name, **policy)


class _Undo:
    """Returned by `TimeoutManager.override`; leaving it as a context removes what it set."""

    def __init__(self, manager: TimeoutManager, block: int) -> None:
        self._manager = manager
        self._block = block

    def undo(self) -> None:
        """Remove this block's overrides (once; calling again does nothing)."""
        self._manager._restore_overrides(self._block)

    def __enter__(self) -> _Undo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.undo()


async def _await(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("hourglass: async on_change callback failed")
