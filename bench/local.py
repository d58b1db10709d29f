"""Local mode's end-to-end propagation: a spec file saved -> an agent's ``on_change``.

A real ``hourglass local`` process (embedded Valkey, watching a spec folder) and a
real `TimeoutManager` watching the folder it publishes into; each round edits
``llmCall`` of the default profile and times until the agent sees the new value.
This is the whole chain on one machine: inotify on the spec, render, the kubelet-style
``..data`` swap, inotify on the config folder, validation and the snapshot swap.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from agent_lib.timeouts.manager import TimeoutManager

_REPO = Path(__file__).resolve().parent.parent
_START_TIMEOUT_S = 30.0
_ROUND_TIMEOUT_S = 10.0
_PAUSE_S = 0.2


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run(quick: bool) -> dict[str, float]:
    rounds = 20 if quick else 50
    work = Path(tempfile.mkdtemp(prefix="hg-bench-local-"))
    specs = work / "specs"
    specs.mkdir()
    for name in ("timeout_profiles.yaml", "session_settings.yaml"):
        shutil.copy(_REPO / "config" / name, specs / name)
    state = work / "state"
    hourglass = str(Path(sys.executable).parent / "hourglass")
    process = subprocess.Popen(
        [hourglass, "local", str(specs), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not (state / "env").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hourglass local did not start")
            time.sleep(0.05)
        latencies = _measure(specs / "timeout_profiles.yaml", state / "config", rounds)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "local_edit_to_agent_p50_ms": _percentile(latencies, 0.5),
        "local_edit_to_agent_p99_ms": _percentile(latencies, 0.99),
    }


def _measure(profile_file: Path, config_dir: Path, rounds: int) -> list[float]:
    original = profile_file.read_text()
    seen = threading.Event()
    latencies: list[float] = []
    with TimeoutManager(config_dir=config_dir, environ={}) as manager:
        manager.on_change(lambda _old, _new: seen.set())
        for index in range(rounds):
            seconds = 100 + index
            seen.clear()
            started = time.perf_counter()
            profile_file.write_text(original.replace("llmCall: 5m", f"llmCall: {seconds}s"))
            if not seen.wait(_ROUND_TIMEOUT_S) or manager.get("llmCall") != seconds:
                raise RuntimeError(f"round {index}: the agent did not see the edit")
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(_PAUSE_S)
    return latencies
