"""Agents' latency through a real Prometheus: the histogram's p99.9 and the recommendations.

Synthetic agent processes (tests/fixtures/synthetic_agent.py) record a known lognormal
workload through agent_lib's recorder and serve /metrics; the real Prometheus
(tests/prometheus, built from Go modules) scrapes them every second, labelled with a
namespace as the chart's PodMonitor labels pods. The operator's `Tuner` then asks that
Prometheus, over the standard HTTP query API, exactly as it does in a cluster.
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hourglass_operator.tuning_loop import PrometheusClient, PrometheusError, Tuner

from agent_lib.durations import parse_duration
from hourglass_cli.valkey_server import free_port, stop_process
from tests.fixtures.synthetic_agent import draws
from tests.prometheus._run import Prometheus, scrape_config

NAMESPACE = "agents-tuned"
Q = 0.999
HEADROOM = 1.5
HOURGLASS = str(Path(sys.executable).with_name("hourglass"))


def true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


@pytest.fixture
def agents() -> Iterator[Callable[..., str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**options: Any) -> str:
        port = free_port()
        args = [sys.executable, "-m", "tests.fixtures.synthetic_agent", "--port", str(port)]
        for key, value in options.items():
            args += [f"--{key}", str(value)]
        started.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        return f"127.0.0.1:{port}"

    try:
        yield start
    finally:
        for process in started:
            stop_process(process, 5.0)


def wait_for_samples(server: Prometheus, name: str, count: float, timeout_s: float = 90) -> None:
    query = f'sum(increase(hourglass_operation_duration_seconds_count{{name="{name}"}}[10m]))'
    deadline = time.monotonic() + timeout_s
    seen = 0.0
    while time.monotonic() < deadline:
        result = server.query(query)
        seen = float(result[0]["value"][1]) if result else 0.0
        if seen >= count:
            return
        time.sleep(1)
    raise AssertionError(f"Prometheus saw {seen:.0f} of {count:.0f} {name} calls")


def profile(timeouts: Mapping[str, str], **tuning: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "prod", "namespace": NAMESPACE, "uid": "u1", "generation": 1},
        "spec": {
            "timeouts": dict(timeouts),
            "tuning": {"mode": "Recommend", "window": "10m", "minSamples": 1000, **tuning},
        },
    }


def tune(url: str, body: dict[str, Any]) -> dict[str, Any]:
    statuses: dict[str, dict[str, Any]] = {}

    async def write(_ns: str, b: Mapping[str, Any], change: Any) -> dict[str, Any]:
        statuses["s"] = change(statuses.get("s", {}))
        return statuses["s"]

    asyncio.run(Tuner(write, url).run_round(NAMESPACE, [body]))
    return statuses["s"]


def test_p999_through_promql_and_the_recommendation(
    prometheus_server: Callable[..., Prometheus], agents: Callable[..., str], tmp_path: Path
) -> None:
    """Two agents, lognormal(median 0.8 s, sigma 0.6): PromQL's p99.9 within ±10% of the
    true one, the recommendation within ±15% of headroom x the true p99.9; a third agent
    whose toolCall times out at 1.5 s for ~5% of calls gives a censored raise."""
    workload = {"name": "llmCall", "median": 0.8, "sigma": 0.6, "count": 15_000}
    targets = [
        agents(seed=1, **workload),
        agents(seed=2, **workload),
        agents(seed=3, name="toolCall", median=0.5, sigma=0.7, count=8_000, timeout=1.5),
    ]
    server = prometheus_server(targets, labels={"namespace": NAMESPACE})
    wait_for_samples(server, "llmCall", 25_000)
    wait_for_samples(server, "toolCall", 6_000)

    values = draws(1, 0.8, 0.6, 15_000) + draws(2, 0.8, 0.6, 15_000)
    truth = true_quantile(values, Q)
    promql = (
        "histogram_quantile(0.999, sum by (le) (increase("
        'hourglass_operation_duration_seconds_bucket{name="llmCall"}[10m])))'
    )
    read_back = float(server.query(promql)[0]["value"][1])
    assert abs(read_back - truth) / truth <= 0.10, (read_back, truth)

    status = tune(server.url, profile({"llmCall": "60s", "toolCall": "1500ms"}))
    llm = status["recommendations"]["llmCall"]
    assert llm["censored"] is False
    assert abs(parse_duration(llm["value"]) - HEADROOM * truth) / (HEADROOM * truth) <= 0.15
    assert llm["samples"] >= 25_000 and llm["current"] == "1m"

    tool = status["recommendations"]["toolCall"]
    assert tool["censored"] is True, tool
    assert parse_duration(tool["value"]) == pytest.approx(1.5 * HEADROOM)
    tuned = next(c for c in status["conditions"] if c["type"] == "Tuned")
    assert (tuned["status"], tuned["reason"]) == ("True", "Recommended")

    # `hourglass recommend` as the docs run it: profiles from a file, this Prometheus.
    profiles = tmp_path / "profiles.yaml"
    untuned = profile({"llmCall": "60s"})
    untuned["metadata"] = {"name": "dev"}
    del untuned["spec"]["tuning"]
    profiles.write_text(
        yaml.safe_dump_all([profile({"llmCall": "60s", "toolCall": "1500ms"}), untuned])
    )
    shown = subprocess.run(
        [
            HOURGLASS,
            "recommend",
            "-n",
            NAMESPACE,
            "-f",
            str(profiles),
            "--prometheus-url",
            server.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown[0].split() == [
        "PROFILE",
        "NAME",
        "CURRENT",
        "OBSERVED",
        "P99.9",
        "RECOMMENDED",
        "SAMPLES",
        "CENSORED",
    ]
    rows = {tuple(line.split()[:2]): line.split() for line in shown[1:]}
    assert rows["prod", "llmCall"][2] == "1m" and rows["prod", "llmCall"][-1] == "no"
    # computed a moment later: the window's extrapolation moves it slightly
    assert parse_duration(rows["prod", "llmCall"][4]) == pytest.approx(
        parse_duration(llm["value"]), rel=0.05
    )
    assert rows["prod", "toolCall"][-1] == "yes"
    # asked explicitly, a profile without spec.tuning is computed as Recommend
    assert parse_duration(rows["dev", "llmCall"][4]) == pytest.approx(
        parse_duration(rows["prod", "llmCall"][4]), rel=0.05
    )


def test_prometheus_going_away_keeps_the_last_value(
    prometheus_server: Callable[..., Prometheus], agents: Callable[..., str]
) -> None:
    target = agents(seed=4, name="llmCall", median=0.2, sigma=0.5, count=3_000)
    server = prometheus_server([target], labels={"namespace": NAMESPACE})
    wait_for_samples(server, "llmCall", 2_000)
    statuses: dict[str, dict[str, Any]] = {}

    async def write(_ns: str, b: Mapping[str, Any], change: Any) -> dict[str, Any]:
        statuses["s"] = change(statuses.get("s", {}))
        return statuses["s"]

    tuner = Tuner(write, server.url)
    body = profile({"llmCall": "60s"})
    asyncio.run(tuner.run_round(NAMESPACE, [body]))
    first = statuses["s"]["recommendations"]["llmCall"]
    server.stop()
    asyncio.run(tuner.run_round(NAMESPACE, [body]))
    assert statuses["s"]["recommendations"]["llmCall"] == first
    tuned = next(c for c in statuses["s"]["conditions"] if c["type"] == "Tuned")
    assert (tuned["status"], tuned["reason"]) == ("False", "PrometheusUnreachable")


def test_too_few_samples_is_tuned_false(
    prometheus_server: Callable[..., Prometheus], agents: Callable[..., str]
) -> None:
    target = agents(seed=5, name="llmCall", median=0.2, sigma=0.5, count=200)
    server = prometheus_server([target], labels={"namespace": NAMESPACE})
    wait_for_samples(server, "llmCall", 150)
    status = tune(server.url, profile({"llmCall": "60s"}))
    tuned = next(c for c in status["conditions"] if c["type"] == "Tuned")
    assert (tuned["status"], tuned["reason"]) == ("False", "TooFewSamples")
    assert "llmCall" in tuned["message"]
    assert not status.get("recommendations")


def test_the_client_counts_its_queries(prometheus_server: Callable[..., Prometheus]) -> None:
    server = prometheus_server(["127.0.0.1:1"])
    client = PrometheusClient(server.url)
    assert asyncio.run(client.vector("vector(1)", label="none")) == {"": 1.0}
    assert client.queries == 1


def test_python_m_tests_prometheus_prints_the_url_and_stops_on_sigterm(
    prometheus_binary: Path, tmp_path: Path
) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(["127.0.0.1:1"]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.prometheus",
            "--state-dir",
            str(tmp_path / "state"),
            "--scrape-config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("PROMETHEUS_URL=http://127.0.0.1:"), line
        url = line.removeprefix("PROMETHEUS_URL=")
        client = PrometheusClient(url)
        assert asyncio.run(client.vector("vector(1)", label="none")) == {"": 1.0}
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        with pytest.raises(PrometheusError):
            asyncio.run(client.vector("vector(1)"))
    finally:
        if process.poll() is None:
            stop_process(process, 5.0)  # type: ignore[arg-type]


def test_python_m_tests_prometheus_refuses_a_missing_config(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.prometheus",
            "--state-dir",
            str(tmp_path),
            "--scrape-config",
            str(tmp_path / "nope.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "--scrape-config" in done.stderr
    assert "Traceback" not in done.stderr
