"""Timeouts sized from observed latency, through the real Prometheus (tests/prometheus).

Synthetic agent processes (tests/fixtures/synthetic_agent.py) record lognormal
workloads through agent_lib's recorder; Prometheus (built from Go modules) scrapes them
every second; the operator's own `Tuner` asks it, over the HTTP query API, as in a cluster.

- ``recommend_error_pct``: the worst, over workloads whose p99.9 spans 0.2 s .. 2 min,
  of ``|recommended - headroom x true p99.9| / (headroom x true p99.9)``, in percent
  (goal <= 15). The truth is the p99.9 of the very draws the agents recorded.
- ``tuning_queries_per_profile_hour``: Prometheus queries one tuned profile costs per
  hour at the default interval (300 s), counted by the client over the rounds run.
- ``recommend_round_ms``: one round for one profile (three queries), median.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hourglass_operator.tuning_loop import Tuner

from agent_lib.durations import parse_duration
from hourglass_cli.valkey_server import free_port, stop_process
from tests.fixtures.synthetic_agent import draws
from tests.prometheus._build import BuildError, cached_binary
from tests.prometheus._run import Prometheus, scrape_config

NAMESPACE = "agents-bench"
DEFAULT_INTERVAL_S = 300.0
WORKLOADS = {
    # name: (median s, sigma, calls per agent); two agents each
    "fastCall": (0.05, 0.5, 10_000),
    "llmCall": (0.8, 0.6, 10_000),
    "slowCall": (6.0, 0.9, 10_000),
}
QUICK = ("llmCall",)
ROUNDS = 5


def _truth(name: str, seeds: tuple[int, int]) -> float:
    median, sigma, count = WORKLOADS[name]
    values = sorted(v for seed in seeds for v in draws(seed, median, sigma, count))
    return float(values[math.ceil(0.999 * len(values)) - 1])


def _wait(server: Prometheus, name: str, count: float, timeout_s: float = 120) -> None:
    """Until every call the agents record has been scraped (the raw counters' sum)."""
    query = f'sum(hourglass_operation_duration_seconds_count{{name="{name}"}})'
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = server.query(query)
        if result and float(result[0]["value"][1]) >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"Prometheus never saw {count:.0f} {name} calls")


def run(quick: bool) -> dict[str, float]:
    binary = cached_binary()
    if binary is None:
        raise BuildError("build Prometheus first: python -m tests.prometheus --build-only")
    names = QUICK if quick else tuple(WORKLOADS)
    processes: list[subprocess.Popen[bytes]] = []
    seeds = {name: (2 * i + 1, 2 * i + 2) for i, name in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-prom-") as tmp:
        targets = []
        for name in names:
            median, sigma, count = WORKLOADS[name]
            for seed in seeds[name]:
                port = free_port()
                args = [sys.executable, "-m", "tests.fixtures.synthetic_agent", "--port"]
                args += [str(port), "--name", name, "--median", str(median)]
                args += ["--sigma", str(sigma), "--count", str(count), "--seed", str(seed)]
                processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
                targets.append(f"127.0.0.1:{port}")
        config = Path(tmp) / "prometheus.yml"
        config.write_text(scrape_config(targets, labels={"namespace": NAMESPACE}))
        server = Prometheus(binary, Path(tmp) / "data", config)
        try:
            server.start()
            for name in names:
                _wait(server, name, 2 * WORKLOADS[name][2])
            return _measure(server.url, names, seeds)
        finally:
            server.stop()
            for process in processes:
                stop_process(process, 5.0)


def _measure(
    url: str, names: tuple[str, ...], seeds: Mapping[str, tuple[int, int]]
) -> dict[str, float]:
    statuses: dict[str, dict[str, Any]] = {}

    async def keep(_ns: str, body: Mapping[str, Any], change: Any) -> dict[str, Any]:
        statuses["s"] = change(statuses.get("s", {}))
        return statuses["s"]

    body = {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "bench", "namespace": NAMESPACE, "uid": "bench"},
        "spec": {
            "timeouts": dict.fromkeys(names, "30m"),
            "tuning": {"mode": "Recommend", "window": "10m", "minSamples": 1000},
        },
    }
    tuner = Tuner(keep, url)
    assert tuner.client is not None
    rounds_ms = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        asyncio.run(tuner.run_round(NAMESPACE, [body]))
        rounds_ms.append((time.perf_counter() - started) * 1000)
    recommendations = statuses["s"]["recommendations"]
    errors = []
    for name in names:
        goal = 1.5 * _truth(name, seeds[name])
        errors.append(abs(parse_duration(recommendations[name]["value"]) - goal) / goal * 100)
    per_round = tuner.client.queries / ROUNDS
    return {
        "recommend_error_pct": round(max(errors), 2),
        "tuning_queries_per_profile_hour": round(per_round * 3600 / DEFAULT_INTERVAL_S, 1),
        "recommend_round_ms": round(statistics.median(rounds_ms), 1),
    }
