"""Operator benchmarks against kmock's emulator on loopback, the real `hourglass operator`.

- ``reconcile_p99_ms``: a TimeoutProfile patch (JSON merge patch through the `kubernetes`
  client) until the updated ConfigMap is visible in the API server's store, p99 over 100
  patches (20 with ``--quick``).
- ``cold_start_500_profiles_s``: from launching the operator process to every ConfigMap
  rendered and every profile's status carrying its hash, with 500 TimeoutProfiles in 50
  namespaces already present (``--quick``: 100 in 10; ``cold_start_profiles`` always
  reports the scale that was measured).

The emulator runs in this process (its own thread and event loop); the operator is a
separate process, as in a cluster. Both share the machine's cores.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from agent_lib.config.bundle import CONFIG_KEY, CONFIGMAP_NAME, HASH_ANNOTATION
from tests.fixtures.k8s_emulator import Cluster
from tests.fixtures.operator_process import OperatorProcess

GROUP, VERSION, PLURAL = "hourglass.dev", "v1alpha1", "timeoutprofiles"
PROFILES_PER_NAMESPACE = 10


def _profile(ns: str, index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"timeouts": {"request": f"{10 + index}s", "llmCall": "1m"}}
    if index == 0:
        spec["default"] = True
    else:
        spec["extends"] = f"p{(index - 1) // 2}"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TimeoutProfile",
        "metadata": {"name": f"p{index}", "namespace": ns},
        "spec": spec,
    }


def _create(custom: Any, ns: str, count: int) -> None:
    for index in range(count):
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _profile(ns, index))


def _namespace_done(cluster: Cluster, ns: str, count: int) -> bool:
    cm = cluster.get("configmaps", ns, CONFIGMAP_NAME)
    if cm is None:
        return False
    if len(yaml.safe_load(cm["data"][CONFIG_KEY])["profiles"]) != count:
        return False
    digest = cm["metadata"]["annotations"][HASH_ANNOTATION]
    return all(
        (cluster.get(PLURAL, ns, f"p{i}") or {}).get("status", {}).get("configHash") == digest
        for i in range(count)
    )


def _cold_start(workdir: Path, namespaces: int) -> float:
    cluster = Cluster(workdir).start()
    try:
        return cold_start(cluster, namespaces)
    finally:
        cluster.stop()


def cold_start(cluster: Any, namespaces: int) -> float:
    """Seconds from launching the operator to ``namespaces`` x 10 profiles reconciled."""
    custom = kubernetes.client.CustomObjectsApi(cluster.client())
    names = [f"bench-{n:03d}" for n in range(namespaces)]
    for ns in names:
        cluster.namespace(ns)
        _create(custom, ns, PROFILES_PER_NAMESPACE)
    operator = OperatorProcess(cluster, name="cold", verbose=False)
    started = time.perf_counter()
    operator.start(timeout=60)
    pending = list(names)

    def done() -> bool:
        # Stop at the first namespace not done: polling must not steal the emulator's CPU.
        while pending and _namespace_done(cluster, pending[0], PROFILES_PER_NAMESPACE):
            pending.pop(0)
        return not pending

    try:
        cluster.wait_for(done, timeout=600, what="every namespace reconciled", interval=0.1)
        return time.perf_counter() - started
    finally:
        operator.stop()


def _latencies(workdir: Path, patches: int) -> list[float]:
    cluster = Cluster(workdir).start()
    try:
        return latencies(cluster, patches)
    finally:
        cluster.stop()


def latencies(cluster: Any, patches: int) -> list[float]:
    """Milliseconds from each TimeoutProfile patch to the ConfigMap showing it."""
    operator = OperatorProcess(cluster, name="latency", verbose=False)
    try:
        operator.start(timeout=60)
        custom = kubernetes.client.CustomObjectsApi(cluster.client())
        ns = "bench-latency"
        cluster.namespace(ns)
        _create(custom, ns, 3)
        cluster.wait_for(lambda: _namespace_done(cluster, ns, 3), timeout=60, what="rendered")
        measured = []
        for i in range(patches):
            millis = 1000 + i
            started = time.perf_counter()
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                "p2",
                {"spec": {"timeouts": {"request": f"{millis}ms"}}},
                _content_type="application/merge-patch+json",
            )
            cluster.wait_for(
                lambda want=millis / 1000: abs(_request_of(cluster, ns, "p2") - want) < 1e-6,
                timeout=30,
                what=f"patch {i} in the ConfigMap",
                interval=0.01,
            )
            measured.append((time.perf_counter() - started) * 1000)
        return measured
    finally:
        operator.stop()


def _request_of(cluster: Cluster, ns: str, profile: str) -> float:
    cm = cluster.get("configmaps", ns, CONFIGMAP_NAME)
    if cm is None:
        return -1.0
    config = yaml.safe_load(cm["data"][CONFIG_KEY])
    return float(config["profiles"][profile]["timeouts"]["request"])


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def run(quick: bool) -> dict[str, float]:
    patches = 20 if quick else 100
    namespaces = 10 if quick else 50
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "latency").mkdir()
        (workdir / "cold").mkdir()
        measured = _latencies(workdir / "latency", patches)
        cold = _cold_start(workdir / "cold", namespaces)
    profiles = namespaces * PROFILES_PER_NAMESPACE
    result = {
        "reconcile_p99_ms": p99(measured),
        "reconcile_p50_ms": statistics.median(measured),
        "reconcile_patches": float(patches),
    }
    # With --quick the cold start runs at a smaller scale: `cold_start_profiles` says which.
    result["cold_start_500_profiles_s"] = cold
    result["cold_start_profiles"] = float(profiles)
    return result
