"""The fast path: watch ``hourglass-config`` through the Kubernetes API from inside a pod.

kubelet refreshes a mounted ConfigMap only every 60-90 s; a watch on the API delivers
the change as soon as the operator writes it. `ConfigMapWatch` gets the one ConfigMap
by name, then watches it (``fieldSelector=metadata.name=hourglass-config``, which is
what a Role with ``resourceNames`` allows for ``watch``), resuming from the last
``resourceVersion`` (bookmarks keep it fresh) and reading it again after ``410 Gone``
or any failure. Failures never reach the agent: they are logged once per streak and
retried with capped, jittered backoff; the mounted file stays the fallback meanwhile.

``HOURGLASS_CONFIG_WATCH`` chooses: ``file`` (the mounted folder only), ``api`` (the
API as well, always tried), ``auto`` (the default: the API when running in a pod with
a ServiceAccount token, else the file only).
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

from agent_lib.config import CONFIG_KEY, REVISION_KEY, parse_revision
from agent_lib.config.bundle import CONFIGMAP_NAME
from agent_lib.errors import ClusterApiError, ConfigError
from agent_lib.timeouts._kube import InCluster, KubeClient, WatchSession
from agent_lib.timeouts._sources import ConfigVersion, Origin

ENV_CONFIG_WATCH: Final = "HOURGLASS_CONFIG_WATCH"

logger = logging.getLogger("agent_lib.timeouts.apiwatch")

BundleCallback = Callable[[ConfigVersion], None]
"""Called with every version of the ConfigMap, in the API's order."""


class WatchMode(enum.Enum):
    FILE = "file"
    API = "api"
    AUTO = "auto"


def config_watch_mode(environ: Mapping[str, str]) -> WatchMode:
    """``HOURGLASS_CONFIG_WATCH``, checked: ``api``, ``file`` or ``auto`` (default)."""
    raw = environ.get(ENV_CONFIG_WATCH, "").strip().lower() or WatchMode.AUTO.value
    try:
        return WatchMode(raw)
    except ValueError:
        raise ConfigError(ENV_CONFIG_WATCH, f"{raw[:40]!r} is not one of api, file, auto") from None


def wants_api(mode: WatchMode, cluster: InCluster | None) -> bool:
    """Whether to watch the API: ``api`` says yes (and logs when it cannot), ``auto`` in a pod."""
    if mode is WatchMode.FILE:
        return False
    if cluster is None:
        if mode is WatchMode.API:
            logger.error(
                "hourglass: %s=api but this is not a pod with a ServiceAccount token "
                "(KUBERNETES_SERVICE_HOST/PORT and the token file); watching the file only",
                ENV_CONFIG_WATCH,
            )
        return False
    return True


