"""HA that cannot be skipped by accident (issue 15, item 7), on the real control plane.

`kubectl apply -k manifests/` (as the session fixture installs it) creates the peering
object; an operator told it runs several replicas refuses to start without it, and
starts when `--standalone` says so on purpose.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess

pytestmark = pytest.mark.timeout(120)
HOURGLASS = str(Path(sys.executable).with_name("hourglass"))


def test_the_base_kustomization_creates_the_peering_object(real_cluster: RealCluster) -> None:
    peering = real_cluster.get("clusterkopfpeerings", None, "hourglass")
    assert peering is not None


def test_two_replicas_without_peering_refuse_to_start(real_cluster: RealCluster) -> None:
    env = real_cluster.operator_env() | {"HOURGLASS_REPLICAS": "2", "HOURGLASS_METRICS_PORT": "0"}
    result = subprocess.run(
        [HOURGLASS, "operator", "--all-namespaces", "--peering", "absent-peering"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "HOURGLASS_REPLICAS" in result.stderr
    assert "absent-peering" in result.stderr


def test_two_replicas_with_the_shipped_peering_object_start(real_cluster: RealCluster) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_REPLICAS", "2")
        process = OperatorProcess(real_cluster, "--all-namespaces", name="ha-peered")
        try:
            process.start(timeout=60)
            assert process.alive()
        finally:
            process.stop()


def test_standalone_is_the_explicit_way_out(real_cluster: RealCluster) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_REPLICAS", "2")
        process = OperatorProcess(
            real_cluster, "--all-namespaces", "--standalone", name="ha-standalone"
        )
        try:
            process.start(timeout=60)
            assert process.alive()
        finally:
            process.stop()
