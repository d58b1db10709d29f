"""spec.tuning end to end: real control plane, real Prometheus, synthetic agents.

Synthetic agent processes (tests/fixtures/synthetic_agent.py) record a lognormal
workload through agent_lib's recorder; the real Prometheus scrapes them, labelled with
the namespace as the chart's PodMonitor labels pods; `hourglass operator
--prometheus-url` (as its own ServiceAccount, so the shipped RBAC is enforced) turns the
latency into status.recommendations and, in Apply mode, into what agents run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_lib.durations import parse_duration
from hourglass_cli.valkey_server import free_port, stop_process
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.k8s_emulator import OperatorProcess
from tests.fixtures.synthetic_agent import draws
from tests.integration._resources import _condition, _config, _profile, _yaml
from tests.integration.test_prometheus_tuning import true_quantile, wait_for_samples
from tests.prometheus._run import Prometheus

pytestmark = pytest.mark.timeout(240)
HEADROOM = 1.5


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


def _recommendations(cluster: Cluster, ns: str) -> dict[str, Any]:
    body = cluster.get("timeoutprofiles", ns, "prod") or {}
    return dict((body.get("status") or {}).get("recommendations") or {})


def test_apply_on_the_real_control_plane(
    real_cluster: Cluster,
    prometheus_server: Callable[..., Prometheus],
    agents: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = real_cluster.namespace()
    workload = {"name": "llmCall", "median": 0.8, "sigma": 0.6, "count": 12_000}
    targets = [
        agents(seed=11, **workload),
        agents(seed=12, **workload),
        agents(seed=13, name="toolCall", median=0.5, sigma=0.7, count=6_000, timeout=1.5),
    ]
    server = prometheus_server(targets, labels={"namespace": ns})
    wait_for_samples(server, "llmCall", 20_000)
    wait_for_samples(server, "toolCall", 4_500)
    truth = true_quantile(draws(11, 0.8, 0.6, 12_000) + draws(12, 0.8, 0.6, 12_000), 0.999)

    monkeypatch.setenv("HOURGLASS_TUNING_INTERVAL_SECONDS", "2")
    operator = OperatorProcess(
        real_cluster,
        "--all-namespaces",
        "--standalone",
        "--prometheus-url",
        server.url,
        name="tuning",
    ).start(timeout=60)
    try:
        spec = {
            "default": True,
            "timeouts": {"llmCall": "60s", "toolCall": "1500ms", "connect": "5s"},
            "tuning": {
                "mode": "Apply",
                "window": "10m",
                "minSamples": 1000,
                "bounds": {"llmCall": {"min": "1s", "max": "30s"}},
            },
        }
        real_cluster.apply(_yaml(_profile(ns, "prod", spec)))
        real_cluster.wait_for(
            lambda: {"llmCall", "toolCall"} <= set(_recommendations(real_cluster, ns)),
            timeout=90,
            what="status.recommendations for llmCall and toolCall",
        )
        recs = _recommendations(real_cluster, ns)
        llm, tool = recs["llmCall"], recs["toolCall"]
        value = parse_duration(llm["value"])
        assert abs(value - HEADROOM * truth) / (HEADROOM * truth) <= 0.15, (llm, truth)
        assert llm["censored"] is False and llm["current"] == "1m"
        assert llm["effective"] == llm["value"], "Apply: the recommendation is what runs"
        assert tool["censored"] is True and parse_duration(tool["value"]) == 2.25

        # Apply changes what agents run, within bounds; the spec Git owns is untouched.
        def rendered() -> bool:
            timeouts = _config(real_cluster, ns)["profiles"]["prod"]["timeouts"]
            return bool(timeouts["llmCall"] == pytest.approx(value))

        real_cluster.wait_for(rendered, timeout=60, what="the applied llmCall in hourglass.yaml")
        timeouts = _config(real_cluster, ns)["profiles"]["prod"]["timeouts"]
        assert 1.0 <= timeouts["llmCall"] <= 30.0
        assert timeouts["toolCall"] == pytest.approx(2.25) and timeouts["connect"] == 5
        body = real_cluster.get("timeoutprofiles", ns, "prod") or {}
        assert body["spec"]["timeouts"] == {"llmCall": "60s", "toolCall": "1500ms", "connect": "5s"}
        tuned = _condition(body, "Tuned")
        assert (tuned["status"], tuned["reason"]) == ("True", "Applied")
        assert _condition(body, "Ready").get("status") == "True"
        wide = real_cluster.kubectl("get", "tp", "-n", ns, "-o", "wide")
        header, row = wide.splitlines()[:2]
        assert "TUNED" in header.split() and "TUNED" not in real_cluster.kubectl(
            "get", "tp", "-n", ns
        )
        assert row.split()[header.split().index("TUNED")] == "True"

        # `hourglass recommend -n NS` reads the same status as a table.
        table = subprocess.run(
            [
                str(Path(sys.executable).with_name("hourglass")),
                *("recommend", "-n", ns, "--kubeconfig", str(real_cluster.kubeconfig)),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert table[0].split()[:4] == ["PROFILE", "NAME", "CURRENT", "OBSERVED"]
        rows = {line.split()[1]: line.split() for line in table[1:]}
        assert rows["llmCall"][:3] == ["prod", "llmCall", "1m"]
        # each 2 s round recomputes `value`: it moves a little as the window slides
        assert parse_duration(rows["llmCall"][4]) == pytest.approx(value, rel=0.05)
        assert rows["toolCall"][-1] == "yes"

        # Prometheus going away: Tuned=False, the last recommendation and the applied value stay.
        server.stop()
        real_cluster.wait_for(
            lambda: (
                _condition(real_cluster.get("timeoutprofiles", ns, "prod"), "Tuned").get("reason")
                == "PrometheusUnreachable"
            ),
            timeout=60,
            what="Tuned=False PrometheusUnreachable",
        )
        kept = _recommendations(real_cluster, ns)
        time.sleep(6)  # three more rounds, each failing
        after = real_cluster.get("timeoutprofiles", ns, "prod") or {}
        assert _condition(after, "Tuned")["status"] == "False"
        assert after["status"]["recommendations"] == kept, "the last recommendation stays"
        assert parse_duration(kept["llmCall"]["value"]) == pytest.approx(value, rel=0.05)
        assert kept["llmCall"]["effective"] == llm["effective"]
        assert _config(real_cluster, ns)["profiles"]["prod"]["timeouts"]["llmCall"] == (
            pytest.approx(value)
        )
        assert _condition(after, "Ready").get("status") == "True", "never fails the reconcile"
    finally:
        operator.stop()
