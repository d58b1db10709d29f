"""The operator end to end on the real control plane (tests/controlplane), driven by kubectl.

etcd, kube-apiserver and kube-controller-manager run on loopback; the operator runs as a
local process authenticated as its own ServiceAccount, so the shipped RBAC is enforced
(any 403 fails `test_no_request_was_forbidden`). One operator process serves the module;
each test works in its own namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from agent_lib.config import REVISION_KEY
from agent_lib.config.bundle import CONFIG_KEY, CONFIGMAP_NAME, HASH_ANNOTATION, render_config
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.timeout_profiles import TimeoutProfile
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.operator_process import OperatorProcess, check_api_calls
from tests.integration._resources import (
    _condition,
    _config,
    _configmap,
    _policy,
    _profile,
    _wait_timeout,
    _yaml,
)
from tests.integration.test_manifests import without_revision

pytestmark = pytest.mark.timeout(120)


def _content(configmap: dict[str, Any] | None) -> dict[str, str] | None:
    """What a ConfigMap says, without the revision that orders its versions."""
    if configmap is None:
        return None
    return {k: v for k, v in (configmap.get("data") or {}).items() if k != REVISION_KEY}


_AUDIT_MARK = 0
"""Where this module's operator started in the audit log (other modules share the server)."""


@pytest.fixture(scope="module")
def k8s_cluster(real_cluster: Cluster) -> Cluster:
    return real_cluster


@pytest.fixture(scope="module")
def hourglass_operator(k8s_cluster: Cluster) -> Iterator[OperatorProcess]:
    global _AUDIT_MARK
    _AUDIT_MARK = k8s_cluster.audit_mark()
    operator = OperatorProcess(k8s_cluster, webhook=True).start(timeout=60)
    try:
        yield operator
    finally:
        operator.stop()


REPO = Path(__file__).resolve().parents[2]


def _expected(cluster: Cluster, docs: list[dict[str, Any]], ns: str) -> Any:
    """What `render_config` returns for these documents, with the uids the server gave them."""
    owners = []
    profiles, policies = [], []
    for doc in docs:
        plural = "timeoutprofiles" if doc["kind"] == "TimeoutProfile" else "sessionpolicies"
        live = cluster.get(plural, ns, doc["metadata"]["name"])
        assert live is not None
        owners.append(
            {
                "apiVersion": doc["apiVersion"],
                "kind": doc["kind"],
                "name": doc["metadata"]["name"],
                "uid": live["metadata"]["uid"],
            }
        )
        if doc["kind"] == "TimeoutProfile":
            profiles.append(TimeoutProfile.model_validate(doc))
        else:
            policies.append(SessionPolicy.model_validate(doc))
    return render_config(ns, profiles, policies, owners=owners)


def test_samples_render_byte_for_byte(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    samples = REPO / "manifests" / "samples" / "dev"
    docs = [
        doc
        for path in (samples / "timeoutprofiles.yaml", samples / "sessionpolicy.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    ns = docs[0]["metadata"]["namespace"]
    k8s_cluster.kubectl(
        "apply",
        "-f",
        str(samples / "namespace.yaml"),
        "-f",
        str(samples / "timeoutprofiles.yaml"),
        "-f",
        str(samples / "sessionpolicy.yaml"),
    )
    expected = None

    def matches() -> bool:
        nonlocal expected
        expected = _expected(k8s_cluster, docs, ns)
        cm = _configmap(k8s_cluster, ns)
        return cm is not None and without_revision(cm["data"]) == expected.configmap["data"]

    k8s_cluster.wait_for(matches, what="the samples' ConfigMap")
    assert expected is not None
    cm = _configmap(k8s_cluster, ns)
    assert cm is not None
    want = expected.configmap["metadata"]
    for key in ("name", "namespace", "labels", "annotations", "ownerReferences"):
        assert cm["metadata"][key] == want[key], key
    for doc in docs:
        plural = "timeoutprofiles" if doc["kind"] == "TimeoutProfile" else "sessionpolicies"
        name = doc["metadata"]["name"]
        k8s_cluster.wait_for(
            lambda p=plural, n=name: (
                (k8s_cluster.get(p, ns, n) or {}).get("status", {}).get("configHash")
                == expected.hash
            ),
            what=f"{plural}/{name} status.configHash",
        )


def test_create_sets_status_and_event(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-create"
    k8s_cluster.apply(
        _yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "30s"}}))
    )
    _wait_timeout(k8s_cluster, ns, "base", "request", 30)
    k8s_cluster.wait_for(
        lambda: (
            _condition(k8s_cluster.get("timeoutprofiles", ns, "base"), "Ready").get("status")
            == "True"
        ),
        what="Ready=True",
    )
    profile = k8s_cluster.get("timeoutprofiles", ns, "base")
    assert profile is not None
    status = profile["status"]
    cm = _configmap(k8s_cluster, ns)
    assert cm is not None
    assert status["observedGeneration"] == profile["metadata"]["generation"] == 1
    assert status["configHash"] == cm["metadata"]["annotations"][HASH_ANNOTATION]
    valid = _condition(profile, "Valid")
    assert valid["status"] == "True" and valid["reason"] and valid["observedGeneration"] == 1
    assert valid["lastTransitionTime"].endswith("Z")
    assert _config(k8s_cluster, ns)["defaultProfile"] == "base"
    k8s_cluster.wait_for(
        lambda: any(
            e["type"] == "Normal" and e["reason"] == "Rendered"
            for e in k8s_cluster.events(ns, "base")
        ),
        what="a Normal Rendered Event",
    )