class Backoff:
    """Capped exponential backoff with full jitter (so a fleet of pods does not stampede)."""

    def __init__(self, first: float = 0.2, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.first * 2**self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.attempt = 0


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): read the object again."""


class ConfigMapWatch:
    """Calls ``on_bundle`` from a background thread for every version of the ConfigMap.

    ``state`` says how it goes: ``connecting``, ``watching``, ``retrying`` or ``stopped``.
    It is the manager's API `ConfigSource` (``origin`` ``api``).
    """

    def __init__(
        self,
        client: KubeClient,
        on_bundle: BundleCallback,
        *,
        name: str = CONFIGMAP_NAME,
        watch_seconds: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.on_bundle = on_bundle
        self.name = name
        self.watch_seconds = watch_seconds
        self.origin: Origin = "api"
        self.backoff = backoff or Backoff()
        namespace = urllib.parse.quote(client.cluster.namespace, safe="")
        self.path = f"/api/v1/namespaces/{namespace}/configmaps"
        self.state = "stopped"
        self.resource_version: str | None = None
        self.synced = threading.Event()
        """Set after the first successful read (the API's view is known)."""
        self._stop = threading.Event()
        self._session = WatchSession()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> ConfigMapWatch:
        if self._thread is None:
            self._stop.clear()
            self.state = "connecting"
            self._thread = threading.Thread(
                target=self._run, name=f"hourglass-apiwatch:{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._session.close()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.state = "stopped"

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        fresh_read = True
        while not self._stop.is_set():
            try:
                if fresh_read:
                    self._read()
                    fresh_read = False
                self._watch()
            except _Gone:
                logger.info("hourglass: watch of %s expired (410); reading it again", self.name)
                fresh_read = True
            except ClusterApiError as error:
                fresh_read = True
                self._failed(error)
            except Exception as error:  # a bug here must not end the agent's watch for good
                fresh_read = True
                # Its type only: the text of an unexpected error may quote the request
                # (and so the token), as http.client's ValueError on a header does.
                self._failed(ClusterApiError(self.path, f"unexpected {type(error).__name__}"))

    def _failed(self, error: ClusterApiError) -> None:
        if self._stop.is_set():
            return
        self.state = "retrying"
        delay = self.backoff.next()
        if not self._failing:
            hint = " (is the agents' Role bound to this ServiceAccount?)" * (error.status == 403)
            logger.warning(
                "hourglass: cannot watch ConfigMap %s through the API: %s%s; "
                "the mounted file stays in use, retrying with backoff",
                self.name,
                error,
                hint,
                extra={"field": error.field, "reason": error.reason, "status": error.status},
            )
            self._failing = True
        else:
            logger.debug("hourglass: API watch still failing (%s); next try in %.1fs", error, delay)
        self._stop.wait(delay)

    def _recovered(self) -> None:
        self.backoff.reset()
        if self._failing:
            logger.info("hourglass: API watch of %s works again", self.name)
            self._failing = False

    def _read(self) -> None:
        """GET the ConfigMap by name (404: not rendered yet; the watch will see it)."""
        try:
            obj = self.client.request("GET", f"{self.path}/{self.name}")
        except ClusterApiError as error:
            if error.status != 404:
                raise
            self.resource_version = None
        else:
            self._deliver(obj)
        self.synced.set()
        self._recovered()

    def _watch(self) -> None:
        params = {
            "fieldSelector": f"metadata.name={self.name}",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        if self.resource_version:
            params["resourceVersion"] = self.resource_version
        self.state = "watching"
        for event in self.client.watch(self.path, params, self._session):
            if self._stop.is_set():
                return
            self._event(event)
        self._recovered()

    def _event(self, event: Any) -> None:
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise ClusterApiError(self.path, "malformed watch event")
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise ClusterApiError(
                self.path, str(obj.get("message", "watch error"))[:300], status=obj.get("code")
            )
        version = _resource_version(obj)
        if kind in ("ADDED", "MODIFIED"):
            self._deliver(obj)
        elif kind == "DELETED":
            logger.warning(
                "hourglass: ConfigMap %s was deleted; keeping the last good config", self.name
            )
        if version:
            self.resource_version = version

    def _deliver(self, obj: dict[str, Any]) -> None:
        version = _resource_version(obj)
        if not version:
            raise ClusterApiError(self.path, "ConfigMap without metadata.resourceVersion")
        data = obj.get("data") or {}
        content = data.get(CONFIG_KEY) if isinstance(data, dict) else None
        raw = content.encode() if isinstance(content, str) else None
        revision_text = data.get(REVISION_KEY) if isinstance(data, dict) else None
        self.resource_version = version
        namespace = self.client.cluster.namespace
        label = f"api:{namespace}/{self.name}@{version}"
        problem: ConfigError | None = None
        revision: int | None = None
        try:
            revision = parse_revision(revision_text if isinstance(revision_text, str) else None)
        except ConfigError as error:
            problem = error  # rejected (and reported) like any other invalid version
        try:
            self.on_bundle(ConfigVersion("api", raw, revision, label, version, problem))
        except Exception:
            logger.exception("hourglass: applying ConfigMap %s@%s failed", self.name, version)


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return version if isinstance(version, str) and version else None
