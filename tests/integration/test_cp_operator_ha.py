"""HA that cannot be skipped by accident (issue 15, item 7), on the real control plane.

`kubectl apply -k manifests/` (as the session fixture installs it) creates the peering
object; an operator told it runs several replicas refuses to start without it, and
starts when `--standalone` says so on purpose.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _configmap, _profile, _wait_timeout, _yaml

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


STANDBY_RESYNC_S = 3


def _replica(cluster: RealCluster, priority: int, name: str) -> OperatorProcess:
    return OperatorProcess(
        cluster,
        "--all-namespaces",
        "--peering",
        "hourglass",
        "--priority",
        str(priority),
        name=name,
    )


def test_a_standby_replica_writes_nothing_on_its_resync(real_cluster: RealCluster) -> None:
    """A replica that kopf's peering paused has stopped watching: its indices are frozen
    at the pause. Its resync loop must not reconcile from them; before the fix it wrote
    the stale config every round and the leader wrote it back (a flapping ConfigMap)."""
    ns = real_cluster.namespace()
    real_cluster.apply(
        _yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "10s"}}))
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_REPLICAS", "2")
        patch.setenv("HOURGLASS_RESYNC_SECONDS", str(STANDBY_RESYNC_S))
        standby = _replica(real_cluster, 2_000_001, "ha-standby")
        leader = _replica(real_cluster, 3_000_001, "ha-leader")
        try:
            standby.start(timeout=60)
            _wait_timeout(real_cluster, ns, "base", "request", 10)
            leader.start(timeout=60)
            real_cluster.wait_for(
                lambda: any("Pausing operations" in line for line in standby.log_lines()),
                timeout=60,
                what="the standby pausing in favour of the leader",
            )
            real_cluster.apply(
                _yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "20s"}}))
            )
            _wait_timeout(real_cluster, ns, "base", "request", 20)
            before = (_configmap(real_cluster, ns) or {})["metadata"]["resourceVersion"]
            time.sleep(3 * STANDBY_RESYNC_S + 1)  # three of the standby's resync rounds
            after = _configmap(real_cluster, ns) or {}
            assert after["metadata"]["resourceVersion"] == before, standby.log_tail()
            assert standby.alive() and leader.alive()
        finally:
            leader.stop()
            standby.stop()
