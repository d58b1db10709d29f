"""Linux inotify through ``ctypes``: a folder watch whose idle wait costs nothing.

watchfiles' notifier wakes every ``step`` to look for events and for its stop flag,
so a short step (fast reloads) costs idle CPU in every agent pod. Here the thread
sleeps in ``poll(2)`` on the inotify descriptor and a wake-up pipe: it runs when the
kernel has events, when the resync timeout ends, or when `StopEvent` is set. A batch
ends after ``step_ms`` without events (a kubelet swap is a burst of a dozen events
within a millisecond or two), or after ``debounce_ms`` in all.

It watches the folder and its real subfolders (kubelet's ``..<timestamp>`` payload
folders), as watchfiles' recursive mode did, and adds the ones created later.
When the folder itself is deleted or moved away its watch is gone for good (a folder
re-created or renamed into place is another inode): `_Inotify.lost` says so, and
`FolderWatcher` opens a new watch. `open_inotify` raises `OSError` where inotify is
missing or out of instances or watches; the caller then falls back to watchfiles'
polling.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Literal

logger = logging.getLogger("agent_lib.timeouts.reload")

_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_ISDIR = 0x40000000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
)
_NEW_DIR = _IN_CREATE | _IN_MOVED_TO
_ROOT_GONE = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED
_EVENT = struct.Struct("iIII")
_READ_SIZE = 64 * 1024
_PLAIN_EVENT_CHECK_S = 0.1
"""How often a wait checks a plain `threading.Event` (a `StopEvent` wakes it at once)."""

Outcome = Literal["changes", "timeout", "stop"]


class StopEvent(threading.Event):
    """A `threading.Event` whose `set` also wakes the notifiers waiting on it at once."""

    def __init__(self) -> None:
        super().__init__()
        self._wakers: set[_Inotify] = set()
        self._wakers_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        with self._wakers_lock:
            wakers = list(self._wakers)
        for notifier in wakers:
            notifier.wake()

    def _register(self, notifier: _Inotify) -> None:
        with self._wakers_lock:
            self._wakers.add(notifier)

    def _unregister(self, notifier: _Inotify) -> None:
        with self._wakers_lock:
            self._wakers.discard(notifier)


def _libc() -> ctypes.CDLL:
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "inotify is Linux only")
    return ctypes.CDLL(None, use_errno=True)


def open_inotify(directory: Path) -> _Inotify:
    """Watch ``directory`` (in place when this returns); `OSError` if inotify cannot."""
    return _Inotify(directory)


class _Inotify:
    """One inotify instance on a folder tree, with the interface `FolderWatcher` uses."""

    def __init__(self, directory: Path) -> None:
        libc = _libc()
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add_watch.restype = ctypes.c_int
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, f"inotify_init1: {os.strerror(number)}")
        self._fd = fd
        try:
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            os.close(fd)
            raise
        self._closed = False
        self._close_lock = threading.Lock()
        self._folders: dict[int, bytes] = {}
        self.lost = False
        """True once the watched folder itself was deleted or moved away."""
        try:
            self._root = self._watch_tree(os.fsencode(directory))
        except BaseException:
            self.close()
            raise
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN)
        self._poller.register(self._wake_r, select.POLLIN)

    def _watch_tree(self, top: bytes) -> int:
        """Watch ``top`` (`OSError` if it cannot) and its real subfolders, as far as it
        can (symlinks such as ``..data`` are not followed: their targets are watched).
        Returns the watch of ``top``."""
        root = self._add(top)
        for folder, subfolders, _files in os.walk(top, followlinks=False):
            for name in list(subfolders):
                try:
                    self._add(os.path.join(folder, name))
                except OSError as error:
                    logger.debug("hourglass: not watching %r: %s", name, error)
                    subfolders.remove(name)
        return root

    def _add(self, folder: bytes) -> int:
        wd: int = self._add_watch(self._fd, folder, _MASK)
        if wd < 0:
            number = ctypes.get_errno()
            raise OSError(number, f"inotify_add_watch {os.fsdecode(folder)}: {os.strerror(number)}")
        self._folders[wd] = folder
        return wd

    def watch(
        self, debounce_ms: int, step_ms: int, timeout_ms: int, stop: threading.Event
    ) -> Outcome:
        """Block until a batch of changes, ``timeout_ms`` without one, or ``stop``."""
        if isinstance(stop, StopEvent):
            stop._register(self)
        try:
            return self._watch(debounce_ms / 1000, step_ms / 1000, timeout_ms / 1000, stop)
        finally:
            if isinstance(stop, StopEvent):
                stop._unregister(self)

    def _watch(
        self, debounce: float, step: float, timeout: float, stop: threading.Event
    ) -> Outcome:
        if stop.is_set():
            return "stop"
        check = None if isinstance(stop, StopEvent) else _PLAIN_EVENT_CHECK_S
        deadline = time.monotonic() + timeout
        while not self._wait(_shortest(deadline - time.monotonic(), check)):
            if stop.is_set():
                return "stop"
            if time.monotonic() >= deadline:
                return "timeout"
        if stop.is_set():
            return "stop"
        self._drain()
        batch_ends = time.monotonic() + debounce
        while (left := batch_ends - time.monotonic()) > 0 and self._wait(min(step, left)):
            if stop.is_set():
                return "stop"
            self._drain()
        return "changes"

    def _wait(self, seconds: float) -> bool:
        """True once inotify has events; False on timeout or a wake-up."""
        ready = self._poller.poll(max(0, int(seconds * 1000 + 0.999)))
        woken = False
        for fd, _mask in ready:
            if fd == self._wake_r:
                woken = True
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
        return any(fd == self._fd for fd, _mask in ready) and not woken

    def _drain(self) -> None:
        """Read the pending events; watch the folders they created."""
        while True:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + size].rstrip(b"\0")
                offset += _EVENT.size + size
                if wd == self._root and mask & _ROOT_GONE:
                    self.lost = True
                if mask & _IN_IGNORED:
                    self._folders.pop(wd, None)
                elif mask & _IN_ISDIR and mask & _NEW_DIR and wd in self._folders:
                    try:
                        self._watch_tree(os.path.join(self._folders[wd], name))
                    except OSError as error:
                        logger.debug("hourglass: not watching %r: %s", name, error)

    def wake(self) -> None:
        """Interrupt a wait from another thread (for `StopEvent`)."""
        with self._close_lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"\0")

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._fd, self._wake_r, self._wake_w):
                os.close(fd)

    def __enter__(self) -> _Inotify:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _shortest(left: float, check: float | None) -> float:
    return max(0.0, left if check is None else min(left, check))
