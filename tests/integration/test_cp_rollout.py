"""The rollout on the real control plane: agent pods report, the operator aggregates,
`hourglass rollout status` and `kubectl wait` follow it.

The agents' own reporting (agent_lib keeping the annotations on its Pod) is proven
elsewhere; here the test plays the agents: it creates Pod objects with the agent
label (no kubelet: they stay Pending) and patches their `hourglass.dev/applied-*` and
`config-error` annotations as admin, exactly as an agent would on its own Pod.
The operator runs as its own ServiceAccount, so the shipped RBAC is enforced.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hourglass_operator.rollout import SELECTOR

from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.k8s_emulator import OperatorProcess, check_api_calls
from tests.integration._resources import _condition
from tests.integration._rollout import PODS, _environment, _hash, _report, _rollout_status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def since(real_cluster: Cluster) -> int:
    """Where this module starts in the audit log (other modules may restart the apiserver)."""
    return real_cluster.audit_mark()


@pytest.fixture(scope="module")
def operator(real_cluster: Cluster, since: int) -> Iterator[OperatorProcess]:
    process = OperatorProcess(real_cluster, name="rollout").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def test_patch_rolls_out_to_three_pods(real_cluster: Cluster, operator: OperatorProcess) -> None:
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "tp",
        "default",
        "--type=merge",
        "-p",
        '{"spec":{"timeouts":{"request":"45s"}}}',
    )
    second = cluster.wait_for(lambda: (h := _hash(cluster, ns)) != first and h, what="a new hash")

    def applied(name: str = "default", plural: str = "timeoutprofiles") -> dict[str, Any]:
        return _condition(cluster.get(plural, ns, name), "Applied")

    cluster.wait_for(
        lambda: applied().get("reason") == "Progressing", what="Applied=False Progressing"
    )
    profile = cluster.get("timeoutprofiles", ns, "default")
    assert profile is not None
    assert profile["status"]["rollout"] == {
        "hash": second,
        "updated": 0,
        "total": 3,
        "rejected": 0,
        "applied": "0/3",
    }
    assert _condition(profile, "Reconciling")["status"] == "True"
    assert applied()["status"] == "False" and "agent-0" in applied()["message"]

    # `hourglass rollout status` follows the rollout while the agents report one by one.
    follower = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("hourglass")),
            "rollout",
            "status",
            "-n",
            ns,
            "--timeout",
            "60s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.env(),
    )
    try:
        for i, pod in enumerate(PODS, start=1):
            _report(cluster, ns, pod, second)
            cluster.wait_for(
                lambda i=i: (
                    (cluster.get("timeoutprofiles", ns, "default") or {})
                    .get("status", {})
                    .get("rollout", {})
                    .get("updated")
                    == i
                ),
                what=f"{i}/3 updated",
            )
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, out + err
    for pod in PODS:
        assert f"pod {pod} runs hash {second}" in out
    assert f"rollout of hash {second} complete: 3 of 3 pods updated" in out

    for name, plural in (("default", "timeoutprofiles"), ("sessions", "sessionpolicies")):
        cluster.wait_for(
            lambda n=name, p=plural: applied(n, p).get("status") == "True", what=f"{name} Applied"
        )
        body = cluster.get(plural, ns, name)
        assert body is not None
        assert body["status"]["rollout"]["applied"] == "3/3"
        assert not _condition(body, "Reconciling") and not _condition(body, "Stalled")
        assert applied(name, plural)["observedGeneration"] == body["metadata"]["generation"]

    # The printer column, and kubectl wait on both conditions (real kubectl).
    table = cluster.kubectl("-n", ns, "get", "tp,sp")
    header = table.splitlines()[0].split()
    assert header[:3] == ["NAME", "READY", "APPLIED"]
    assert any(
        line.split()[:3] == ["timeoutprofile.hourglass.dev/default", "True", "3/3"]
        for line in table.splitlines()
    )
    for condition in ("Ready", "Applied"):
        for kind in ("tp/default", "sp/sessions"):
            out = cluster.kubectl(
                "-n", ns, "wait", f"--for=condition={condition}", "--timeout=20s", kind
            )
            assert "condition met" in out
    cluster.wait_for(
        lambda: any(
            e["type"] == "Normal" and e["reason"] == "RolloutComplete" and second in e["message"]
            for e in cluster.events(ns, "default")
        ),
        what="a RolloutComplete Event",
    )
    assert f'hourglass_rollout_pods{{namespace="{ns}",state="updated"}} 3.0' in operator.metrics()


def test_a_rejecting_pod_fails_the_rollout(
    real_cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "tp",
        "default",
        "--type=merge",
        "-p",
        '{"spec":{"timeouts":{"fooBar":"5s"}}}',
    )
    second = cluster.wait_for(lambda: (h := _hash(cluster, ns)) != first and h, what="a new hash")
    _report(cluster, ns, "agent-0", second)
    _report(cluster, ns, "agent-1", second)
    reason = "timeouts.fooBar: unknown timeout name"
    _report(cluster, ns, "agent-2", first, error=reason, rejected=second)

    def applied() -> dict[str, Any]:
        return _condition(cluster.get("timeoutprofiles", ns, "default"), "Applied")

    cluster.wait_for(lambda: applied().get("reason") == "Rejected", what="Applied=False Rejected")
    condition = applied()
    assert condition["status"] == "False"
    assert "agent-2" in condition["message"] and reason in condition["message"]
    profile = cluster.get("timeoutprofiles", ns, "default")
    assert profile is not None
    assert profile["status"]["rollout"] == {
        "hash": second,
        "updated": 2,
        "total": 3,
        "rejected": 1,
        "applied": "2/3",
    }
    assert _condition(profile, "Stalled")["reason"] == "Rejected"
    assert _condition(profile, "Ready")["status"] == "True"

    result = _rollout_status(cluster, ns)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: pod agent-2 rejected the config: {reason}" in result.stderr
    cluster.wait_for(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "ConfigRejected" and "agent-2" in e["message"]
            for e in cluster.events(ns, "default")
        ),
        what="a ConfigRejected Warning",
    )
    out = cluster.kubectl(
        "-n", ns, "wait", "--for=condition=Applied", "--timeout=2s", "tp/default", check=False
    )
    assert "condition met" not in out

    # The agent gets a build that knows the name: it applies the hash, the rollout completes.
    _report(cluster, ns, "agent-2", second)
    cluster.wait_for(lambda: applied().get("status") == "True", what="Applied=True once fixed")
    assert not _condition(cluster.get("timeoutprofiles", ns, "default"), "Stalled")
    assert _rollout_status(cluster, ns).returncode == 0


def test_rollout_status_times_out_with_the_waiting_pods(
    real_cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster = real_cluster
    ns, first = _environment(cluster, operator)
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "tp",
        "default",
        "--type=merge",
        "-p",
        '{"spec":{"timeouts":{"request":"50s"}}}',
    )
    cluster.wait_for(lambda: _hash(cluster, ns) != first, what="a new hash")
    result = _rollout_status(cluster, ns, timeout="2s")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "timed out after 2s" in result.stderr
    assert f"pod agent-0 still runs hash {first}" in result.stdout


def test_pods_are_selected_on_the_server_and_rbac_suffices(
    real_cluster: Cluster, operator: OperatorProcess, since: int
) -> None:
    """Runs last: the pod watch carries the labelSelector; no call was refused; every
    call is in api_calls.json (HOURGLASS_RECORD_API_CALLS=1 records them)."""
    watches = [
        e["requestURI"]
        for e in real_cluster.audited(since=since)
        if (e.get("objectRef") or {}).get("resource") == "pods"
        and e["verb"] in ("list", "watch")
        and "job-name" not in e["requestURI"]
    ]
    assert watches
    for uri in watches:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        assert query.get("labelSelector") == [SELECTOR], uri
    assert real_cluster.forbidden(since=since) == []
    check_api_calls(real_cluster)
