"""Hot reload with a real kubelet-style folder and real inotify (and the polling fallback).

Nothing here asserts on timing: each test waits for the event it expects with a
bounded poll (`wait_until`) and fails, rather than hangs, when it never comes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest

from agent_lib import AsyncTimeoutManager, TimeoutConfig, TimeoutManager, atomic_swap
from agent_lib.timeouts.reload import DATA_DIR, WatchSettings
from tests.fixtures.timeouts import builtin_bundle, wait_until

Change = tuple[TimeoutConfig, TimeoutConfig]


def bundle(llm_call: int) -> str:
    return builtin_bundle().replace("llmCall: 300", f"llmCall: {llm_call}")


def recorder(tm: TimeoutManager) -> list[Change]:
    changes: list[Change] = []
    tm.on_change(lambda old, new: changes.append((old, new)))
    return changes


def errors(tm: TimeoutManager) -> float:
    return tm.stats()["reloads"].get("error", 0.0)


def test_kubelet_swap_reloads_and_calls_back(kube_folder: Path) -> None:
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        assert tm.watching == "inotify"
        changes = recorder(tm)
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(12)})
        wait_until(lambda: changes)
        old, new = changes[0]
        assert (old.timeouts["llmCall"], new.timeouts["llmCall"]) == (300.0, 12.0)
        assert old.hash != new.hash
        assert tm.get("llmCall") == 12.0
        assert tm.current is new
    assert tm.watching == "stopped"


def test_hand_built_data_swap_with_symlink_and_replace(kube_folder: Path) -> None:
    """The swap exactly as kubelet performs it, without our writer."""
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        changes = recorder(tm)
        new_dir = kube_folder / "..2030_01_01_00_00_00.123456789"
        new_dir.mkdir()
        (new_dir / "hourglass.yaml").write_text(bundle(77))
        old_target = os.readlink(kube_folder / DATA_DIR)
        os.symlink(new_dir.name, kube_folder / "..data_tmp")
        os.replace(kube_folder / "..data_tmp", kube_folder / DATA_DIR)
        shutil.rmtree(kube_folder / old_target)
        wait_until(lambda: changes)
        assert tm.get("llmCall") == 77.0


def test_many_swaps_end_on_the_last_content(kube_folder: Path) -> None:
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        for value in range(20, 30):
            atomic_swap(kube_folder, {"hourglass.yaml": bundle(value)})
        wait_until(lambda: tm.get("llmCall") == 29.0)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (bundle(300).replace("llmCall: 300", "llmCall: -5"), "profiles.dev.timeouts.llmCall"),
        (bundle(300)[: len(bundle(300)) // 2] + "\n  weird: [", "hourglass.yaml"),
        ("", "hourglass.yaml"),
        ("   \n", "hourglass.yaml"),
        (bundle(300).replace("defaultProfile: dev", "defaultProfile: nope"), "defaultProfile"),
        ("just a string\n", "hourglass.yaml"),
    ],
    ids=["invalid-value", "half-written", "empty", "blank", "bad-default", "not-a-mapping"],
)
def test_bad_file_keeps_last_good_snapshot(kube_folder: Path, content: str, field: str) -> None:
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        changes = recorder(tm)
        good = tm.current
        atomic_swap(kube_folder, {"hourglass.yaml": content})
        wait_until(lambda: errors(tm) >= 1)
        assert tm.current is good
        assert tm.get("llmCall") == 300.0
        assert tm.last_error is not None
        assert tm.last_error.split(":")[0] == field
        assert changes == []
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(42)})
        wait_until(lambda: tm.get("llmCall") == 42.0)
        assert tm.last_error is None
        # Callbacks run on the watcher thread just after the snapshot swap.
        wait_until(lambda: len(changes) >= 1)
        assert len(changes) == 1


def test_in_place_half_written_file_is_rejected_then_completed(tmp_path: Path) -> None:
    """Not kubelet: a tool writing the file in two steps; the half state is never used."""
    path = tmp_path / "hourglass.yaml"
    path.write_text(bundle(300))
    with TimeoutManager(config_dir=tmp_path, environ={}) as tm:
        full = bundle(55)
        path.write_text(full[: len(full) // 3])
        wait_until(lambda: errors(tm) >= 1)
        assert tm.get("llmCall") == 300.0
        path.write_text(full)
        wait_until(lambda: tm.get("llmCall") == 55.0)
        assert tm.last_error is None


@pytest.mark.parametrize("how", ["key-removed", "symlink-unlinked"])
def test_deleted_file_keeps_last_good_snapshot(kube_folder: Path, how: str) -> None:
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        good = tm.current
        if how == "key-removed":
            atomic_swap(kube_folder, {"other.yaml": "a: 1\n"})
        else:
            (kube_folder / "hourglass.yaml").unlink()
        wait_until(lambda: tm.last_error is not None)
        assert tm.last_error is not None
        assert tm.last_error.startswith("hourglass.yaml:")
        assert "does not exist" in tm.last_error
        assert tm.current is good
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(31)})
        wait_until(lambda: tm.get("llmCall") == 31.0)
        assert tm.last_error is None


def test_polling_fallback_picks_up_swaps(kube_folder: Path) -> None:
    settings = WatchSettings(force_polling=True, poll_delay_ms=50)
    with TimeoutManager(config_dir=kube_folder, environ={}, watch=settings) as tm:
        assert tm.watching == "polling"
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(61)})
        wait_until(lambda: tm.get("llmCall") == 61.0)


def test_folder_mounted_after_start(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    settings = WatchSettings(poll_delay_ms=20)
    with TimeoutManager(config_dir=folder, environ={}, watch=settings) as tm:
        assert tm.current.source == "builtin"
        assert tm.watching == "waiting"
        atomic_swap(folder, {"hourglass.yaml": bundle(8)})
        wait_until(lambda: tm.get("llmCall") == 8.0)
        assert tm.current.source == str(folder / "hourglass.yaml")
        wait_until(lambda: tm.watching == "inotify")
        atomic_swap(folder, {"hourglass.yaml": bundle(9)})
        wait_until(lambda: tm.get("llmCall") == 9.0)


def test_failing_callback_does_not_stop_watching(kube_folder: Path) -> None:
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        calls: list[float] = []

        def explode(old: TimeoutConfig, new: TimeoutConfig) -> None:
            calls.append(new.timeouts["llmCall"])
            raise RuntimeError("callback bug")

        tm.on_change(explode)
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(1)})
        wait_until(lambda: calls == [1.0])
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(2)})
        wait_until(lambda: calls == [1.0, 2.0])
        assert tm.get("llmCall") == 2.0


def test_change_between_construction_and_start_is_not_missed(kube_folder: Path) -> None:
    tm = TimeoutManager(config_dir=kube_folder, environ={})
    atomic_swap(kube_folder, {"hourglass.yaml": bundle(3)})
    with tm:
        wait_until(lambda: tm.get("llmCall") == 3.0)


def test_reads_during_swaps_see_whole_snapshots(kube_folder: Path) -> None:
    """Readers never see a mix of two versions: values always match their hash."""
    with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        stop = threading.Event()
        torn: list[TimeoutConfig] = []

        def read() -> None:
            while not stop.is_set():
                snapshot = tm.current
                if snapshot.timeouts["llmCall"] != snapshot.timeouts["toolCall"]:
                    torn.append(snapshot)

        atomic_swap(kube_folder, {"hourglass.yaml": _equal(1)})
        wait_until(lambda: tm.get("llmCall") == 1.0)
        reader = threading.Thread(target=read)
        reader.start()
        for value in range(2, 12):
            atomic_swap(kube_folder, {"hourglass.yaml": _equal(value)})
            wait_until(lambda value=value: tm.get("llmCall") == float(value))
        stop.set()
        reader.join()
        assert torn == []


def _equal(value: int) -> str:
    return (
        builtin_bundle()
        .replace("llmCall: 300", f"llmCall: {value}")
        .replace("toolCall: 120", f"toolCall: {value}")
    )


# --- asyncio --------------------------------------------------------------------------


async def wait_async(predicate: object, timeout: float = 15.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_async_with_reloads_on_the_event_loop(kube_folder: Path) -> None:
    loop_threads: list[bool] = []
    async with TimeoutManager(config_dir=kube_folder, environ={}) as tm:
        assert tm.watching == "async"
        tm.on_change(lambda old, new: loop_threads.append(_on_loop()))
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(14)})
        await wait_async(lambda: tm.get("llmCall") == 14.0)
    assert loop_threads == [True]
    assert tm.watching == "stopped"


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_async_manager_awaits_async_callbacks(kube_folder: Path) -> None:
    seen: list[float] = []

    async def changed(old: TimeoutConfig, new: TimeoutConfig) -> None:
        await asyncio.sleep(0)
        seen.append(new.timeouts["llmCall"])

    async with AsyncTimeoutManager(config_dir=kube_folder, environ={}) as tm:
        tm.on_change(changed)
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(15)})
        await wait_async(lambda: seen == [15.0])
        atomic_swap(kube_folder, {"hourglass.yaml": "broken: ["})
        await wait_async(lambda: tm.last_error is not None)
        assert tm.get("llmCall") == 15.0


def test_async_manager_refuses_plain_with(kube_folder: Path) -> None:
    with (
        pytest.raises(TypeError, match="async with"),
        AsyncTimeoutManager(config_dir=kube_folder, environ={}),
    ):
        pass


def test_same_size_rewrite_in_place_is_seen(tmp_path: Path) -> None:
    """A rewrite that keeps size (and maybe mtime, within one clock tick) is still re-read."""
    path = tmp_path / "hourglass.yaml"
    path.write_text(bundle(11))
    with TimeoutManager(config_dir=tmp_path, environ={}) as tm:
        assert tm.get("llmCall") == 11.0
        for value in (22, 33, 44):
            path.write_text(bundle(value))
            wait_until(lambda value=value: tm.get("llmCall") == float(value))


def test_inotify_failure_falls_back_to_polling(
    kube_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stands in for a node out of inotify instances: creating an inotify watch fails."""
    from agent_lib.timeouts import reload

    real_open = reload._open

    def no_inotify(directory: Path, settings: WatchSettings, polling: bool) -> object:
        if not polling:
            raise OSError(24, "OS file watch limit reached")
        return real_open(directory, settings, polling)

    monkeypatch.setattr(reload, "_open", no_inotify)
    settings = WatchSettings(poll_delay_ms=50)
    with TimeoutManager(config_dir=kube_folder, environ={}, watch=settings) as tm:
        wait_until(lambda: tm.watching == "polling")
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(71)})
        wait_until(lambda: tm.get("llmCall") == 71.0)


