"""The rollout status tells the truth after fixes, refusals, evictions and outages
(issue 24), on the real control plane with the operator running as its ServiceAccount.

One test per repro of the issue, each failing on the code before it:
1. a fix is not blamed for the error it fixed;
2. a refused ConfigMap write leaves configHash and rollout.hash on the written hash
   (across an operator restart too), and `hourglass rollout status` exits 1 saying so;
3. a refused (422) or failing (500) status write is made again once the server takes it;
4. evicted, finished and terminating pods stop counting, for the operator and the CLI;
5. an API server that cannot be reached or read: exit 4, one line naming it.

The test plays the agents, as tests/integration/test_cp_rollout.py does: Pending Pod
objects whose annotations it sets as admin, exactly as agent_lib sets them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.agent_pods import TcpProxy
from tests.fixtures.controlplane import OPERATOR_NS, OPERATOR_SA
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._refusals import Refusal
from tests.integration._resources import _condition
from tests.integration._rollout import (
    PODS,
    _environment,
    _hash,
    _report,
    _rollout_status,
    rollout_status_cli,
)

pytestmark = pytest.mark.timeout(180)
BAD_NAME = "timeouts.fooBar: unknown timeout name"


@pytest.fixture(scope="module")
def operator(real_cluster: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess(real_cluster, name="rollout-truth").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def _patch_profile(cluster: Cluster, ns: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("-n", ns, "patch", "tp", "default", "--type=merge", "-p", json.dumps(spec))


def _profile(cluster: Cluster, ns: str) -> dict[str, Any]:
    return cluster.get("timeoutprofiles", ns, "default") or {}


def _rollout(cluster: Cluster, ns: str) -> dict[str, Any]:
    return dict(_profile(cluster, ns).get("status", {}).get("rollout") or {})


def _applied(cluster: Cluster, ns: str) -> dict[str, Any]:
    return _condition(_profile(cluster, ns), "Applied")


def _new_hash(cluster: Cluster, ns: str, old: str) -> str:
    return str(cluster.wait_for(lambda: (h := _hash(cluster, ns)) != old and h, what="a new hash"))


def test_a_fix_is_not_blamed_for_the_error_it_fixed(
    real_cluster: Cluster, operator: OperatorProcess
) -> None:
    """Repro 1: agent-2 refused H2 and still runs H1; the fix H3 leaves it pending."""
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    _patch_profile(cluster, ns, {"spec": {"timeouts": {"fooBar": "5s"}}})
    second = _new_hash(cluster, ns, first)
    _report(cluster, ns, "agent-0", second)
    _report(cluster, ns, "agent-1", second)
    _report(cluster, ns, "agent-2", first, error=BAD_NAME, rejected=second)
    cluster.wait_for(
        lambda: _applied(cluster, ns).get("reason") == "Rejected", what="H2 rejected by agent-2"
    )

    _patch_profile(cluster, ns, {"spec": {"timeouts": {"fooBar": None, "request": "46s"}}})
    third = _new_hash(cluster, ns, second)
    cluster.wait_for(lambda: _rollout(cluster, ns).get("hash") == third, what="rollout of H3")
    applied = _applied(cluster, ns)
    assert applied["status"] == "False" and applied["reason"] == "Progressing", applied
    profile = _profile(cluster, ns)
    assert not _condition(profile, "Stalled"), profile["status"]
    assert _condition(profile, "Reconciling")["status"] == "True"
    assert _rollout(cluster, ns)["rejected"] == 0

    # Pending, its last error shown as history about the hash it concerned.
    result = _rollout_status(cluster, ns, timeout="3s")
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"pod agent-2 still runs hash {first} (it rejected hash {second}" in result.stdout
    assert not [
        e
        for e in cluster.events(ns, "default")
        if e["reason"] == "ConfigRejected" and third in e["message"]
    ]

    for pod in PODS:
        _report(cluster, ns, pod, third)
    cluster.wait_for(lambda: _applied(cluster, ns).get("status") == "True", what="H3 applied")
    assert _rollout_status(cluster, ns).returncode == 0


def test_a_refused_configmap_write_keeps_the_written_hash(
    real_cluster: Cluster, operator: OperatorProcess
) -> None:
    """Repro 2: an admission policy refuses the ConfigMap update; the profile is patched."""
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    refusal = Refusal(cluster, ns, "", "configmaps", "no config changes today (test)").on()
    try:
        _patch_profile(cluster, ns, {"spec": {"timeouts": {"request": "47s"}}})

        def refused() -> dict[str, Any]:
            ready = _condition(_profile(cluster, ns), "Ready")
            return ready if ready.get("reason") == "WriteRefused" else {}

        ready = cluster.wait_for(refused, timeout=60, what="Ready=False WriteRefused")
        assert _hash(cluster, ns) == first
        status = _profile(cluster, ns)["status"]
        assert status["configHash"] == first, status
        assert status["rollout"]["hash"] == first and status["rollout"]["applied"] == "3/3"
        assert "no config changes today (test)" in ready["message"]
        assert f"it keeps hash {first}" in ready["message"]

        result = _rollout_status(cluster, ns, timeout="20s")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "WriteRefused" in result.stderr and "no config changes today" in result.stderr

        # A restarted operator: the same hash, the pods that run it still count as updated.
        operator.stop()
        operator.start(timeout=60)
        mark = cluster.audit_mark()
        cluster.wait_for(
            lambda: refusal.refused_calls(mark, "configmaps"), timeout=60, what="refused again"
        )
        status = _profile(cluster, ns)["status"]
        assert status["configHash"] == first, status
        assert status["rollout"]["hash"] == first and status["rollout"]["applied"] == "3/3"
    finally:
        refusal.off()


class _BrokenWebhook:
    """A validating webhook that cannot be called, on the operator's status writes in one
    namespace: the API server answers them 500 (failurePolicy Fail), as in an outage."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.name = f"broken-{uuid.uuid4().hex[:8]}"
        user = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
        self.manifest = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.name},
            "webhooks": [
                {
                    "name": "broken.test.hourglass.dev",
                    "clientConfig": {"url": "https://127.0.0.1:1/validate"},
                    "rules": [
                        {
                            "apiGroups": ["hourglass.dev"],
                            "apiVersions": ["*"],
                            "operations": ["UPDATE"],
                            "resources": ["timeoutprofiles/status"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "matchConditions": [
                        {"name": "operator", "expression": f"request.userInfo.username == '{user}'"}
                    ],
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 2,
                }
            ],
        }

    def on(self) -> _BrokenWebhook:
        self.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(self.manifest))
        time.sleep(2)  # the API server's webhook informer picks it up
        return self

    def off(self) -> None:
        self.cluster.kubectl(
            "delete", "validatingwebhookconfiguration", self.name, "--ignore-not-found"
        )


@pytest.mark.parametrize("failure", ["refused", "server error"])
def test_a_failed_status_write_is_made_again_once_it_can_land(
    real_cluster: Cluster, operator: OperatorProcess, failure: str
) -> None:
    """Repro 3: the status write fails for a moment while the pods report."""
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    _patch_profile(cluster, ns, {"spec": {"timeouts": {"request": "48s"}}})
    second = _new_hash(cluster, ns, first)
    cluster.wait_for(
        lambda: _rollout(cluster, ns).get("hash") == second, what="the rollout of the new hash"
    )
    fault: Refusal | _BrokenWebhook
    if failure == "refused":
        fault = Refusal(cluster, ns, "hourglass.dev", "timeoutprofiles/status", "frozen (test)")
    else:
        fault = _BrokenWebhook(cluster, ns)
    mark = cluster.audit_mark()
    fault.on()
    try:
        code = 422 if failure == "refused" else 500
        for pod in PODS:
            _report(cluster, ns, pod, second)

        def failed_writes() -> list[dict[str, Any]]:
            return [
                e
                for e in cluster.audited(since=mark)
                if (e.get("objectRef") or {}).get("subresource") == "status"
                and (e.get("objectRef") or {}).get("namespace") == ns
                and e.get("responseStatus", {}).get("code") == code
            ]

        cluster.wait_for(failed_writes, timeout=30, what=f"a status write answered {code}")
        assert _rollout(cluster, ns).get("updated") == 0
    finally:
        fault.off()
    cluster.wait_for(
        lambda: _applied(cluster, ns).get("status") == "True",
        timeout=45,
        what="Applied=True once the status write lands",
    )
    assert _rollout(cluster, ns)["applied"] == "3/3"


def test_evicted_finished_and_terminating_pods_stop_counting(
    real_cluster: Cluster, operator: OperatorProcess
) -> None:
    """Repro 4: the operator and the CLI agree, and kubectl wait is met."""
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    cluster.patch("pods", ns, "agent-1", {"metadata": {"finalizers": ["test.hourglass.dev/hold"]}})
    try:
        _patch_profile(cluster, ns, {"spec": {"timeouts": {"request": "49s"}}})
        second = _new_hash(cluster, ns, first)
        _report(cluster, ns, "agent-0", second)
        evicted = {"phase": "Failed", "reason": "Evicted", "message": "low on memory (test)"}
        cluster.patch("pods", ns, "agent-2", {"status": evicted}, subresource="status")
        cluster.delete("pods", ns, "agent-1")  # held by the finalizer: terminating
        assert (cluster.get("pods", ns, "agent-1") or {})["metadata"].get("deletionTimestamp")

        cluster.wait_for(
            lambda: _applied(cluster, ns).get("status") == "True", what="Applied=True with 1/1"
        )
        assert _rollout(cluster, ns) == {
            "hash": second,
            "updated": 1,
            "total": 1,
            "rejected": 0,
            "applied": "1/1",
        }
        result = _rollout_status(cluster, ns)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"rollout of hash {second} complete: 1 of 1 pods updated" in result.stdout
        out = cluster.kubectl(
            "-n", ns, "wait", "--for=condition=Applied", "--timeout=20s", "tp/default"
        )
        assert "condition met" in out
    finally:
        cluster.patch("pods", ns, "agent-1", {"metadata": {"finalizers": None}})


def _cli(kubeconfig: Path, ns: str = "default") -> subprocess.CompletedProcess[str]:
    return rollout_status_cli("-n", ns, "--timeout", "20s", "--kubeconfig", str(kubeconfig))


def _kubeconfig(cluster: Cluster, server: str | None = None, token: str | None = None) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    if token is not None:
        config["users"][0]["user"] = {"token": token}
    path = cluster.workdir / f"cli-{uuid.uuid4().hex[:6]}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_api_server_that_cannot_be_reached_or_read_exits_4(real_cluster: Cluster) -> None:
    """Repro 5: exit 4 (not 1, which means rejected), one line naming the server."""
    proxy = TcpProxy(real_cluster.plane.api_port).start()
    server = f"https://127.0.0.1:{proxy.port}"
    kubeconfig = _kubeconfig(real_cluster, server=server)
    through = _cli(kubeconfig)
    assert through.returncode == 1 and "no TimeoutProfile" in through.stderr, through.stderr
    proxy.cut()
    unreachable = _cli(kubeconfig)
    assert unreachable.returncode == 4, unreachable.stdout + unreachable.stderr
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in unreachable.stderr, unreachable.stderr
    assert lines[0].startswith(f"error: cannot reach or read the Kubernetes API at {server}: ")

    # Reachable, but not readable: a token the API server does not accept (401).
    unread = _cli(_kubeconfig(real_cluster, token="not-a-valid-token"))
    assert unread.returncode == 4, unread.stdout + unread.stderr
    lines = unread.stderr.strip().splitlines()
    assert len(lines) == 1 and "401" in lines[0] and real_cluster.url in lines[0], lines
