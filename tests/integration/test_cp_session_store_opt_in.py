"""A Secret opts in before Hourglass uses it, on the real control plane (issue 27, item 2).

Before: a user who may write SessionPolicies but not read Secrets named any Secret of the
namespace in ``store.urlSecretRef``; the operator built the cleanup CronJob on it, and
the cleanup pod's log showed the value. Now manifests/operator/session-store-policy.yaml
(installed by ``kubectl apply -k manifests/``) lets a SessionPolicy, and the operator's
CronJob, name only a Secret labelled ``hourglass.dev/session-store: "true"``. The
operator still reads no Secret: the API server checks the label.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.controlplane import ApiError, RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _condition, _policy, _yaml
from tests.integration.test_cp_operator_confinement import _cleanup_cronjob

pytestmark = pytest.mark.timeout(150)

VALUE = "TOPSECRET-db-password-9f8e"
LABEL = "hourglass.dev/session-store"
STORE = {"urlSecretRef": {"name": "db-creds", "key": "password"}}


def _secret(cluster: RealCluster, ns: str, labelled: bool) -> None:
    labels = {LABEL: "true"} if labelled else {}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-creds", "namespace": ns, "labels": labels},
        "stringData": {"password": VALUE},
    }
    if cluster.get("secrets", ns, "db-creds") is None:
        cluster.request("POST", cluster.path("secrets", ns), body)
    else:
        cluster.patch(
            "secrets", ns, "db-creds", {"metadata": {"labels": {LABEL: labels.get(LABEL)}}}
        )


def _apply_policy(cluster: RealCluster, ns: str) -> None:
    cluster.apply(_yaml(_policy(ns, "sessions", {"ttl": "10m", "store": STORE})))


@pytest.fixture
def operator(real_cluster: RealCluster) -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def test_a_session_policy_may_name_only_an_opted_in_secret(
    real_cluster: RealCluster, operator: list[OperatorProcess]
) -> None:
    ns = real_cluster.namespace()
    _secret(real_cluster, ns, labelled=False)

    def refused() -> str:
        manifest = _yaml(_policy(ns, "sessions", {"ttl": "10m", "store": STORE}))
        said = real_cluster.kubectl("apply", "-f", "-", stdin=manifest, check=False)
        if real_cluster.get("sessionpolicies", ns, "sessions") is None:
            return said
        real_cluster.delete("sessionpolicies", ns, "sessions")  # the policy not enforced yet
        return ""

    message = real_cluster.wait_for(refused, timeout=30, what="the SessionPolicy refused")
    assert "db-creds" in message and f"{LABEL}=true" in message, message
    assert VALUE not in message
    assert real_cluster.get("sessionpolicies", ns, "sessions") is None

    # Opted in: admitted. Then the label goes away before the operator writes the CronJob.
    _secret(real_cluster, ns, labelled=True)
    _apply_policy(real_cluster, ns)
    _secret(real_cluster, ns, labelled=False)
    process = OperatorProcess(real_cluster, name="opt-in").start(timeout=60)
    operator.append(process)

    def not_opted_in() -> dict[str, Any]:
        ready = _condition(real_cluster.get("sessionpolicies", ns, "sessions"), "Ready")
        return ready if ready.get("reason") == "SecretNotOptedIn" else {}

    ready = real_cluster.wait_for(not_opted_in, timeout=60, what="Ready=False SecretNotOptedIn")
    assert ready["status"] == "False"
    assert "db-creds" in ready["message"] and LABEL in ready["message"], ready
    events = real_cluster.wait_for(
        lambda: [
            e for e in real_cluster.events(ns, "sessions") if e["reason"] == "SecretNotOptedIn"
        ],
        what="a SecretNotOptedIn Warning Event",
    )
    assert events[0]["type"] == "Warning"
    assert real_cluster.get("cronjobs", ns, "hourglass-cleanup") is None

    # Labelled again: the operator's next try (15 s after a refusal) makes the CronJob.
    _secret(real_cluster, ns, labelled=True)
    real_cluster.wait_for(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"),
        timeout=60,
        what="the cleanup CronJob once the Secret opted in",
    )
    everything = "\n".join(
        [str(real_cluster.get("sessionpolicies", ns, "sessions"))]
        + [str(e) for e in real_cluster.list("events", ns)]
        + process.log_lines()
    )
    assert VALUE not in everything


def test_the_operator_token_cannot_reference_an_unlabelled_secret(
    real_cluster: RealCluster,
) -> None:
    """The CronJob check holds for any writer of the cleanup CronJob, the operator included."""
    ns = real_cluster.namespace()
    _secret(real_cluster, ns, labelled=False)
    cronjob = _cleanup_cronjob(ns)
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {
            "name": "REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
        }
    ]
    token = real_cluster.token("hourglass-operator", "hourglass-system")
    with pytest.raises(ApiError) as caught:
        real_cluster.request("POST", real_cluster.path("cronjobs", ns), cronjob, token=token)
    assert caught.value.status == 403 and LABEL in str(caught.value), caught.value
    _secret(real_cluster, ns, labelled=True)
    real_cluster.request("POST", real_cluster.path("cronjobs", ns), cronjob, token=token)
