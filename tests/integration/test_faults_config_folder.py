"""Faults in the mounted config folder: the agent keeps its last good timeouts and says why.

A real `TimeoutManager` watches a kubelet-style folder (``..data`` symlink swapped
atomically) with real inotify while the folder's content is replaced by garbage, an
empty file, a half-written file (a torn in-place write, which kubelet never does but a
hand-made mount can), hostile YAML, or the file is deleted. Each time: no exception,
the previous values stay, ``last_error`` names the field and reason; a good file then
takes over and clears the error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_lib import TimeoutManager, atomic_swap
from agent_lib.timeouts.reload import DATA_DIR
from tests.fixtures.timeouts import builtin_bundle, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _bundle(llm_call: int) -> str:
    content = builtin_bundle()
    assert "llmCall: 300" in content  # dev's value in the built-in profiles
    return content.replace("llmCall: 300", f"llmCall: {llm_call}")


def _swap(text: str | bytes) -> Callable[[Path], None]:
    return lambda folder: atomic_swap(folder, {"hourglass.yaml": text})


def _torn_write(folder: Path) -> None:
    """Overwrite the live file in place with its first half (a torn write)."""
    target = (folder / "hourglass.yaml").resolve()
    content = target.read_bytes()
    with target.open("r+b") as handle:
        handle.truncate(0)
        handle.write(content[: len(content) // 2 - 7])


def _delete_file(folder: Path) -> None:
    (folder / "hourglass.yaml").unlink()


def _delete_everything(folder: Path) -> None:
    data = folder / DATA_DIR
    shutil.rmtree(folder / os.readlink(data))
    data.unlink()
    (folder / "hourglass.yaml").unlink()


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "binary garbage": (_swap(os.urandom(2048) + b"\x00"), "binary content"),
    "random text": (_swap("}{ not: [yaml\n\t::"), "invalid YAML"),
    "empty file": (_swap(""), "is empty"),
    "whitespace only": (_swap("\n  \n"), "is empty"),
    # Which field is missing depends on where the write stopped; any named field will do.
    "half-written (in place)": (_torn_write, ""),
    "not UTF-8": (_swap("namespace: caf\xe9\n".encode("latin-1")), "not UTF-8"),
    "negative timeout": (
        _swap(_bundle(300).replace("llmCall: 300", "llmCall: -5", 1)),
        "profiles.",
    ),
    "another document kind": (_swap("kind: ConfigMap\nnamespace: x\n"), "kind"),
    "billion laughs": (
        _swap(
            "a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n"
            + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))
        ),
        "alias bomb",
    ),
    "deep nesting": (_swap("[" * 200_000), "nested too deeply"),
    "impossible date": (_swap("namespace: 2001-13-45\n"), "invalid YAML value"),
    "11 MB file": (_swap("a: " + "x" * (11 * 1024 * 1024)), "the limit is 1 MiB"),
    "file deleted": (_delete_file, "does not exist"),
    "folder emptied": (_delete_everything, "does not exist"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_agent_keeps_last_good_timeouts_and_says_why(
    fault: str, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "hourglass"
    atomic_swap(folder, {"hourglass.yaml": _bundle(41)})
    changes: list[float] = []
    with TimeoutManager(config_dir=folder, environ={}) as tm:
        tm.on_change(lambda old, new: changes.append(new.timeouts["llmCall"]))
        atomic_swap(folder, {"hourglass.yaml": _bundle(42)})
        wait_until(lambda: tm.get("llmCall") == 42)
        good = tm.current
        assert tm.last_error is None

        damage, reason = FAULTS[fault]
        damage(folder)
        wait_until(lambda: tm.last_error is not None)
        assert tm.get("llmCall") == 42
        assert tm.current is good
        field, _, why = tm.last_error.partition(": ")
        assert field and why, tm.last_error
        assert reason in tm.last_error
        assert tm.watching != "stopped"

        atomic_swap(folder, {"hourglass.yaml": _bundle(43)})
        wait_until(lambda: tm.get("llmCall") == 43)
        wait_until(lambda: tm.last_error is None)
    assert changes == [42, 43]


def test_a_storm_of_bad_swaps_never_replaces_the_last_good_config(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """Every fault in a row with no good file between them, then one good file."""
    folder = tmp_path / "hourglass"
    atomic_swap(folder, {"hourglass.yaml": _bundle(50)})
    seen: list[float] = []
    with TimeoutManager(config_dir=folder, environ={}) as tm:
        for name in sorted(FAULTS):
            damage, _ = FAULTS[name]
            if not (folder / "hourglass.yaml").exists():
                atomic_swap(folder, {"hourglass.yaml": "a: [broken"})
            damage(folder)
            seen.append(tm.get("llmCall"))
        wait_until(lambda: tm.last_error is not None)
        assert set(seen) == {50}
        assert tm.get("llmCall") == 50
        atomic_swap(folder, {"hourglass.yaml": _bundle(51)})
        wait_until(lambda: tm.get("llmCall") == 51 and tm.last_error is None)
