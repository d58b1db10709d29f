"""Operator benchmarks on the real control plane (tests/controlplane): kube-apiserver,
etcd and kube-controller-manager on loopback, the operator under its ServiceAccount.

- ``reconcile_apiserver_p99_ms``: a TimeoutProfile patch until the updated ConfigMap is
  visible through the API, p99 over 100 patches (20 with ``--quick``).
- ``cold_start_apiserver_500_profiles_s``: launching the operator until 500 profiles in
  50 namespaces are rendered and carry their hash in status (``--quick``: 100 in 10;
  ``cold_start_apiserver_profiles`` says which scale was measured).

Same method as ``bench/operator.py`` (the emulator): only the API server differs. The
control plane, the operator and this process share the machine's two cores.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.operator import PROFILES_PER_NAMESPACE, cold_start, latencies, p99
from tests.controlplane._build import BuildError, cached_bin_dir
from tests.controlplane._run import ControlPlane
from tests.fixtures.controlplane import RealCluster, install


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
        finally:
            plane.stop()
    return {
        "reconcile_apiserver_p99_ms": p99(measured),
        "reconcile_apiserver_p50_ms": statistics.median(measured),
        "cold_start_apiserver_500_profiles_s": cold,
        "cold_start_apiserver_profiles": float(namespaces * PROFILES_PER_NAMESPACE),
    }
