"""The agent side of manifests/ and the chart: the agents' ServiceAccount, Role and
admission policy, and the sample agent Deployment that uses them (real Helm engine,
real Kubernetes schemas)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.fixtures.k8s_schemas import CHART, MANIFESTS, assert_valid, load_all

ENVIRONMENTS = ("dev", "staging", "prod")
POLICY = MANIFESTS / "agents" / "admission-policy.yaml"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _chart_docs(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = chart.render(values, name="hourglass-prod", namespace="agents-prod", is_install=True)
    return [d for path, text in rendered.items() if path.endswith(".yaml") for d in load_all(text)]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sample_agents_run_as_the_bound_service_account(env: str) -> None:
    (deployment,) = load_all((MANIFESTS / "samples" / env / "agent-deployment.yaml").read_text())
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["hourglass.dev/config"] == "hourglass-config"
    pod = template["spec"]
    assert pod["serviceAccountName"] == "hourglass-agent"
    assert pod["automountServiceAccountToken"] is True
    env_vars = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env_vars["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env_vars["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env_vars["HOURGLASS_CONFIG_WATCH"]["value"] == "auto"

    docs = load_all((MANIFESTS / "samples" / env / "agent-rbac.yaml").read_text())
    (account,) = _by_kind(docs, "ServiceAccount")
    (role,) = _by_kind(docs, "Role")
    (binding,) = _by_kind(docs, "RoleBinding")
    assert account["metadata"]["name"] == pod["serviceAccountName"]
    assert {d["metadata"]["namespace"] for d in docs} == {deployment["metadata"]["namespace"]}
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["hourglass-config"],
            "verbs": ["get", "watch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hourglass-agent", "namespace": f"agents-{env}"}
    ]


def test_the_admission_policy_is_installed_with_the_operator() -> None:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    assert "agents/admission-policy.yaml" in listed
    policy, binding = load_all(POLICY.read_text())
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert policy["spec"]["failurePolicy"] == "Fail"
    (condition,) = policy["spec"]["matchConditions"]
    assert ":hourglass-agent" in condition["expression"]


def test_chart_agents_are_optional(chart: helm.Chart) -> None:
    docs = _chart_docs(chart, {})
    assert not [
        d
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "agent"
    ]


def test_chart_agents_match_the_manifests(chart: helm.Chart) -> None:
    values = {"agents": {"rbac": {"create": True}, "admissionPolicy": {"create": True}}}
    docs = _chart_docs(chart, values)
    for doc in docs:
        assert_valid(doc, "chart with agents")
    (role,) = [d for d in _by_kind(docs, "Role") if d["metadata"]["name"] == "hourglass-agent"]
    sample = _by_kind(load_all((MANIFESTS / "samples/prod/agent-rbac.yaml").read_text()), "Role")
    assert role["rules"] == sample[0]["rules"]
    (binding,) = [
        d for d in _by_kind(docs, "RoleBinding") if d["metadata"]["name"] == "hourglass-agent"
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hourglass-agent", "namespace": "agents-prod"}
    ]
    (policy,) = [
        d
        for d in _by_kind(docs, "ValidatingAdmissionPolicy")
        if d["metadata"]["name"].endswith("-agents")
    ]
    (policy_binding,) = [
        d
        for d in _by_kind(docs, "ValidatingAdmissionPolicyBinding")
        if d["metadata"]["name"].endswith("-agents")
    ]
    assert policy_binding["spec"]["policyName"] == policy["metadata"]["name"]
    shipped, _ = load_all(POLICY.read_text())
    for key in ("variables", "validations", "matchConstraints", "failurePolicy"):
        assert policy["spec"][key] == shipped["spec"][key], key
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        "request.userInfo.username == 'system:serviceaccount:agents-prod:hourglass-agent'"
    )


def test_chart_agents_of_every_owned_namespace(chart: helm.Chart) -> None:
    """A release that owns several namespaces (issue 21: one release per group of
    environments) gives the agents of each their RBAC, and its policy confines them all."""
    owned = ["agents-prod", "agents-prod-eu"]
    values = {
        "operator": {"watch": {"scope": "namespaces", "namespaces": owned}},
        "agents": {"rbac": {"create": True}, "admissionPolicy": {"create": True}},
    }
    docs = _chart_docs(chart, values)
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        agents = [d for d in _by_kind(docs, kind) if d["metadata"]["name"] == "hourglass-agent"]
        assert sorted(d["metadata"]["namespace"] for d in agents) == owned, kind
    bindings = [
        d for d in _by_kind(docs, "RoleBinding") if d["metadata"]["name"] == "hourglass-agent"
    ]
    assert [b["subjects"][0]["namespace"] for b in bindings] == [
        b["metadata"]["namespace"] for b in bindings
    ]
    (policy,) = [
        d
        for d in _by_kind(docs, "ValidatingAdmissionPolicy")
        if d["metadata"]["name"].endswith("-agents")
    ]
    (condition,) = policy["spec"]["matchConditions"]
    accounts = ", ".join(f"'system:serviceaccount:{ns}:hourglass-agent'" for ns in owned)
    assert condition["expression"] == f"request.userInfo.username in [{accounts}]"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_values_ship_the_agents_objects(chart: helm.Chart, env: str) -> None:
    values = yaml.safe_load((CHART / f"values-{env}.yaml").read_text())
    docs = _chart_docs(chart, values)
    assert _by_kind(docs, "ValidatingAdmissionPolicy")
    assert [
        d for d in _by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "hourglass-agent"
    ]


def test_notes_show_the_agent_pod_settings(chart: helm.Chart) -> None:
    rendered = chart.render({}, name="hourglass-prod", namespace="agents-prod")
    notes = next(v for k, v in rendered.items() if k.endswith("NOTES.txt"))
    for needle in (
        "serviceAccountName: hourglass-agent",
        "hourglass.dev/config: hourglass-config",
        "fieldPath: metadata.name",
        "POD_NAMESPACE",
    ):
        assert needle in notes, needle
