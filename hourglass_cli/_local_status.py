"""What ``hourglass local`` shows: a live rich panel on a terminal, log lines otherwise.

Both views read the same `LocalStatus`; the plain view prints one line per event so
that CI logs and pipes stay readable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent_lib.sessions.store_url import mask_url


@dataclass
class LocalStatus:
    """Everything local mode knows about its own state, updated by the runtime."""

    config_dir: str
    redis_url: str = ""
    redis_origin: str = ""
    namespace: str = ""
    config_hash: str = ""
    default_profile: str | None = None
    profiles: dict[str, str] = field(default_factory=dict)
    reloads: int = 0
    last_reload: float | None = None
    reload_error: str | None = None
    sessions: int | None = None
    sessions_error: str | None = None
    schedule: str | None = None
    suspended: bool = False
    next_cleanup: float | None = None
    last_cleanup: float | None = None
    last_cleanup_report: dict[str, Any] | None = None
    cleanup_error: str | None = None


class StatusView(Protocol):
    def event(self, message: str, *, error: bool = False) -> None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


def _clock(timestamp: float | None) -> str:
    return "never" if timestamp is None else datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    seconds = max(0, int(time.time() - timestamp))
    return f"{_clock(timestamp)} ({seconds}s ago)"


def redact(url: str) -> str:
    """``url`` without its password, for a screen others may see."""
    return mask_url(url) if url else url


def cleanup_summary(report: dict[str, Any] | None) -> str:
    if report is None:
        return "none yet"
    keys = ("scanned", "expired", "lifetime_ended", "evicted", "bytes_freed")
    parts = [f"{key}={report.get(key, 0)}" for key in keys]
    return " ".join(parts) + f" in {float(report.get('duration_s', 0.0)) * 1000:.1f}ms"


class PlainView:
    """One timestamped line per event on stderr, for non-terminals (CI, pipes, log files).

    stdout keeps only what scripts read: the two environment lines (and, with
    ``--once``, the JSON summary).
    """

    def __init__(self, status: LocalStatus) -> None:
        self.status = status

    def event(self, message: str, *, error: bool = False) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        click.echo(f"{stamp} {'ERROR ' if error else ''}{message}", err=True)

    def refresh(self) -> None:
        """Nothing to redraw: events are the output."""

    def close(self) -> None:
        """Nothing to tear down."""


class RichView:
    """A live panel (profiles, hash, last reload, sessions, cleanup) above recent events."""

    _EVENTS = 8

    def __init__(self, status: LocalStatus, console: Console | None = None) -> None:
        self.status = status
        self._events: list[Text] = []
        self._live = Live(
            self._render(), console=console or Console(), refresh_per_second=2, transient=False
        )
        self._live.start()

    def event(self, message: str, *, error: bool = False) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self._events.append(Text(f"{stamp} {message}", style="red" if error else "dim"))
        del self._events[: -self._EVENTS]
        self.refresh()

    def refresh(self) -> None:
        self._live.update(self._render())

    def close(self) -> None:
        self._live.update(self._render(), refresh=True)
        self._live.stop()

    def _render(self) -> Group:
        s = self.status
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("config", f"{s.config_dir} (namespace {s.namespace or '?'})")
        table.add_row("redis", f"{redact(s.redis_url)} ({s.redis_origin})")
        table.add_row("hash", s.config_hash or "-")
        table.add_row("last reload", f"{_ago(s.last_reload)}, {s.reloads} reload(s)")
        if s.reload_error:
            table.add_row(
                Text("invalid edit", style="red"),
                Text(s.reload_error + "\n(keeping the last good config)", style="red"),
            )
        table.add_row("sessions", _sessions(s))
        table.add_row("cleanup", _schedule(s))
        table.add_row(
            "last cleanup", f"{_ago(s.last_cleanup)}: {cleanup_summary(s.last_cleanup_report)}"
        )
        if s.cleanup_error:
            table.add_row(Text("cleanup error", style="red"), Text(s.cleanup_error, style="red"))
        profiles = Table(title=None, box=None, pad_edge=False)
        profiles.add_column("profile", style="cyan")
        profiles.add_column("hash")
        profiles.add_column("default")
        for name, digest in s.profiles.items():
            profiles.add_row(name, digest, "yes" if name == s.default_profile else "")
        hint = Text("Ctrl-C stops local mode and everything it started", style="dim")
        return Group(table, Text(""), profiles, Text(""), *self._events, hint)


def _sessions(status: LocalStatus) -> str:
    if status.sessions_error:
        return f"unknown ({status.sessions_error})"
    return "-" if status.sessions is None else str(status.sessions)


def _schedule(status: LocalStatus) -> str:
    if status.schedule is None:
        return "no SessionPolicy: cleanup off"
    if status.suspended:
        return f"{status.schedule} (suspended)"
    return f"{status.schedule}, next at {_clock(status.next_cleanup)}"


def make_view(status: LocalStatus, live: bool) -> StatusView:
    """The rich panel when ``live`` (stdout is a terminal), plain lines otherwise."""
    return RichView(status) if live else PlainView(status)
