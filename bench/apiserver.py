"""Operator benchmarks on the real control plane (tests/controlplane): kube-apiserver,
etcd and kube-controller-manager on loopback, the operator under its ServiceAccount.

- ``reconcile_apiserver_p99_ms``: a TimeoutProfile patch until the updated ConfigMap is
  visible through the API, p99 over 100 patches (20 with ``--quick``).
- ``cold_start_apiserver_500_profiles_s``: launching the operator until 500 profiles in
  50 namespaces are rendered and carry their hash in status (``--quick``: 100 in 10;
  ``cold_start_apiserver_profiles`` says which scale was measured).
- ``cr_to_agent_p99_ms``: a TimeoutProfile patch until ``on_change`` has fired in three
  agent_lib processes run as Pods (tokens bound to Pending Pod objects) that get the
  ConfigMap through the API watch (no mounted folder at all), p99 over 50 patches
  (20 with ``--quick``); the slowest of the three agents counts for each patch.

- ``operator_rss_ratio_10k_foreign_configmaps``: the operator's resident memory, settled
  after start, with 10,000 ConfigMaps that are not its own in the cluster, over the same
  with none (a fresh operator process each; goal <= 1.2). The operator's watches are
  filtered by the API server (field and label selectors) and lists come in pages, so
  foreign objects never reach it.

Same method as ``bench/operator.py`` (the emulator): only the API server differs. The
control plane, the operator and this process share the machine's two cores.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from agent_lib.config.bundle import CONFIGMAP_NAME
from bench.operator import PROFILES_PER_NAMESPACE, cold_start, latencies, p99
from tests.controlplane._build import BuildError, cached_bin_dir
from tests.controlplane._run import ControlPlane
from tests.fixtures.agent_pods import AgentPod, agent_rbac
from tests.fixtures.controlplane import RealCluster, install
from tests.fixtures.operator_process import OperatorProcess

AGENTS = 3


def _request_seen(pod: AgentPod, seconds: float) -> float | None:
    """When (time.time() in the agent) ``on_change`` first showed ``request == seconds``."""
    for change in pod.changes():
        if change["event"] == "change" and change["timeouts"].get("request") == seconds:
            return float(change["t"])
    return None


def cr_to_agent(cluster: Any, patches: int) -> list[float]:
    """Milliseconds from each TimeoutProfile patch to ``on_change`` in the slowest of three
    agents on the API path."""
    ns = cluster.namespace("bench-cr-to-agent")
    cluster.apply(agent_rbac(ns))
    profile = {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "prod", "namespace": ns},
        "spec": {"default": True, "timeouts": {"request": "10s"}},
    }
    cluster.request("POST", cluster.path("timeoutprofiles", ns), profile)
    operator = OperatorProcess(cluster, name="cr-to-agent", verbose=False)
    pods = [AgentPod(cluster, ns, f"agent-{i}") for i in range(AGENTS)]
    try:
        operator.start(timeout=60)
        for pod in pods:
            pod.start()
        cluster.wait_for(
            lambda: all(p.last()["timeouts"].get("request") == 10 for p in pods),
            timeout=60,
            what="the agents on the first render",
        )
        measured = []
        for i in range(patches):
            seconds = 11 + i
            started = time.time()
            cluster.patch(
                "timeoutprofiles", ns, "prod", {"spec": {"timeouts": {"request": f"{seconds}s"}}}
            )

            def arrived(want: float = seconds) -> list[float] | None:
                seen = [_request_seen(p, want) for p in pods]
                return [t for t in seen if t is not None] if None not in seen else None

            seen = cluster.wait_for(
                arrived, timeout=30, what=f"patch {i} in 3 agents", interval=0.005
            )
            measured.append((max(seen) - started) * 1000)
        return measured
    finally:
        for pod in pods:
            pod.stop()
        operator.stop()


def run(quick: bool) -> dict[str, float]:
    bin_dir = cached_bin_dir()
    if bin_dir is None:
        raise BuildError("build the control plane first: python -m tests.controlplane --build-only")
    patches = 20 if quick else 100
    namespaces = 10 if quick else 50
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-cp-") as tmp:
        plane = ControlPlane(bin_dir, Path(tmp)).start()
        try:
            workdir = Path(tmp) / "work"
            workdir.mkdir()
            cluster = RealCluster(plane, workdir)
            install(cluster)
            measured = latencies(cluster, patches)
            to_agent = cr_to_agent(cluster, 20 if quick else 50)
            cold = cold_start(cluster, namespaces)
            rss_none = settled_rss(cluster)
            create_foreign_configmaps(cluster, FOREIGN_CONFIGMAPS)
            rss_foreign = settled_rss(cluster)
        finally:
            plane.stop()
    return {
        "reconcile_apiserver_p99_ms": p99(measured),
        "reconcile_apiserver_p50_ms": statistics.median(measured),
        "cold_start_apiserver_500_profiles_s": cold,
        "cold_start_apiserver_profiles": float(namespaces * PROFILES_PER_NAMESPACE),
        "cr_to_agent_p99_ms": p99(to_agent),
        "cr_to_agent_p50_ms": statistics.median(to_agent),
        "operator_rss_ratio_10k_foreign_configmaps": rss_foreign / rss_none,
        "operator_rss_no_foreign_configmaps_mib": rss_none / 2**20,
        "operator_rss_10k_foreign_configmaps_mib": rss_foreign / 2**20,
    }


FOREIGN_CONFIGMAPS = 10_000
FOREIGN_NAMESPACES = 10
FOREIGN_DATA = "x" * 2048
"""2 KiB each (20 MiB in all): an ordinary small application config."""
SETTLE_S = 5.0


def create_foreign_configmaps(cluster: RealCluster, count: int) -> None:
    """``count`` ConfigMaps, none of them the operator's, over a few namespaces (8 writers)."""
    namespaces = [cluster.namespace() for _ in range(FOREIGN_NAMESPACES)]

    def create(i: int) -> None:
        ns = namespaces[i % len(namespaces)]
        body = {"metadata": {"name": f"app-config-{i}"}, "data": {"app.yaml": FOREIGN_DATA}}
        cluster.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def settled_rss(cluster: RealCluster) -> float:
    """A fresh operator's RSS (bytes) once it has listed everything and rendered a profile."""
    ns = cluster.namespace()
    operator = OperatorProcess(cluster, name="rss", verbose=False).start(timeout=120)
    try:
        cluster.apply(
            yaml.safe_dump(
                {
                    "apiVersion": "hourglass.dev/v1alpha1",
                    "kind": "TimeoutProfile",
                    "metadata": {"name": "base", "namespace": ns},
                    "spec": {"default": True},
                }
            )
        )
        cluster.wait_for(
            lambda: cluster.get("configmaps", ns, CONFIGMAP_NAME), timeout=120, what="render"
        )
        time.sleep(SETTLE_S)
        assert operator._process is not None
        return float(psutil.Process(operator._process.pid).memory_info().rss)
    finally:
        operator.stop()
