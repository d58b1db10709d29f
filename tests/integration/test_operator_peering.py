"""Two replicas with kopf peering: exactly one reconciles, and it takes over when one stops."""

from __future__ import annotations

import json

import pytest
import yaml

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.operator_process import OperatorProcess, check_api_calls

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def k8s_cluster(real_cluster: Cluster) -> Cluster:
    """The real control plane; the operator runs as its ServiceAccount (RBAC enforced)."""
    return real_cluster


PEERING = {
    "apiVersion": "kopf.dev/v1",
    "kind": "ClusterKopfPeering",
    "metadata": {"name": "hourglass"},
}


def _profile(ns: str, seconds: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "TimeoutProfile",
            "metadata": {"name": "base", "namespace": ns},
            "spec": {"default": True, "timeouts": {"request": f"{seconds}s"}},
        }
    )


def _writers(operators: list[OperatorProcess], ns: str) -> list[OperatorProcess]:
    marker = f"wrote {ns}/{CONFIGMAP_NAME}"
    return [
        op
        for op in operators
        if any(
            marker in json.loads(line).get("message", "")
            for line in op.log_lines()
            if line.startswith("{")
        )
    ]


def _rendered(cluster: Cluster, ns: str, seconds: int) -> bool:
    cm = cluster.get("configmaps", ns, CONFIGMAP_NAME)
    return cm is not None and f"request: {seconds}\n" in next(iter(cm["data"].values()))


def test_only_one_replica_reconciles(k8s_cluster: Cluster) -> None:
    k8s_cluster.apply(yaml.safe_dump(PEERING))
    args = ("--all-namespaces", "--peering", "hourglass")
    low = OperatorProcess(k8s_cluster, *args, "--priority", "10", name="low").start()
    high = OperatorProcess(k8s_cluster, *args, "--priority", "20", name="high").start()
    operators = [low, high]
    try:
        k8s_cluster.wait_for(
            lambda: (
                len(
                    (k8s_cluster.get("clusterkopfpeerings", None, "hourglass") or {}).get(
                        "status", {}
                    )
                )
                == 2
            ),
            what="both replicas in the peering object",
        )
        k8s_cluster.wait_for(
            lambda: any("Pausing operations" in line for line in low.log_lines()),
            what="the low-priority replica to pause",
        )
        k8s_cluster.apply(_profile("op-peering", 5))
        k8s_cluster.wait_for(lambda: _rendered(k8s_cluster, "op-peering", 5), what="rendered")
        writers = k8s_cluster.wait_for(lambda: _writers(operators, "op-peering"), what="a log")
        assert writers == [high]

        high.stop()
        k8s_cluster.apply(_profile("op-peering-2", 6))
        k8s_cluster.wait_for(
            lambda: _rendered(k8s_cluster, "op-peering-2", 6),
            timeout=90,
            what="the remaining replica to take over once the leader's lease ran out",
        )
        writers = k8s_cluster.wait_for(lambda: _writers(operators, "op-peering-2"), what="a log")
        assert writers == [low]
    finally:
        for op in operators:
            op.stop()
    check_api_calls(k8s_cluster)


def test_replicas_without_priorities_elect_one(k8s_cluster: Cluster) -> None:
    """The Deployment's replicas pass no --priority: each draws a random one."""
    k8s_cluster.apply(yaml.safe_dump({**PEERING, "metadata": {"name": "replicas"}}))
    args = ("--all-namespaces", "--peering", "replicas")
    operators = [OperatorProcess(k8s_cluster, *args, name=f"replica{i}").start() for i in (1, 2)]
    try:
        # Whichever joins second with the lower priority starts paused (and logs nothing).
        k8s_cluster.wait_for(
            lambda: (
                len(
                    (k8s_cluster.get("clusterkopfpeerings", None, "replicas") or {}).get(
                        "status", {}
                    )
                )
                == 2
            ),
            what="both replicas in the peering object",
        )
        k8s_cluster.apply(_profile("op-replicas", 7))
        k8s_cluster.wait_for(lambda: _rendered(k8s_cluster, "op-replicas", 7), what="rendered")
        writers = k8s_cluster.wait_for(lambda: _writers(operators, "op-replicas"), what="a log")
        assert len(writers) == 1
    finally:
        for op in operators:
            op.stop()