def test_update_and_inheritance_propagate(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-update"
    base = _profile(ns, "base", {"default": True, "timeouts": {"request": "30s", "llmCall": "1m"}})
    child = _profile(ns, "slow", {"extends": "base", "timeouts": {"llmCall": "5m"}})
    k8s_cluster.apply(_yaml(base, child))
    _wait_timeout(k8s_cluster, ns, "slow", "request", 30)
    assert _config(k8s_cluster, ns)["profiles"]["slow"]["inheritsFrom"] == ["base"]

    base["spec"]["timeouts"]["request"] = "45s"
    k8s_cluster.apply(_yaml(base))
    _wait_timeout(k8s_cluster, ns, "slow", "request", 45)
    config = _config(k8s_cluster, ns)
    assert config["profiles"]["base"]["timeouts"]["request"] == 45
    assert config["profiles"]["slow"]["timeouts"]["llmCall"] == 300
    k8s_cluster.wait_for(
        lambda: (
            (k8s_cluster.get("timeoutprofiles", ns, "base") or {})
            .get("status", {})
            .get("observedGeneration")
            == 2
        ),
        what="observedGeneration 2 after the spec change",
    )


@pytest.mark.parametrize(
    ("case", "bad", "field", "reason"),
    [
        (
            "duration",
            {"timeouts": {"request": "45d"}},
            "spec.timeouts.request",
            "InvalidSpec",
        ),
        ("parent", {"extends": "missing", "timeouts": {}}, "spec.extends", "InheritanceError"),
        (
            "default",
            {"default": True, "timeouts": {"request": "9s"}},
            "spec.default",
            "MultipleDefaults",
        ),
    ],
)
def test_invalid_update_keeps_last_good_configmap(
    k8s_cluster: Cluster,
    hourglass_operator: OperatorProcess,
    case: str,
    bad: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    ns = f"op-invalid-{case}"
    k8s_cluster.apply(
        _yaml(
            _profile(ns, "base", {"default": True, "timeouts": {"request": "30s"}}),
            _profile(ns, "other", {"timeouts": {"request": "10s"}}),
        )
    )
    _wait_timeout(k8s_cluster, ns, "other", "request", 10)
    good = _configmap(k8s_cluster, ns)
    assert good is not None
    k8s_cluster.wait_for(
        lambda: (
            (k8s_cluster.get("timeoutprofiles", ns, "base") or {})
            .get("status", {})
            .get("configHash")
            == good["metadata"]["annotations"][HASH_ANNOTATION]
        ),
        what="base's status at the current hash",
    )
    base_before = k8s_cluster.get("timeoutprofiles", ns, "base")

    k8s_cluster.apply(_yaml(_profile(ns, "other", bad)))
    k8s_cluster.wait_for(
        lambda: (
            _condition(k8s_cluster.get("timeoutprofiles", ns, "other"), "Valid").get("status")
            == "False"
        ),
        what="other Valid=False",
    )
    valid = _condition(k8s_cluster.get("timeoutprofiles", ns, "other"), "Valid")
    assert valid["reason"] == reason
    assert field in valid["message"]
    assert valid["observedGeneration"] == 2
    cm = _configmap(k8s_cluster, ns)
    assert cm is not None
    assert cm["data"] == good["data"]
    assert cm["metadata"]["resourceVersion"] == good["metadata"]["resourceVersion"]
    k8s_cluster.wait_for(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == reason and field in e["message"]
            for e in k8s_cluster.events(ns, "other")
        ),
        what=f"a Warning Event naming {field}",
    )
    # The offending resource alone is marked: its sibling keeps its status.
    assert k8s_cluster.get("timeoutprofiles", ns, "base")["status"] == base_before["status"]

    k8s_cluster.apply(_yaml(_profile(ns, "other", {"timeouts": {"request": "12s"}})))
    _wait_timeout(k8s_cluster, ns, "other", "request", 12)
    k8s_cluster.wait_for(
        lambda: (
            _condition(k8s_cluster.get("timeoutprofiles", ns, "other"), "Valid").get("status")
            == "True"
        ),
        what="Valid=True once fixed",
    )


def test_second_session_policy_is_refused(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-two-policies"
    k8s_cluster.apply(_yaml(_policy(ns, "first", {"ttl": "10m"})))
    k8s_cluster.wait_for(lambda: _configmap(k8s_cluster, ns), what="first policy rendered")
    good = _configmap(k8s_cluster, ns)
    k8s_cluster.apply(_yaml(_policy(ns, "second", {"ttl": "20m"})))
    k8s_cluster.wait_for(
        lambda: (
            _condition(k8s_cluster.get("sessionpolicies", ns, "second"), "Valid").get("reason")
            == "MultipleSessionPolicies"
        ),
        what="second SessionPolicy Valid=False",
    )
    assert _configmap(k8s_cluster, ns)["data"] == good["data"]  # type: ignore[index]
    assert _condition(k8s_cluster.get("sessionpolicies", ns, "first"), "Valid")["status"] == "True"


def test_deletion_rerenders_and_last_one_removes_configmap(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-delete"
    k8s_cluster.apply(
        _yaml(
            _profile(ns, "base", {"default": True, "timeouts": {"request": "30s"}}),
            _profile(ns, "extra", {"timeouts": {"request": "3s"}}),
        )
    )
    _wait_timeout(k8s_cluster, ns, "extra", "request", 3)
    k8s_cluster.kubectl("delete", "timeoutprofile", "extra", "-n", ns)
    k8s_cluster.wait_for(
        lambda: "extra" not in _config(k8s_cluster, ns)["profiles"], what="extra gone"
    )
    owners = _configmap(k8s_cluster, ns)["metadata"]["ownerReferences"]  # type: ignore[index]
    assert [o["name"] for o in owners] == ["base"]
    k8s_cluster.kubectl("delete", "tp", "base", "-n", ns)
    k8s_cluster.wait_for(lambda: _configmap(k8s_cluster, ns) is None, what="ConfigMap removed")


def test_hand_edited_or_deleted_configmap_is_put_back(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-repair"
    k8s_cluster.apply(_yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "7s"}})))
    _wait_timeout(k8s_cluster, ns, "base", "request", 7)
    good = _configmap(k8s_cluster, ns)
    assert good is not None
    edit = json.dumps({"data": {CONFIG_KEY: "profiles: {}\n", "extra": "x"}})
    k8s_cluster.kubectl("patch", "configmap", CONFIGMAP_NAME, "-n", ns, "--type=merge", "-p", edit)
    k8s_cluster.wait_for(
        lambda: _content(_configmap(k8s_cluster, ns)) == _content(good),
        what="hand edit reverted",
    )
    # Put back as a new version: agents that took the hand edit through the API go back too.
    repaired = _configmap(k8s_cluster, ns)
    assert int(repaired["data"][REVISION_KEY]) > int(good["data"][REVISION_KEY])
    core = kubernetes.client.CoreV1Api(k8s_cluster.client())
    core.patch_namespaced_config_map(
        CONFIGMAP_NAME,
        ns,
        {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}},
        _content_type="application/merge-patch+json",
    )
    k8s_cluster.wait_for(
        lambda: (
            (_configmap(k8s_cluster, ns) or {}).get("metadata", {}).get("labels")
            == good["metadata"]["labels"]
        ),
        what="stripped labels put back",
    )
    k8s_cluster.kubectl("delete", "configmap", CONFIGMAP_NAME, "-n", ns)
    k8s_cluster.wait_for(
        lambda: _content(_configmap(k8s_cluster, ns)) == _content(good),
        what="deleted ConfigMap recreated",
    )
    shown = k8s_cluster.kubectl(
        "get", "configmap", CONFIGMAP_NAME, "-n", ns, "-o", "jsonpath={.data.hourglass\\.yaml}"
    )
    assert shown == good["data"][CONFIG_KEY]


