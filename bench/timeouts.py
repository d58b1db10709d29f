"""Timeouts benchmarks: the cost of ``tm.get`` and the latency of a live reload.

- ``timeout_lookup_ratio_vs_dict``: a tight loop of ``tm.get("llmCall")`` over the
  same loop of ``d["llmCall"]`` on a plain dict, interleaved in one run: many short
  loops, best of each (a short loop is less often preempted on a shared machine, so
  the best approaches the undisturbed cost) (goal <= 1.5).
- ``timeout_lookup_floor_ratio_vs_dict``: the same loop calling ``holder.get("llmCall")``
  where ``holder.get`` is the plain dict's own C method ``dict.get``: what any call
  through an attribute costs on this interpreter, with no Python code in it. It is the
  floor under ``tm.get``, measured in the same interleaved rounds.
- ``reload_latency_p50_ms`` / ``reload_latency_p99_ms``: from the start of a
  kubelet-style ``..data`` swap (`atomic_swap`) to the ``on_change`` callback, over
  50 swaps with real inotify (goal p99 <= 30). The new payload is rendered before the
  clock starts: rendering is the operator's work, not the reload's.
- ``reload_latency_polling_p50_ms``: the same through the polling fallback (full
  run only), to show what losing inotify costs.
- ``reload_idle_cpu_pct``: CPU time of this process over wall time while an idle
  ``TimeoutManager`` watches its folder for ``IDLE_S`` seconds (``--quick``:
  ``IDLE_QUICK_S``), in percent of one CPU (goal <= 0.5). The watcher thread is the
  only thing running, asleep in ``poll(2)`` on inotify until an event (with watchfiles,
  polling or off Linux, it would wake every ``step_ms``).
- ``timed_overhead_ns``: ``with tm.timed(name)`` over a bare perf_counter pair
  (goal <= 1,000; see `bench.timed`).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from agent_lib import TimeoutConfig, TimeoutManager, atomic_swap
from agent_lib.config import load_text, parse_documents, render_config
from agent_lib.config.timeout_profiles import TimeoutProfile
from agent_lib.timeouts.reload import WatchSettings
from bench import timed

REPO = Path(__file__).resolve().parent.parent
SWAPS = 50
IDLE_S = 10.0
IDLE_QUICK_S = 3.0
LOOKUP_N = 50_000
LOOKUP_REPEATS = {True: 100, False: 300}
"""Loops per side: ``--quick`` (True) and full runs."""


def run(quick: bool) -> dict[str, float]:
    metrics = lookup_ratios(quick)
    latencies = reload_latencies(SWAPS)
    metrics["reload_latency_p50_ms"] = _percentile(latencies, 50)
    metrics["reload_latency_p99_ms"] = _percentile(latencies, 99)
    if not quick:
        polling = reload_latencies(20, WatchSettings(force_polling=True, poll_delay_ms=100))
        metrics["reload_latency_polling_p50_ms"] = _percentile(polling, 50)
    metrics["reload_idle_cpu_pct"] = idle_cpu_pct(IDLE_QUICK_S if quick else IDLE_S)
    metrics.update(timed.run(quick))
    return metrics


# --- lookups --------------------------------------------------------------------------


def _loop_dict(values: dict[str, float], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        values["llmCall"]
    return time.perf_counter() - started


class _Holder:
    """An object whose ``get`` is a C method (a dict's own ``get``): the call floor."""

    def __init__(self, values: dict[str, float]) -> None:
        self.get = values.get


def _loop_floor(holder: _Holder, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        holder.get("llmCall")
    return time.perf_counter() - started


def _loop_manager(tm: TimeoutManager, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        tm.get("llmCall")
    return time.perf_counter() - started


def lookup_ratios(quick: bool) -> dict[str, float]:
    """``tm.get`` and the call floor over a plain dict lookup, rounds interleaved."""
    with tempfile.TemporaryDirectory() as folder:
        atomic_swap(folder, {"hourglass.yaml": _bundle(45)})
        tm = TimeoutManager(config_dir=folder, environ={})
    values = dict(tm.current.timeouts)
    holder = _Holder(values)
    n, repeats = LOOKUP_N, LOOKUP_REPEATS[quick]
    best_dict = best_tm = best_floor = float("inf")
    for _ in range(repeats):
        best_dict = min(best_dict, _loop_dict(values, n))
        best_tm = min(best_tm, _loop_manager(tm, n))
        best_floor = min(best_floor, _loop_floor(holder, n))
    return {
        "timeout_lookup_ratio_vs_dict": best_tm / best_dict,
        "timeout_lookup_floor_ratio_vs_dict": best_floor / best_dict,
    }


# --- reloads --------------------------------------------------------------------------


def reload_latencies(swaps: int, settings: WatchSettings | None = None) -> list[float]:
    """Milliseconds from the start of each swap to the on_change callback."""
    changed = threading.Event()
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        atomic_swap(folder, {"hourglass.yaml": _bundle(1)})
        with TimeoutManager(config_dir=folder, environ={}, watch=settings) as tm:

            def on_change(old: TimeoutConfig, new: TimeoutConfig) -> None:
                changed.set()

            tm.on_change(on_change)
            for i in range(swaps):
                payload = {"hourglass.yaml": _bundle(i + 2)}
                changed.clear()
                started = time.perf_counter()
                atomic_swap(folder, payload)
                if not changed.wait(10):
                    raise RuntimeError(f"swap {i}: no on_change within 10 s")
                latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def idle_cpu_pct(seconds: float) -> float:
    """Percent of one CPU this process spends while a TimeoutManager watches, idle."""
    with tempfile.TemporaryDirectory() as folder:
        atomic_swap(folder, {"hourglass.yaml": _bundle(1)})
        with TimeoutManager(config_dir=folder, environ={}):
            time.sleep(0.2)  # past the start-up read
            cpu, wall = time.process_time(), time.perf_counter()
            time.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return round(100 * cpu / wall, 3)


def _percentile(values: list[float], percent: int) -> float:
    """Nearest-rank percentile (with 50 samples, p99 is the slowest one)."""
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))
    return round(ordered[rank - 1], 2)


_BUILTIN: list[TimeoutProfile] = []


def _bundle(llm_call: int) -> str:
    """A rendered hourglass.yaml (the built-in profiles) with a distinct llmCall."""
    if not _BUILTIN:
        text = (REPO / "config" / "timeout_profiles.yaml").read_text()
        parsed = parse_documents(load_text(text).documents, default_namespace="bench")
        _BUILTIN.extend(r for r in parsed.by_namespace["bench"] if isinstance(r, TimeoutProfile))
    content = render_config("bench", _BUILTIN).content
    return content.replace("llmCall: 300", f"llmCall: {llm_call}")
