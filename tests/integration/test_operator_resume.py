"""A restarted operator with nothing changed resumes without writing anything (real control
plane: every write would show in the audit log)."""

from __future__ import annotations

import time

import pytest
import yaml

from agent_lib.config.bundle import CONFIGMAP_NAME, HASH_ANNOTATION
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.operator_process import ApiCall, OperatorProcess, check_api_calls

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def k8s_cluster(real_cluster: Cluster) -> Cluster:
    """The real control plane; the operator runs as its ServiceAccount (RBAC enforced)."""
    return real_cluster


NS = "op-resume"
DOCS = [
    {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "base", "namespace": NS},
        "spec": {"default": True, "timeouts": {"request": "30s"}},
    },
    {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "child", "namespace": NS},
        "spec": {"extends": "base", "timeouts": {"llmCall": "1m"}},
    },
    {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "SessionPolicy",
        "metadata": {"name": "sessions", "namespace": NS},
        "spec": {"store": {"urlSecretRef": {"name": "redis", "key": "url"}}, "ttl": "15m"},
    },
]
PLURALS = {"TimeoutProfile": "timeoutprofiles", "SessionPolicy": "sessionpolicies"}


def _writes(calls: list[ApiCall]) -> list[ApiCall]:
    """Writes to the namespace's objects. Events are left out: kopf posts its WARNING
    object logs as Events (`kopf_settings.posting.level`), so a resume handler that fails
    once under load and is retried leaves one (seen once in CI); it changes none of the
    user's objects, which this checks."""
    return [
        c
        for c in calls
        if c.verb in ("create", "patch", "update", "delete") and c.resource != "events"
    ]


def _settled(cluster: Cluster) -> bool:
    cm = cluster.get("configmaps", NS, CONFIGMAP_NAME)
    if cm is None or cluster.get("cronjobs", NS, "hourglass-cleanup") is None:
        return False
    digest = cm["metadata"]["annotations"][HASH_ANNOTATION]
    for doc in DOCS:
        live = cluster.get(PLURALS[doc["kind"]], NS, doc["metadata"]["name"]) or {}
        if live.get("status", {}).get("configHash") != digest:
            return False
    return True


def _quiet(cluster: Cluster, seconds: float = 1.5) -> None:
    """Until the audit log has grown by nothing for ``seconds``: the first operator's
    Events are posted in the background, after the writes they report."""
    last, since = cluster.call_mark(), time.monotonic()
    while time.monotonic() - since < seconds:
        time.sleep(0.1)
        if (now := cluster.call_mark()) != last:
            last, since = now, time.monotonic()


def test_resume_with_nothing_changed_writes_nothing(k8s_cluster: Cluster) -> None:
    first = OperatorProcess(k8s_cluster, name="first").start()
    try:
        k8s_cluster.apply(yaml.safe_dump_all(DOCS, sort_keys=False))
        k8s_cluster.wait_for(lambda: _settled(k8s_cluster), what="the namespace rendered")
        # Every resource's Event (kopf posts them in the background): one still queued
        # when the first operator stops would otherwise show up as the second's write.
        k8s_cluster.wait_for(
            lambda: all(k8s_cluster.events(NS, d["metadata"]["name"]) for d in DOCS),
            what="events posted for every resource",
        )
        _quiet(k8s_cluster)
    finally:
        first.stop()
    before = k8s_cluster.get("configmaps", NS, CONFIGMAP_NAME)
    assert before is not None
    mark = k8s_cluster.call_mark()

    second = OperatorProcess(k8s_cluster, name="second").start()
    try:

        def resumed() -> bool:
            calls = k8s_cluster.operator_calls_since(mark)
            reads = [c for c in calls if c.verb == "get" and c.resource == "cronjobs"]
            return len(reads) >= len(DOCS)

        # Each resumed resource reconciles its namespace once: it reads the ConfigMap and
        # the CronJob, finds both as rendered, and writes neither them nor any status.
        k8s_cluster.wait_for(resumed, what="every resource resumed")
        second_calls = k8s_cluster.operator_calls_since(mark)
        assert _writes(second_calls) == [], _writes(second_calls)
        after = k8s_cluster.get("configmaps", NS, CONFIGMAP_NAME)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert 'result="unchanged"' in second.metrics()
    finally:
        second.stop()
    check_api_calls(k8s_cluster)