def test_cleanup_cronjob_and_finished_job_summary(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-cleanup"
    policy = _policy(
        ns,
        "sessions",
        {
            "store": {"urlSecretRef": {"name": "redis-creds", "key": "url"}, "keyPrefix": "e2e"},
            "ttl": "10m",
            "cleanup": {"schedule": "*/7 * * * *", "suspend": True},
        },
    )
    k8s_cluster.apply(_yaml(policy))
    cronjob = k8s_cluster.wait_for(
        lambda: k8s_cluster.get("cronjobs", ns, "hourglass-cleanup"), what="the CronJob"
    )
    spec = cronjob["spec"]
    assert spec["schedule"] == "*/7 * * * *" and spec["suspend"] is True
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job_spec = spec["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] >= 0 and job_spec["activeDeadlineSeconds"] > 0
    pod = job_spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.test/hourglass:e2e"
    assert container["command"][:2] == ["hourglass", "cleanup"]
    assert "--json" in container["command"] and ns in container["command"]
    assert container["env"] == [
        {
            "name": "REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "redis-creds", "key": "url", "optional": False}},
        },
        {
            "name": "HOURGLASS_REDIS_URL_SOURCE",
            "value": "REDIS_URL (Secret redis-creds, key url, from spec.store.urlSecretRef)",
        },
    ]
    hardening = container["securityContext"]
    assert hardening["runAsNonRoot"] and hardening["readOnlyRootFilesystem"]
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    assert hardening["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["terminationMessagePolicy"] == "File"
    # The apiserver defaults the volume's defaultMode (420); the emulator stored it as sent.
    (volume,) = pod["volumes"]
    assert (volume["name"], volume["configMap"]["name"]) == ("config", CONFIGMAP_NAME)
    owner = cronjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("SessionPolicy", "sessions")

    summary = {
        "scanned": 12,
        "expired": 3,
        "evicted": 1,
        "lifetime_ended": 0,
        "bytes_freed": 2048,
        "duration_s": 0.01,
    }
    job_name = k8s_cluster.run_cleanup_job(ns, json.dumps(summary))
    last = k8s_cluster.wait_for(
        lambda: (
            (k8s_cluster.get("sessionpolicies", ns, "sessions") or {})
            .get("status", {})
            .get("lastCleanup")
        ),
        what="status.lastCleanup",
    )
    assert last["job"] == job_name
    assert last["succeeded"] is True
    assert last["summary"] == summary
    assert "hourglass_operator_cleanup_runs_total" in hourglass_operator.metrics()

    failed = k8s_cluster.run_cleanup_job(ns, "redis: connection refused", succeeded=False)
    last = k8s_cluster.wait_for(
        lambda: (
            (
                (k8s_cluster.get("sessionpolicies", ns, "sessions") or {})
                .get("status", {})
                .get("lastCleanup", {})
            )
            if failed
            == (k8s_cluster.get("sessionpolicies", ns, "sessions") or {})
            .get("status", {})
            .get("lastCleanup", {})
            .get("job")
            else None
        ),
        what="the failed run recorded",
    )
    assert last["succeeded"] is False
    assert last["summary"] == {"message": "redis: connection refused"}
    k8s_cluster.wait_for(
        lambda: any(e["reason"] == "CleanupFailed" for e in k8s_cluster.events(ns, "sessions")),
        what="a CleanupFailed Warning",
    )

    policy["spec"]["cleanup"] = {"schedule": "0 * * * *", "suspend": False}
    k8s_cluster.apply(_yaml(policy))
    k8s_cluster.wait_for(
        lambda: (
            (k8s_cluster.get("cronjobs", ns, "hourglass-cleanup") or {})
            .get("spec", {})
            .get("schedule")
            == "0 * * * *"
        ),
        what="the CronJob following the new schedule",
    )
    assert k8s_cluster.get("cronjobs", ns, "hourglass-cleanup")["spec"]["suspend"] is False
    k8s_cluster.kubectl("delete", "sessionpolicy", "sessions", "-n", ns)
    # kube-controller-manager's garbage collector, which re-discovers new kinds every 30 s.
    k8s_cluster.wait_for(
        lambda: k8s_cluster.get("cronjobs", ns, "hourglass-cleanup") is None,
        timeout=75,
        what="the CronJob collected with its SessionPolicy",
    )


def test_webhook_rejects_a_bad_profile(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    """The API server's side of admission, played by the test: an AdmissionReview POSTed
    to kopf's webhook server (plain HTTP on loopback) at the handler's path."""
    import urllib.request

    def review(obj: dict[str, Any]) -> dict[str, Any]:
        plural = "timeoutprofiles" if obj["kind"] == "TimeoutProfile" else "sessionpolicies"
        payload = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "0b1e4c1a-1111-2222-3333-444455556666",
                "kind": {"group": "hourglass.dev", "version": "v1alpha1", "kind": obj["kind"]},
                "resource": {
                    "group": "hourglass.dev",
                    "version": "v1alpha1",
                    "resource": plural,
                },
                "operation": "CREATE",
                "userInfo": {"username": "tester"},
                "namespace": obj["metadata"]["namespace"],
                "name": obj["metadata"]["name"],
                "object": obj,
                "oldObject": None,
                "dryRun": False,
            },
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{hourglass_operator.webhook_port}/validate-{obj['kind'].lower()}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())["response"]
            return result

    bad = review(_profile("op-webhook", "bad", {"timeouts": {"llmCall": "-5s"}}))
    assert bad["allowed"] is False
    assert "spec.timeouts.llmCall" in bad["status"]["message"]
    good = review(_profile("op-webhook", "good", {"timeouts": {"llmCall": "5s"}}))
    assert good["allowed"] is True
    policy = review(_policy("op-webhook", "p", {"ttl": "2h", "maxLifetime": "1h"}))
    assert policy["allowed"] is False and "maxLifetime" in policy["status"]["message"]

    # Namespace-wide rules use the operator's index of what the cluster already has.
    k8s_cluster.apply(_yaml(_profile("op-webhook", "base", {"default": True})))
    k8s_cluster.wait_for(
        lambda: k8s_cluster.get("configmaps", "op-webhook", CONFIGMAP_NAME), what="indexed"
    )
    second = review(_profile("op-webhook", "other", {"default": True}))
    assert second["allowed"] is False and "spec.default" in second["status"]["message"]


def test_metrics_logs_and_liveness(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-metrics"
    k8s_cluster.apply(_yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "2s"}})))
    _wait_timeout(k8s_cluster, ns, "base", "request", 2)
    cm = _configmap(k8s_cluster, ns)
    assert cm is not None
    digest = cm["metadata"]["annotations"][HASH_ANNOTATION]
    text = k8s_cluster.wait_for(
        lambda: t if digest in (t := hourglass_operator.metrics()) else None,
        what="the config hash in /metrics",
    )
    assert f'hourglass_operator_config_hash_info{{hash="{digest}",namespace="{ns}"}} 1.0' in text
    assert "hourglass_operator_reconciles_total{" in text
    assert "hourglass_operator_render_duration_seconds_bucket" in text
    assert hourglass_operator.alive()
    records = [json.loads(line) for line in hourglass_operator.log_lines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(f"wrote {ns}/{CONFIGMAP_NAME}" in r["message"] for r in records)


def test_api_calls_are_recorded(k8s_cluster: Cluster, hourglass_operator: OperatorProcess) -> None:
    """Runs last in this module: every call the operator made is in api_calls.json."""
    ns = "op-calls"
    k8s_cluster.apply(
        _yaml(
            _profile(ns, "base", {"default": True}),
            # a store Secret: without one a SessionPolicy gets no CronJob (issue 15, item 8)
            _policy(
                ns, "sessions", {"ttl": "1m", "store": {"urlSecretRef": {"name": "r", "key": "u"}}}
            ),
        )
    )
    k8s_cluster.wait_for(lambda: k8s_cluster.get("cronjobs", ns, "hourglass-cleanup"))
    k8s_cluster.wait_for(
        lambda: _condition(k8s_cluster.get("sessionpolicies", ns, "sessions"), "Ready"),
        what="status written",
    )
    k8s_cluster.wait_for(lambda: k8s_cluster.events(ns, "sessions"), what="an Event")
    rules = check_api_calls(k8s_cluster)
    resources = {r["resource"] for r in rules}
    assert {"configmaps", "timeoutprofiles/status", "cronjobs", "events"} <= resources
    assert "secrets" not in resources


def test_no_request_was_forbidden(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    """Runs last: RBAC refused none of the operator's requests (read from the audit log)."""
    assert k8s_cluster.operator_calls_since(_AUDIT_MARK), "the audit log saw no request"
    assert k8s_cluster.forbidden(since=_AUDIT_MARK) == []
