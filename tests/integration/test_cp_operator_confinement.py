"""The operator confined like the agents, proven with its own token on the real control
plane (issue 27, finding 2): kube-apiserver's RBAC and ValidatingAdmissionPolicy plugin,
with manifests/rbac/cluster-wide and manifests/operator/admission-policy.yaml as
`kubectl apply -k manifests/` installs them (the ``real_cluster`` fixture).

Before: with the operator's token, patching a ConfigMap shaped like ``kube-system/aws-auth``
succeeded, and so did a privileged CronJob in ``kube-system`` with a hostPath ``/`` mount
and any serviceAccountName. The operator's own writes are admitted: the e2e modules
assert that it met no refusal (``forbidden() == []``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hourglass_operator.cronjob import build_cronjob
from hourglass_operator.settings import DEFAULT_IMAGE

from agent_lib.config.session_config import SessionPolicy
from tests.fixtures.controlplane import OPERATOR_NS, OPERATOR_SA, ApiError, RealCluster

pytestmark = pytest.mark.timeout(120)

AWS_AUTH = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "aws-auth", "namespace": "kube-system"},
    "data": {"mapRoles": "- rolearn: arn:aws:iam::1:role/nodes\n  groups: [system:nodes]\n"},
}


def _token(cluster: RealCluster) -> str:
    return cluster.token(OPERATOR_SA, OPERATOR_NS)


def _refused(call: Callable[[], Any], *words: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status in (403, 422), caught.value
    for word in words:
        assert word in str(caught.value), caught.value
    return caught.value


def _cleanup_cronjob(namespace: str) -> dict[str, Any]:
    """The CronJob exactly as the operator renders it (the shipped image)."""
    policy = SessionPolicy.model_validate(
        {"metadata": {"name": "sessions", "namespace": namespace}, "spec": {"ttl": "1h"}}
    )
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "0"}
    cronjob = build_cronjob(policy, namespace, owner, DEFAULT_IMAGE)
    del cronjob["metadata"]["ownerReferences"]  # no such owner here
    return cronjob


def _wait_for_policy(cluster: RealCluster, token: str, namespace: str) -> None:
    def enforced() -> bool:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}
        try:
            cluster.request("POST", cluster.path("configmaps", namespace), body, token=token)
        except ApiError as error:
            return error.status == 403
        cluster.delete("configmaps", namespace, "probe")
        return False

    cluster.wait_for(enforced, timeout=30, what="the operator's admission policy")


def test_a_leaked_operator_token_cannot_touch_what_the_operator_does_not_own(
    real_cluster: RealCluster,
) -> None:
    token = _token(real_cluster)
    _wait_for_policy(real_cluster, token, "kube-system")
    real_cluster.delete("configmaps", "kube-system", "aws-auth")
    real_cluster.request("POST", real_cluster.path("configmaps", "kube-system"), AWS_AUTH)
    try:
        patch = {"data": {"mapRoles": "- rolearn: arn:aws:iam::6:role/attacker"}}
        path = real_cluster.path("configmaps", "kube-system", "aws-auth")
        # (No DELETE probe: the audit log is the record of the operator's verbs,
        # tests/integration/api_calls.json, and delete is never one of them.)
        for method in ("PATCH", "GET"):
            _refused(
                lambda method=method: real_cluster.request(
                    method,
                    path,
                    patch if method == "PATCH" else None,
                    content_type="application/merge-patch+json",
                    token=token,
                )
            )
        stored = real_cluster.get("configmaps", "kube-system", "aws-auth")
        assert stored is not None and stored["data"] == AWS_AUTH["data"]
        # create cannot be limited by RBAC; the policy refuses any other name or key.
        other = {**AWS_AUTH, "metadata": {"name": "aws-auth-2", "namespace": "kube-system"}}
        _refused(
            lambda: real_cluster.request(
                "POST", real_cluster.path("configmaps", "kube-system"), other, token=token
            ),
            "only ConfigMap hourglass-config",
        )
        sneaky = {**other, "metadata": {"name": "hourglass-config", "namespace": "kube-system"}}
        _refused(
            lambda: real_cluster.request(
                "POST", real_cluster.path("configmaps", "kube-system"), sneaky, token=token
            ),
            "only the keys hourglass.yaml and revision",
            "mapRoles",
        )
        assert real_cluster.get("configmaps", "kube-system", "hourglass-config") is None
    finally:
        real_cluster.delete("configmaps", "kube-system", "aws-auth")


def _privileged(cronjob: dict[str, Any]) -> None:
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["serviceAccountName"] = "kube-proxy"
    pod["automountServiceAccountToken"] = True
    pod["hostPID"] = True
    pod["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    container = pod["containers"][0]
    container["image"] = "busybox"
    container["command"] = ["sh", "-c", "chroot /host"]
    container["securityContext"] = {"privileged": True}
    container["volumeMounts"].append({"name": "root", "mountPath": "/host"})


def _mutation(change: Callable[[dict[str, Any], dict[str, Any]], None]) -> Any:
    def apply(cronjob: dict[str, Any]) -> None:
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        change(pod, pod["containers"][0])

    return apply


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "privileged, hostPath /, any serviceAccountName": (_privileged, "operator's image"),
    "another image": (_mutation(lambda p, c: c.update(image="busybox")), "operator's image"),
    "another command": (
        _mutation(lambda p, c: c.update(command=["python", "-c", "1"])),
        "hourglass cleanup",
    ),
    "extra env from a Secret": (
        _mutation(lambda p, c: c.update(envFrom=[{"secretRef": {"name": "db"}}])),
        "env REDIS_URL and a literal HOURGLASS_REDIS_URL_SOURCE",
    ),
    # The source label is printed in cleanup errors: from a Secret it would leak it.
    "the URL's source label from a Secret": (
        _mutation(
            lambda p, c: c.update(
                env=[
                    {
                        "name": "HOURGLASS_REDIS_URL_SOURCE",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                    }
                ]
            )
        ),
        "literal HOURGLASS_REDIS_URL_SOURCE",
    ),
    "privileged": (
        _mutation(
            lambda p, c: c["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
        ),
        "unprivileged",
    ),
    "root": (
        _mutation(lambda p, c: p["securityContext"].update(runAsNonRoot=False, runAsUser=0)),
        "non-root",
    ),
    "writable root": (
        _mutation(lambda p, c: c["securityContext"].update(readOnlyRootFilesystem=False)),
        "read-only root",
    ),
    "hostPath": (
        _mutation(lambda p, c: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}})),
        "no hostPath",
    ),
    "serviceAccountName": (
        _mutation(lambda p, c: p.update(serviceAccountName="default")),
        "serviceAccountName",
    ),
    "token automount": (
        _mutation(lambda p, c: p.update(automountServiceAccountToken=True)),
        "automountServiceAccountToken",
    ),
}


def test_only_the_hardened_cleanup_cronjob_is_admitted(real_cluster: RealCluster) -> None:
    token = _token(real_cluster)
    ns = real_cluster.namespace()
    _wait_for_policy(real_cluster, token, ns)
    url = real_cluster.path("cronjobs", ns)

    for what, (mutate, words) in MUTATIONS.items():
        for namespace in (ns, "kube-system"):
            cronjob = copy.deepcopy(_cleanup_cronjob(namespace))
            mutate(cronjob)
            error = _refused(
                lambda cronjob=cronjob, namespace=namespace: real_cluster.request(
                    "POST", real_cluster.path("cronjobs", namespace), cronjob, token=token
                ),
                words,
            )
            assert error.status == 403, (what, error)
    renamed = _cleanup_cronjob(ns)
    renamed["metadata"]["name"] = "miner"
    _refused(
        lambda: real_cluster.request("POST", url, renamed, token=token),
        "only ConfigMap hourglass-config and CronJob hourglass-cleanup",
    )
    assert real_cluster.list("cronjobs", "kube-system") == []

    # What the operator renders is admitted; an update that breaks it is not.
    created = real_cluster.request("POST", url, _cleanup_cronjob(ns), token=token)
    assert created["metadata"]["name"] == "hourglass-cleanup"
    broken = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostNetwork": True}}}}}}
    _refused(
        lambda: real_cluster.request(
            "PATCH",
            real_cluster.path("cronjobs", ns, "hourglass-cleanup"),
            broken,
            content_type="application/merge-patch+json",
            token=token,
        ),
        "no host namespace",
    )
