"""Where versions of ``hourglass.yaml`` come from: the mounted folder and the Kubernetes API.

Both sources give the manager the same thing, a `ConfigVersion`: the bytes, the revision
written beside them (``agent_lib.config.revision``) and where they came from. Which one
runs is not theirs to say: that is `agent_lib.timeouts._arbiter`'s one rule.

`FileSource` reads the folder the way kubelet lays it out (``..data`` swapped atomically,
so the file and its revision are read from one version of the folder) and wakes the
manager when it may have changed. The API source is
`agent_lib.timeouts.apiwatch.ConfigMapWatch`, which delivers every version of the
ConfigMap in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from agent_lib.config import CONFIG_KEY, REVISION_KEY, parse_revision
from agent_lib.errors import ConfigError
from agent_lib.timeouts._layers import read_config_file
from agent_lib.timeouts.reload import (
    DATA_DIR,
    FolderWatcher,
    StopEvent,
    WatchSettings,
    fingerprint,
    watch_folder_async,
)

Origin = Literal["file", "api", "builtin"]
_MAX_REVISION_BYTES = 64


@dataclass(frozen=True)
class ConfigVersion:
    """One version of ``hourglass.yaml`` as a source delivered it."""

    origin: Origin
    raw: bytes | None
    """The content; None when the ConfigMap has no ``hourglass.yaml`` key."""
    revision: int | None
    """The writer's revision; None from writers that predate revisions."""
    label: str
    """Where it came from, for logs and ``TimeoutConfig.source``: a path, ``api:ns/name@rv``."""
    resource_version: str | None = None
    """The ConfigMap's ``resourceVersion`` (API versions only)."""
    problem: ConfigError | None = None
    """Why the version is unusable before its content is even read (a malformed revision)."""

    @functools.cached_property
    def digest(self) -> str:
        return content_hash(self.raw or b"")


def content_hash(raw: bytes) -> str:
    """The config hash: the same digest the operator puts in ``hourglass.dev/config-hash``."""
    return hashlib.sha256(raw).hexdigest()[:16]


class ConfigSource(Protocol):
    """What the manager starts and stops; versions reach it through its callback."""

    origin: Origin

    @property
    def state(self) -> str: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


def read_folder(config_dir: Path) -> ConfigVersion | None:
    """The folder's current version; None when no ``hourglass.yaml`` is there at all.

    With kubelet's layout both files are read through one resolved ``..data``, so a swap
    between the two reads cannot pair one version's content with another's revision.
    Raises `ConfigError` for an unreadable or empty file or a malformed revision.
    """
    path = config_dir / CONFIG_KEY
    try:
        if not path.exists() and not path.is_symlink():
            return None
        data = config_dir / DATA_DIR
        folder = config_dir
        if data.is_symlink():
            resolved = Path(os.path.realpath(data))
            if (resolved / CONFIG_KEY).is_file():
                folder = resolved
    except OSError as error:  # such as a folder this process may not search
        reason = f"cannot read {config_dir}: {error.strerror or error}"
        raise ConfigError(CONFIG_KEY, reason) from None
    raw = read_config_file(folder / CONFIG_KEY if folder != config_dir else path)
    return ConfigVersion("file", raw, _read_revision(folder), str(path))


def _read_revision(folder: Path) -> int | None:
    try:
        with (folder / REVISION_KEY).open("rb") as handle:
            text = handle.read(_MAX_REVISION_BYTES)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    return parse_revision(text)


class FileSource:
    """The mounted folder: wakes ``on_change`` when it may hold a new version.

    Runs as a thread (`start`) or as a task on the running loop (`astart`). A periodic
    resync only wakes the manager when the file's `fingerprint` moved since the last
    `read`, so an idle folder costs one ``stat``.
    """

    origin: Origin = "file"

    def __init__(
        self, config_dir: Path, on_change: Callable[[], object], settings: WatchSettings
    ) -> None:
        self.config_dir = config_dir
        self.path = config_dir / CONFIG_KEY
        self._on_change = on_change
        self._settings = settings
        self._fingerprint: object = None
        self._read_once = False
        self._watcher: FolderWatcher | None = None
        self._async_stop: StopEvent | None = None
        self._task: asyncio.Task[None] | None = None

    def read(self) -> ConfigVersion | None:
        self._fingerprint = fingerprint(self.path)
        self._read_once = True
        return read_folder(self.config_dir)

    @property
    def state(self) -> str:
        """``inotify``, ``polling``, ``waiting``, ``async`` or ``stopped``."""
        if self._watcher is not None:
            return self._watcher.mode
        return "async" if self._task is not None else "stopped"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._task.get_loop() if self._task is not None else None

    def _woken(self, events: bool) -> None:
        if events or not self._read_once or fingerprint(self.path) != self._fingerprint:
            self._on_change()

    def start(self) -> FileSource:
        if self._watcher is None:
            self._watcher = FolderWatcher(self.config_dir, self._woken, self._settings)
            self._watcher.start()
        return self

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    async def astart(self) -> FileSource:
        """Watch from a task on the running loop; returns once the watch is in place."""
        if self._task is None:
            ready = asyncio.Event()
            self._async_stop = StopEvent()

            async def woken(events: bool) -> None:
                self._woken(events)

            self._task = asyncio.create_task(
                watch_folder_async(self.config_dir, woken, self._async_stop, self._settings, ready),
                name=f"hourglass-watch:{self.config_dir}",
            )
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        return self

    async def astop(self) -> None:
        task, self._task = self._task, None
        if self._async_stop is not None:
            self._async_stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await task
