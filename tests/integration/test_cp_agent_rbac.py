"""Least privilege for agents, proven on the real control plane (kube-apiserver's RBAC and
its ValidatingAdmissionPolicy admission plugin, no model of either).

The agents' ServiceAccount, Role and RoleBinding come from the samples
(manifests/samples/*/agent-rbac.yaml); the admission policy from manifests/agents/, which
the ``real_cluster`` fixture installs with ``kubectl apply -k manifests/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.agent_pods import (
    AGENT_SA,
    APPLIED_HASH,
    APPLIED_PROFILE,
    CONFIG_ERROR,
    agent_rbac,
    pod_manifest,
)
from tests.fixtures.controlplane import ApiError

pytestmark = pytest.mark.usefixtures("real_cluster")


def _merge(cluster: Any, ns: str, pod: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    return cluster.request(
        "PATCH",
        cluster.path("pods", ns, pod),
        body,
        content_type="application/merge-patch+json",
        token=token,
    )


def _refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status in (403, 422), caught.value
    return caught.value


def _annotations(*pairs: tuple[str, str | None]) -> dict[str, Any]:
    return {"metadata": {"annotations": dict(pairs)}}


@pytest.fixture
def two_pods(real_cluster: Any) -> Iterator[tuple[str, str]]:
    """Pods ``a`` and ``b`` in a fresh namespace (deleted afterwards), a token bound to ``a``."""
    ns = real_cluster.namespace()
    real_cluster.apply(agent_rbac(ns))
    for name in ("a", "b"):
        real_cluster.kubectl("apply", "-f", "-", stdin=pod_manifest(ns, name))
    token = real_cluster.token(AGENT_SA, ns, bound_pod="a")
    yield ns, token
    real_cluster.delete("namespaces", None, ns)  # no TimeoutProfiles here: nothing to finalize


def _wait_for_policy(cluster: Any, ns: str, token: str) -> None:
    """The policy and its binding are read by the admission plugin's informer: wait until a
    forbidden change is refused (it would be allowed by RBAC alone)."""

    def enforced() -> bool:
        try:
            _merge(cluster, ns, "b", _annotations((APPLIED_HASH, "probe")), token)
        except ApiError as error:
            return error.status == 403
        cluster.patch("pods", ns, "b", _annotations((APPLIED_HASH, None)))
        return False

    cluster.wait_for(enforced, timeout=30, what="the agents' admission policy to be enforced")


def test_a_pod_bound_token_annotates_its_own_pod_and_nothing_else(
    real_cluster: Any, two_pods: tuple[str, str]
) -> None:
    ns, token = two_pods
    _wait_for_policy(real_cluster, ns, token)

    # Allowed: its own Pod's applied-* and config-error annotations, set and removed.
    good = _annotations(
        (APPLIED_HASH, "0123456789abcdef"), (APPLIED_PROFILE, "prod"), (CONFIG_ERROR, "x: y")
    )
    patched = _merge(real_cluster, ns, "a", good, token)
    assert patched["metadata"]["annotations"][APPLIED_HASH] == "0123456789abcdef"
    cleared = _merge(real_cluster, ns, "a", _annotations((CONFIG_ERROR, None)), token)
    assert CONFIG_ERROR not in cleared["metadata"]["annotations"]
    assert cleared["metadata"]["annotations"][APPLIED_PROFILE] == "prod"

    # Refused: another pod, even with the allowed annotations.
    error = _refused(lambda: _merge(real_cluster, ns, "b", good, token))
    assert "only their own Pod" in str(error), error
    # Refused: its own Pod's labels, other annotations, spec.
    error = _refused(
        lambda: _merge(real_cluster, ns, "a", {"metadata": {"labels": {"x": "z"}}}, token)
    )
    assert "labels" in str(error), error
    error = _refused(lambda: _merge(real_cluster, ns, "a", _annotations(("other", "z")), token))
    assert "other" in str(error), error
    mixed = _annotations((APPLIED_HASH, "fedcba9876543210"), ("other", "z"))
    _refused(lambda: _merge(real_cluster, ns, "a", mixed, token))
    _refused(lambda: _merge(real_cluster, ns, "a", {"spec": {"activeDeadlineSeconds": 5}}, token))
    _refused(lambda: _merge(real_cluster, ns, "a", {"metadata": {"finalizers": ["x/y"]}}, token))
    # Refused by RBAC: the status subresource, deleting, other ConfigMaps, listing.
    _refused(
        lambda: real_cluster.request(
            "PATCH",
            real_cluster.path("pods", ns, "a") + "/status",
            {"status": {"phase": "Failed"}},
            content_type="application/merge-patch+json",
            token=token,
        )
    )
    _refused(
        lambda: real_cluster.request("DELETE", real_cluster.path("pods", ns, "a"), token=token)
    )
    real_cluster.apply(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: other, namespace: {ns}}}\n"
    )
    _refused(
        lambda: real_cluster.request(
            "GET", real_cluster.path("configmaps", ns, "other"), token=token
        )
    )
    _refused(lambda: real_cluster.request("GET", real_cluster.path("configmaps", ns), token=token))

    pod_b = real_cluster.get("pods", ns, "b")
    assert APPLIED_HASH not in (pod_b["metadata"].get("annotations") or {})
    pod_a = real_cluster.get("pods", ns, "a")
    assert pod_a["metadata"]["labels"].get("x") is None
    assert "other" not in pod_a["metadata"]["annotations"]


def test_the_one_configmap_can_be_read_and_watched(
    real_cluster: Any, two_pods: tuple[str, str]
) -> None:
    ns, token = two_pods
    real_cluster.apply(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hourglass-config, namespace: {ns}}}\n"
        "data: {hourglass.yaml: 'x'}\n"
    )
    got = real_cluster.request(
        "GET", real_cluster.path("configmaps", ns, "hourglass-config"), token=token
    )
    assert got["data"] == {"hourglass.yaml": "x"}
    # watch is allowed for that one name only (fieldSelector); a plain watch is not.
    url = real_cluster.path("configmaps", ns)
    selected = f"{url}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dhourglass-config"
    real_cluster.request("GET", selected, token=token)
    _refused(lambda: real_cluster.request("GET", f"{url}?watch=true&timeoutSeconds=1", token=token))


def test_a_token_not_bound_to_a_pod_changes_no_pod(
    real_cluster: Any, two_pods: tuple[str, str]
) -> None:
    ns, bound = two_pods
    _wait_for_policy(real_cluster, ns, bound)
    unbound = real_cluster.token(AGENT_SA, ns)
    error = _refused(
        lambda: _merge(real_cluster, ns, "a", _annotations((APPLIED_HASH, "x")), unbound)
    )
    assert "no pod" in str(error), error


REJECTED_HASH = "hourglass.dev/rejected-hash"


def test_exactly_the_documented_annotations_are_admitted(
    real_cluster: Any, two_pods: tuple[str, str]
) -> None:
    """Issue 27, finding 4: the old prefix rule admitted any ``hourglass.dev/applied-*`` key."""
    ns, token = two_pods
    _wait_for_policy(real_cluster, ns, token)
    patched = _merge(real_cluster, ns, "a", _annotations((REJECTED_HASH, "abc123")), token)
    assert patched["metadata"]["annotations"][REJECTED_HASH] == "abc123"
    for key in ("hourglass.dev/applied-anything", "hourglass.dev/applied-hash2", "hourglass.dev/x"):
        error = _refused(
            lambda key=key: _merge(real_cluster, ns, "a", _annotations((key, "z")), token)
        )
        assert key in str(error) and REJECTED_HASH in str(error), error


def test_a_token_is_confined_to_its_pods_namespace_and_uid(
    real_cluster: Any, two_pods: tuple[str, str]
) -> None:
    """Issue 27, finding 4: given an extra RoleBinding the project does not ship, a token
    bound to ``<ns>/a`` could annotate ``<other>/a`` (the old policy matched the name only)."""
    ns, token = two_pods
    other = real_cluster.namespace()
    try:
        real_cluster.apply(agent_rbac(other))
        real_cluster.kubectl("apply", "-f", "-", stdin=pod_manifest(other, "a"))
        real_cluster.apply(
            f"""apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: foreign-agent, namespace: {other}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {AGENT_SA}}}
subjects: [{{kind: ServiceAccount, name: {AGENT_SA}, namespace: {ns}}}]
"""
        )
        _wait_for_policy(real_cluster, ns, token)
        error = _refused(
            lambda: _merge(real_cluster, other, "a", _annotations((APPLIED_HASH, "x")), token)
        )
        assert "only their own Pod" in str(error), error
        annotations = real_cluster.get("pods", other, "a")["metadata"].get("annotations") or {}
        assert APPLIED_HASH not in annotations
        # Its own pod, same name, still works.
        _merge(real_cluster, ns, "a", _annotations((APPLIED_HASH, "y")), token)
    finally:
        real_cluster.delete("namespaces", None, other)
