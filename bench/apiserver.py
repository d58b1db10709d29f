"""Operator benchmarks on the real control plane (tests/controlplane): kube-apiserver,
etcd and kube-controller-manager on loopback, the operator under its ServiceAccount.

- ``reconcile_apiserver_p99_ms``: a TimeoutProfile patch until the updated ConfigMap is
  visible through the API, p99 over 100 patches (20 with ``--quick``).
- ``cold_start_apiserver_500_profiles_s``: launching the operator until 500 profiles in
  50 namespaces are rendered and carry their hash in status (``--quick``: 100 in 10;
  ``cold_start_apiserver_profiles`` says which scale was measured).

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

import psutil
import yaml

from agent_lib.config.bundle import CONFIGMAP_NAME
from bench.operator import PROFILES_PER_NAMESPACE, cold_start, latencies, p99
from tests.controlplane._build import BuildError, cached_bin_dir
from tests.controlplane._run import ControlPlane
from tests.fixtures.controlplane import RealCluster, install
from tests.fixtures.operator_process import OperatorProcess


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
