"""The Linux inotify notifier behind `FolderWatcher`, on the real kernel's inotify."""

from __future__ import annotations

import errno
import shutil
import sys
import threading
from pathlib import Path

import pytest

from agent_lib.timeouts import _inotify, reload
from agent_lib.timeouts._inotify import StopEvent, open_inotify
from agent_lib.timeouts.reload import FolderWatcher, WatchSettings, atomic_swap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")

LONG_MS = 60_000
"""A resync timeout no test waits for: every return below is an event or a stop."""


class _Watch(threading.Thread):
    """One ``watch`` call in a thread, counting how often it wakes from ``poll``."""

    def __init__(self, notifier: _inotify._Inotify, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.notifier, self.stop, self.result = notifier, stop, ""
        self.waits = 0
        real_wait = notifier._wait

        def counted(seconds: float) -> bool:
            self.waits += 1
            return real_wait(seconds)

        notifier._wait = counted  # type: ignore[method-assign]

    def run(self) -> None:
        self.result = self.notifier.watch(200, 5, LONG_MS, self.stop)


def test_a_change_ends_the_wait_and_a_quiet_folder_returns_timeout(tmp_path: Path) -> None:
    atomic_swap(tmp_path, {"hourglass.yaml": "a: 1\n"})
    with open_inotify(tmp_path) as notifier:
        assert notifier.watch(200, 5, 50, threading.Event()) == "timeout"
        watch = _Watch(notifier, StopEvent())
        watch.start()
        atomic_swap(tmp_path, {"hourglass.yaml": "a: 2\n"})
        watch.join(10)
        assert watch.result == "changes"


def test_an_idle_watch_sleeps_in_one_poll_until_stop_event_wakes_it(tmp_path: Path) -> None:
    stop = StopEvent()
    with open_inotify(tmp_path) as notifier:
        watch = _Watch(notifier, stop)
        watch.start()
        watch.join(0.5)
        assert watch.is_alive()
        assert watch.waits == 1, "an idle watch must not wake up"
        stop.set()
        watch.join(10)
        assert not watch.is_alive()
        assert watch.result == "stop"
        assert watch.waits == 1


def test_a_plain_event_is_checked_periodically(tmp_path: Path) -> None:
    stop = threading.Event()
    with open_inotify(tmp_path) as notifier:
        watch = _Watch(notifier, stop)
        watch.start()
        watch.join(0.35)
        stop.set()
        watch.join(10)
        assert watch.result == "stop"
        assert watch.waits >= 2


def test_a_stop_set_before_the_call_returns_at_once(tmp_path: Path) -> None:
    stop = StopEvent()
    stop.set()
    with open_inotify(tmp_path) as notifier:
        assert notifier.watch(200, 5, LONG_MS, stop) == "stop"


def test_new_subfolders_are_watched_and_removed_ones_forgotten(tmp_path: Path) -> None:
    atomic_swap(tmp_path, {"hourglass.yaml": "a: 0\n"})
    with open_inotify(tmp_path) as notifier:
        for i in range(1, 12):
            atomic_swap(tmp_path, {"hourglass.yaml": f"a: {i}\n"})
            assert notifier.watch(200, 5, LONG_MS, StopEvent()) == "changes"
        (tmp_path / "sub").mkdir()
        assert notifier.watch(200, 5, LONG_MS, StopEvent()) == "changes"
        # the kubelet payload folder that exists now, the new one, and the root
        assert len(notifier._folders) == 3
        (tmp_path / "sub" / "edited").write_text("x")
        assert notifier.watch(200, 5, LONG_MS, StopEvent()) == "changes"


def test_a_missing_folder_is_an_oserror_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="missing") as caught:
        open_inotify(tmp_path / "missing")
    assert caught.value.errno == errno.ENOENT


def test_the_watcher_uses_inotify_and_falls_back_to_watchfiles_off_linux(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = WatchSettings()
    with reload._open(tmp_path, settings, polling=False) as notifier:
        assert isinstance(notifier, _inotify._Inotify)

    def not_linux(directory: Path) -> _inotify._Inotify:
        raise OSError(errno.ENOSYS, "inotify is Linux only")

    monkeypatch.setattr(reload, "open_inotify", not_linux)
    with reload._open(tmp_path, settings, polling=False) as notifier:
        assert not isinstance(notifier, _inotify._Inotify)


def test_out_of_inotify_instances_is_raised_so_the_watcher_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(directory: Path) -> _inotify._Inotify:
        raise OSError(errno.EMFILE, "inotify_init1: Too many open files")

    monkeypatch.setattr(reload, "open_inotify", exhausted)
    with pytest.raises(OSError, match="Too many"):
        reload._open(tmp_path, WatchSettings(), polling=False)
    watcher = FolderWatcher(tmp_path, lambda events: None)
    watcher.start()
    try:
        assert watcher.mode == "polling"
    finally:
        watcher.stop()


def test_folder_watcher_stops_without_waiting_for_its_resync(tmp_path: Path) -> None:
    calls: list[bool] = []
    watcher = FolderWatcher(tmp_path, calls.append, WatchSettings(resync_s=LONG_MS / 1000))
    watcher.start()
    assert watcher.mode == "inotify"
    thread = watcher._thread
    assert thread is not None
    watcher.stop(timeout=10)
    assert not thread.is_alive()
    assert calls == [True]


@pytest.mark.parametrize("how", ["deleted", "moved-away"])
def test_losing_the_folder_itself_is_reported(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "config"
    atomic_swap(folder, {"hourglass.yaml": "a: 1\n"})
    with open_inotify(folder) as notifier:
        assert not notifier.lost
        if how == "deleted":
            shutil.rmtree(folder)
        else:
            folder.rename(tmp_path / "old")
        assert notifier.watch(200, 5, LONG_MS, StopEvent()) == "changes"
        assert notifier.lost
