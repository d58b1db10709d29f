"""Cron schedules by Kubernetes' rules, timeZone, and cleanup pods (issue 15, items 1, 8).

The models are compared with the real kube-apiserver's own CronJob validation
(a server-side dry run): whatever the API server refuses, `hourglass validate`, the
webhook and the operator refuse too, naming spec.cleanup.schedule.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from agent_lib.config.session_config import CleanupSpec
from tests.fixtures.controlplane import ApiError, RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _condition, _policy, _profile, _yaml

pytestmark = pytest.mark.timeout(120)
STORE = {"urlSecretRef": {"name": "redis", "key": "url"}}
SCHEDULES = [
    "*/5 * * * *",
    "0 3 * * 7",
    "0 0 * * 0-7",
    "0 0 L * *",
    "0 0 * * 5#3",
    "0 0 15W * *",
    "0 0 ? * *",
    "TZ=UTC 0 3 * * *",
    "CRON_TZ=Europe/Paris 0 3 * * *",
    "@hourly",
    "@daily",
    "@yearly",
    "@every 1h",
    "0 3 * JAN-MAR mon-fri",
    "0 3 1,15 * *",
    "5-10/2 * * * *",
    "0 3 * * 1-5/0",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 1 13 *",
    "0 0 1 1",
    "0 0 1 1 * *",
]


def _cronjob(ns: str, schedule: str, time_zone: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "schedule": schedule,
        "jobTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}],
                    }
                }
            }
        },
    }
    if time_zone is not None:
        spec["timeZone"] = time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": spec,
    }


def _kubernetes_accepts(cluster: RealCluster, ns: str, cronjob: dict[str, object]) -> bool:
    try:
        cluster.request("POST", f"/apis/batch/v1/namespaces/{ns}/cronjobs?dryRun=All", cronjob)
    except ApiError as error:
        assert error.status == 422, error
        return False
    return True


def _model_accepts(**fields: str) -> bool:
    try:
        CleanupSpec.model_validate(fields)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def probe_ns(real_cluster: RealCluster) -> str:
    return real_cluster.namespace()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_schedule_the_api_server_refuses_is_refused_by_the_model(
    real_cluster: RealCluster, probe_ns: str, schedule: str
) -> None:
    kubernetes = _kubernetes_accepts(real_cluster, probe_ns, _cronjob(probe_ns, schedule))
    ours = _model_accepts(schedule=schedule)
    # Ours may be stricter ('?', '@every': croniter cannot compute their next run), never looser.
    assert not (ours and not kubernetes), f"{schedule!r}: accepted here, refused by Kubernetes"
    if schedule not in ("0 0 ? * *", "@every 1h"):
        assert ours == kubernetes, f"{schedule!r}: ours {ours}, Kubernetes {kubernetes}"


@pytest.mark.parametrize(
    "zone", ["Europe/Paris", "America/New_York", "UTC", "Mars/Olympus", "Local"]
)
def test_a_time_zone_the_api_server_refuses_is_refused_by_the_model(
    real_cluster: RealCluster, probe_ns: str, zone: str
) -> None:
    kubernetes = _kubernetes_accepts(
        real_cluster, probe_ns, _cronjob(probe_ns, "0 3 * * *", time_zone=zone)
    )
    assert _model_accepts(timeZone=zone) == kubernetes


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster) -> Iterator[OperatorProcess]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_IMAGE_PULL_SECRETS", "regcred,mirror-cred")
        process = OperatorProcess(real_cluster, name="schedules").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def test_operator_refuses_a_sunday_seven_naming_the_field(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    mark = real_cluster.audit_mark()
    real_cluster.apply(
        _yaml(
            _profile(ns, "base", {"default": True}),
            _policy(ns, "sessions", {"store": STORE, "cleanup": {"schedule": "0 3 * * 7"}}),
        )
    )
    valid = real_cluster.wait_for(
        lambda: _condition(real_cluster.get("sessionpolicies", ns, "sessions"), "Valid"),
        what="the policy's Valid condition",
    )
    assert valid["status"] == "False"
    assert "spec.cleanup.schedule" in valid["message"]
    assert "day of week" in valid["message"]
    assert real_cluster.get("cronjobs", ns, "hourglass-cleanup") is None
    refused = [
        e
        for e in real_cluster.audited(since=mark)
        if (e.get("objectRef") or {}).get("resource") == "cronjobs"
        and e.get("responseStatus", {}).get("code") == 422
    ]
    assert refused == []


def test_time_zone_and_pull_secrets_reach_the_cronjob(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    cleanup = {"schedule": "0 3 * * mon-fri", "timeZone": "Europe/Paris"}
    real_cluster.apply(_yaml(_policy(ns, "sessions", {"store": STORE, "cleanup": cleanup})))
    cronjob = real_cluster.wait_for(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"), what="the CronJob"
    )
    assert cronjob["spec"]["timeZone"] == "Europe/Paris"
    assert cronjob["spec"]["schedule"] == "0 3 * * mon-fri"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]


def test_a_policy_without_a_store_secret_gets_no_cronjob_and_says_why(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    real_cluster.apply(_yaml(_policy(ns, "sessions", {"ttl": "10m"})))
    policy = real_cluster.wait_for(
        lambda: (
            (p := real_cluster.get("sessionpolicies", ns, "sessions"))
            and _condition(p, "Ready").get("status") == "True"
            and p
        ),
        what="the policy rendered",
    )
    why = _condition(policy, "CleanupScheduled")
    assert (why["status"], why["reason"]) == ("False", "NoStoreSecret")
    assert "spec.store.urlSecretRef" in why["message"]
    assert real_cluster.get("cronjobs", ns, "hourglass-cleanup") is None

    # A store Secret given later: the CronJob comes, the condition goes.
    real_cluster.apply(_yaml(_policy(ns, "sessions", {"ttl": "10m", "store": STORE})))
    real_cluster.wait_for(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"), what="the CronJob"
    )
    real_cluster.wait_for(
        lambda: (
            not _condition(real_cluster.get("sessionpolicies", ns, "sessions"), "CleanupScheduled")
        ),
        what="CleanupScheduled gone",
    )
    # And taken away again: the CronJob stops starting pods (suspended).
    changed = copy.deepcopy(_policy(ns, "sessions", {"ttl": "10m"}))
    real_cluster.kubectl("replace", "-f", "-", stdin=_yaml(changed))
    real_cluster.wait_for(
        lambda: (
            (real_cluster.get("cronjobs", ns, "hourglass-cleanup") or {})
            .get("spec", {})
            .get("suspend")
        ),
        what="the CronJob suspended",
    )
