"""Timeouts benchmarks: the cost of ``tm.get`` and the latency of a live reload.

- ``timeout_lookup_ratio_vs_dict``: a tight loop of ``tm.get("llmCall")`` over the
  same loop of ``d["llmCall"]`` on a plain dict, interleaved in one run, best of
  several repeats each (goal <= 3).
- ``reload_latency_p50_ms`` / ``reload_latency_p99_ms``: from the start of a
  kubelet-style ``..data`` swap (`atomic_swap`) to the ``on_change`` callback, over
  50 swaps with real inotify (goal p99 <= 200).
- ``reload_latency_polling_p50_ms``: the same through the polling fallback (full
  run only), to show what losing inotify costs.
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

REPO = Path(__file__).resolve().parent.parent
SWAPS = 50


def run(quick: bool) -> dict[str, float]:
    metrics = {"timeout_lookup_ratio_vs_dict": lookup_ratio(quick)}
    latencies = reload_latencies(SWAPS)
    metrics["reload_latency_p50_ms"] = _percentile(latencies, 50)
    metrics["reload_latency_p99_ms"] = _percentile(latencies, 99)
    if not quick:
        polling = reload_latencies(20, WatchSettings(force_polling=True, poll_delay_ms=100))
        metrics["reload_latency_polling_p50_ms"] = _percentile(polling, 50)
    return metrics


# --- lookups --------------------------------------------------------------------------


def _loop_dict(values: dict[str, float], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        values["llmCall"]
    return time.perf_counter() - started


def _loop_manager(tm: TimeoutManager, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        tm.get("llmCall")
    return time.perf_counter() - started


def lookup_ratio(quick: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        atomic_swap(folder, {"hourglass.yaml": _bundle(45)})
        tm = TimeoutManager(config_dir=folder, environ={})
    values = dict(tm.current.timeouts)
    n = 200_000 if quick else 1_000_000
    repeats = 7 if quick else 15
    best_dict = best_tm = float("inf")
    for _ in range(repeats):
        best_dict = min(best_dict, _loop_dict(values, n))
        best_tm = min(best_tm, _loop_manager(tm, n))
    return best_tm / best_dict


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
                changed.clear()
                started = time.perf_counter()
                atomic_swap(folder, {"hourglass.yaml": _bundle(i + 2)})
                if not changed.wait(10):
                    raise RuntimeError(f"swap {i}: no on_change within 10 s")
                latencies.append((time.perf_counter() - started) * 1000)
    return latencies


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