# --- the folder itself replaced (issue 26) -----------------------------------------------

NO_RESYNC = WatchSettings(resync_s=600)
"""Only events can make these reloads happen: a resync would hide a dead watch."""


def _replace_folder(folder: Path, how: str, llm_call: int) -> None:
    """Delete ``folder`` and put a new one in its place right away."""
    if how == "recreated":
        shutil.rmtree(folder)
        atomic_swap(folder, {"hourglass.yaml": bundle(llm_call)})
    else:
        staged = folder.with_name("staged")
        atomic_swap(staged, {"hourglass.yaml": bundle(llm_call)})
        folder.rename(folder.with_name("old"))
        staged.rename(folder)


@pytest.mark.parametrize("how", ["recreated", "renamed-into-place"])
def test_a_replaced_folder_is_watched_again(kube_folder: Path, how: str) -> None:
    with TimeoutManager(config_dir=kube_folder, environ={}, watch=NO_RESYNC) as tm:
        _replace_folder(kube_folder, how, 21)
        wait_until(lambda: tm.get("llmCall") == 21.0)
        wait_until(lambda: tm.watching == "inotify")
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(22)})
        wait_until(lambda: tm.get("llmCall") == 22.0)


@pytest.mark.parametrize("how", ["recreated", "renamed-into-place"])
async def test_a_replaced_folder_is_watched_again_async(kube_folder: Path, how: str) -> None:
    async with TimeoutManager(config_dir=kube_folder, environ={}, watch=NO_RESYNC) as tm:
        _replace_folder(kube_folder, how, 23)
        await wait_async(lambda: tm.get("llmCall") == 23.0)
        atomic_swap(kube_folder, {"hourglass.yaml": bundle(24)})
        await wait_async(lambda: tm.get("llmCall") == 24.0)
