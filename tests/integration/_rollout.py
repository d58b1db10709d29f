"""Helpers shared by the rollout modules on the real control plane: agent pods played by
the test (Pending Pod objects whose annotations are set as agent_lib sets them), a
namespace with a profile, a policy and three such pods, and `hourglass rollout status`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hourglass_operator.rollout import (
    APPLIED_HASH,
    APPLIED_PROFILE,
    CONFIG_ERROR,
    CONFIG_LABEL,
    REJECTED_HASH,
)

from agent_lib.config.bundle import CONFIGMAP_NAME, HASH_ANNOTATION
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _condition, _configmap, _policy, _profile, _yaml

PODS = ("agent-0", "agent-1", "agent-2")


def _agent_pod(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {CONFIG_LABEL: CONFIGMAP_NAME}},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "agent", "image": "registry.test/agent:1"}],
        },
    }


def _report(
    cluster: Cluster,
    ns: str,
    pod: str,
    digest: str,
    error: str | None = None,
    rejected: str | None = None,
) -> None:
    """What agent_lib writes on its own Pod after a reload, or after it refused hash
    ``rejected`` (an agent older than issue 24 writes the error without the hash)."""
    notes = {
        APPLIED_HASH: digest,
        APPLIED_PROFILE: "default",
        CONFIG_ERROR: error,
        REJECTED_HASH: rejected if error else None,
    }
    cluster.patch("pods", ns, pod, {"metadata": {"annotations": notes}})


def _hash(cluster: Cluster, ns: str) -> str | None:
    cm = _configmap(cluster, ns)
    return None if cm is None else str(cm["metadata"]["annotations"][HASH_ANNOTATION])


def _settled(cluster: Cluster, ns: str) -> str | None:
    """The ConfigMap's hash once both resources are rendered into it (not an earlier one)."""
    digest = _hash(cluster, ns)
    hashes = {
        (cluster.get(plural, ns, name) or {}).get("status", {}).get("configHash")
        for plural, name in (("timeoutprofiles", "default"), ("sessionpolicies", "sessions"))
    }
    return digest if hashes == {digest} else None


def rollout_status_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`hourglass rollout status ARGS`, as a user runs it (the console script)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("hourglass")), "rollout", "status", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )


def _rollout_status(
    cluster: Cluster, ns: str, timeout: str = "30s"
) -> subprocess.CompletedProcess[str]:
    return rollout_status_cli("-n", ns, "--timeout", timeout, env=cluster.env())


def _environment(cluster: Cluster, operator: OperatorProcess) -> tuple[str, str]:
    """A namespace with a default profile, a policy and three agent pods; its first hash."""
    ns = cluster.namespace()
    cluster.wait_for(lambda: cluster.get("serviceaccounts", ns, "default"), what="default SA")
    cluster.apply(
        _yaml(
            _profile(ns, "default", {"default": True, "timeouts": {"request": "30s"}}),
            _policy(ns, "sessions", {"ttl": "15m"}),
        )
    )
    for pod in PODS:
        cluster.request("POST", cluster.path("pods", ns), _agent_pod(ns, pod))
    first = cluster.wait_for(lambda: _settled(cluster, ns), what="both resources rendered")
    for pod in PODS:
        _report(cluster, ns, pod, first)
    try:
        cluster.wait_for(
            lambda: (
                _condition(cluster.get("timeoutprofiles", ns, "default"), "Applied").get("reason")
                == "Applied"
            ),
            what="Applied=True for the first hash",
        )
    except BaseException:
        profile = cluster.get("timeoutprofiles", ns, "default") or {}
        pytest.fail(f"status: {profile.get('status')}\n{operator.log_tail(60)}")
    return ns, first


AGENT_POLICY = "hourglass-agent-pod-annotations"


def admit_rejected_hash(cluster: Cluster) -> None:
    """Let the agents' admission policy, as installed, admit ``hourglass.dev/rejected-hash``
    beside ``config-error`` (issue 24). The shipped policy is being extended to it; until
    then a real agent reports its error without the hash and counts as pending. A policy
    that already admits it is left as it is."""
    policy = json.loads(
        cluster.kubectl("get", "validatingadmissionpolicy", AGENT_POLICY, "-o", "json")
    )
    text = json.dumps(policy["spec"])
    if REJECTED_HASH in text:
        return
    error = "k == 'hourglass.dev/config-error'"
    text = text.replace(error, f"({error} || k == '{REJECTED_HASH}')")
    text = text.replace(
        "k != 'hourglass.dev/config-error'",
        f"k != 'hourglass.dev/config-error' && k != '{REJECTED_HASH}'",
    )
    policy["spec"] = json.loads(text)
    cluster.kubectl("replace", "-f", "-", stdin=json.dumps(policy))
    time.sleep(2)  # the API server's policy informer picks it up
