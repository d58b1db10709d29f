"""The engine of ``hourglass local``: render on every edit, clean on schedule, report.

It plays, on one machine, the parts the cluster plays: the operator (render the
specs into ``hourglass.yaml``), the kubelet (publish it with the atomic ``..data``
swap an agent's `TimeoutManager` already follows) and the cleanup CronJob (run
`SessionManager.cleanup` on the policy's cron schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from croniter import croniter
from watchfiles import awatch

from agent_lib.config import CONFIG_KEY, REVISION_KEY, RenderedConfig
from agent_lib.config.bundle import RenderedSessionPolicy
from agent_lib.config.revision import revision_to_write
from agent_lib.sessions.manager import SessionManager
from agent_lib.timeouts.reload import atomic_swap
from hourglass_cli._local_render import LocalRenderError, profile_hashes, render_paths
from hourglass_cli._local_status import LocalStatus, StatusView, cleanup_summary

SESSIONS_REFRESH_S = 2.0
WATCH_DEBOUNCE_MS = 150
WATCH_STEP_MS = 30


@dataclass(frozen=True)
class LocalOptions:
    paths: tuple[str, ...]
    state_dir: Path
    namespace: str | None
    redis_url: str | None

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"


class LocalRuntime:
    """Holds the last good render, the session manager and the status shown."""

    def __init__(self, options: LocalOptions, status: LocalStatus, view: StatusView) -> None:
        self.options = options
        self.status = status
        self.view = view
        self.rendered: RenderedConfig | None = None
        self._manager: SessionManager | None = None
        self._manager_policy: RenderedSessionPolicy | None = None
        self._policy_changed = asyncio.Event()

    # --- render -------------------------------------------------------------------

    def reload(self) -> bool:
        """Render and publish; an invalid edit keeps the last good config. True if published."""
        try:
            rendered = render_paths(
                self.options.paths, self.options.namespace, exclude=self.options.state_dir
            )
        except LocalRenderError as error:
            # Only this run's inputs are ever served: a first render that fails publishes
            # nothing (and adopts nothing a previous run left in the state folder).
            self.status.reload_error = str(error)
            what = f"invalid edit (kept {self.rendered.hash})" if self.rendered else "render failed"
            self.view.event(f"{what}:\n  " + "\n  ".join(error.lines), error=True)
            return False
        self.status.reload_error = None
        if self.rendered is not None and rendered.hash == self.rendered.hash:
            self.view.refresh()
            return False
        published = _published_data(self.options.config_dir)
        if published.get(CONFIG_KEY) != rendered.content or REVISION_KEY not in published:
            revision = revision_to_write(published, rendered.content, time.time())
            atomic_swap(
                self.options.config_dir,
                {CONFIG_KEY: rendered.content, REVISION_KEY: str(revision)},
            )
        previous, self.rendered = self.rendered, rendered
        self._publish_status(rendered)
        if previous is None or previous.config.session_policy != rendered.config.session_policy:
            self._policy_changed.set()
        verb = "rendered" if previous is None else f"reloaded {previous.hash} ->"
        self.view.event(f"{verb} {rendered.hash}: profiles {', '.join(self.status.profiles)}")
        return True

    def _publish_status(self, rendered: RenderedConfig) -> None:
        status = self.status
        status.namespace = rendered.namespace
        status.config_hash = rendered.hash
        status.default_profile = rendered.config.default_profile
        status.profiles = profile_hashes(rendered)
        status.reloads += 1
        status.last_reload = time.time()
        policy = rendered.config.session_policy
        status.schedule = None if policy is None else policy.cleanup.schedule
        status.suspended = bool(policy and policy.cleanup.suspend)

    # --- sessions -------------------------------------------------------------------

    async def manager(self) -> SessionManager | None:
        """The session manager an agent would build from the published config.

        It is made by `SessionManager.from_env` from the config folder and the Redis
        URL alone, so it sees the very namespace and key prefix the agents use, and
        it is rebuilt when a reload changes the policy.
        """
        if self.rendered is None:
            return None
        policy = self.rendered.config.session_policy
        if self._manager is not None and policy == self._manager_policy:
            return self._manager
        await self.close_manager()
        environ = {
            "HOURGLASS_CONFIG_DIR": str(self.options.config_dir),
            "REDIS_URL": self.status.redis_url,
        }
        self._manager = SessionManager.from_env(environ)
        self._manager_policy = policy
        return self._manager

    async def close_manager(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                await manager.close()

    async def count_sessions(self) -> int | None:
        try:
            manager = await self.manager()
            count = None if manager is None else await manager.count()
        except Exception as error:  # shown in the status, never fatal
            self.status.sessions_error = _short(error)
            return None
        self.status.sessions, self.status.sessions_error = count, None
        return count

    async def cleanup(self) -> dict[str, Any] | None:
        """One cleanup run; its report, or None when it failed (the error is shown) or
        there is no SessionPolicy (nothing says how long sessions may live)."""
        if self.rendered is None or self.rendered.config.session_policy is None:
            self.view.event("cleanup skipped: no SessionPolicy")
            return None
        try:
            manager = await self.manager()
            if manager is None:
                return None
            report = (await manager.cleanup()).to_dict()
        except Exception as error:  # shown in the status, never fatal
            self.status.cleanup_error = _short(error)
            self.view.event(f"cleanup failed: {self.status.cleanup_error}", error=True)
            return None
        self.status.last_cleanup = time.time()
        self.status.last_cleanup_report = report
        self.status.cleanup_error = None
        self.view.event(f"cleanup: {cleanup_summary(report)}")
        return report

    # --- the live loop ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Watch, clean and refresh until ``stop`` is set."""
        tasks = [
            asyncio.create_task(self._watch(stop), name="watch"),
            asyncio.create_task(self._clean_on_schedule(stop), name="cleanup"),
            asyncio.create_task(self._refresh(stop), name="refresh"),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close_manager()

    async def _watch(self, stop: asyncio.Event) -> None:
        roots, folders, files = _watch_targets(self.options.paths)
        state = self.options.state_dir
        async for _changes in awatch(
            *roots,
            watch_filter=lambda _change, path: _is_spec_change(path, folders, files, state),
            debounce=WATCH_DEBOUNCE_MS,
            step=WATCH_STEP_MS,
            stop_event=stop,
        ):
            self.reload()

    async def _clean_on_schedule(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._policy_changed.clear()
            due = self._next_cleanup()
            self.status.next_cleanup = due
            if due is None:
                await self._policy_changed.wait()
                continue
            woke = await _wait_any(self._policy_changed, max(0.0, due - time.time()))
            if not woke:
                await self.cleanup()
                await self.count_sessions()

    def _next_cleanup(self) -> float | None:
        policy = self.rendered.config.session_policy if self.rendered else None
        if policy is None or policy.cleanup.suspend:
            return None
        zone = policy.cleanup.time_zone
        start = datetime.datetime.now(zoneinfo.ZoneInfo(zone) if zone else datetime.UTC)
        return float(croniter(policy.cleanup.schedule, start).get_next(float))

    async def _refresh(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.count_sessions()
            self.view.refresh()
            await _wait_any(stop, SESSIONS_REFRESH_S)


async def _wait_any(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True when it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


def _watch_targets(paths: Sequence[str]) -> tuple[list[Path], list[Path], set[Path]]:
    """Folders to watch, the folders given and the single files given. A single file is
    watched through its folder, since editors replace a file by renaming a new one over it.
    """
    roots: set[Path] = set()
    folders: list[Path] = []
    files: set[Path] = set()
    for entry in paths:
        path = Path(entry).resolve()
        if path.is_dir():
            roots.add(path)
            folders.append(path)
        else:
            files.add(path)
            roots.add(path.parent)
    return sorted(roots), folders, files


def _is_spec_change(path: str, folders: Sequence[Path], files: set[Path], state: Path) -> bool:
    candidate = Path(path).resolve()
    if candidate.suffix not in (".yaml", ".yml") or candidate.is_relative_to(state):
        return False
    return candidate in files or any(candidate.is_relative_to(f) for f in folders)


def _published_data(config_dir: Path) -> dict[str, str]:
    """The folder's files as ConfigMap data: its content and the revision stored with it."""
    data: dict[str, str] = {}
    for key in (CONFIG_KEY, REVISION_KEY):
        with contextlib.suppress(OSError):
            data[key] = (config_dir / key).read_text()
    return data


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]
