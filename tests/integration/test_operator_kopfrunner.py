"""The handlers also run under kopf's own runner (`kopf run -m hourglass_operator.handlers`)."""

from __future__ import annotations

import pytest
import yaml
from kopf.testing import KopfRunner

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.fixtures.controlplane import RealCluster as Cluster

pytestmark = pytest.mark.timeout(90)


def test_kopf_runner_renders_a_profile(
    real_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real control plane, as the operator's ServiceAccount."""
    k8s_cluster = real_cluster
    monkeypatch.setenv("KUBECONFIG", real_cluster.operator_env()["KUBECONFIG"])
    monkeypatch.setenv("HOURGLASS_METRICS_PORT", "0")
    args = ["run", "--all-namespaces", "--standalone", "-m", "hourglass_operator.handlers"]
    with KopfRunner(args, timeout=30) as runner:
        k8s_cluster.apply(
            yaml.safe_dump(
                {
                    "apiVersion": "hourglass.dev/v1alpha1",
                    "kind": "TimeoutProfile",
                    "metadata": {"name": "base", "namespace": "op-runner"},
                    "spec": {"default": True, "timeouts": {"request": "8s"}},
                }
            )
        )
        cm = k8s_cluster.wait_for(
            lambda: k8s_cluster.get("configmaps", "op-runner", CONFIGMAP_NAME), what="rendered"
        )
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert "request: 8" in cm["data"]["hourglass.yaml"]
    profile = k8s_cluster.get("timeoutprofiles", "op-runner", "base")
    assert profile is not None
    # The same kopf settings as `hourglass operator`: progress in our annotations only.
    assert "kopf" not in profile.get("status", {})
    assert any(k.startswith("hourglass.dev/") for k in profile["metadata"]["annotations"])
