"""The operator's admission policies are one text in every place we ship them (issue 27).

manifests/operator/admission-policy.yaml and session-store-policy.yaml are proven on the
real control plane (test_cp_operator_confinement.py, test_cp_session_store_opt_in.py);
the chart renders the same rules for its own ServiceAccount and image, and the image the
policy admits is the one the operator puts in its CronJobs.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from hourglass_operator.settings import DEFAULT_IMAGE

from tests.fixtures.k8s_schemas import CHART, MANIFESTS, load_all
from tests.fixtures.operator_process import SHIPPED_IMAGE

POLICY = MANIFESTS / "operator" / "admission-policy.yaml"
STORE_POLICY = MANIFESTS / "operator" / "session-store-policy.yaml"


def _docs(path: Any) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in load_all(path.read_text(encoding="utf-8"))}


def _chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name="hg", namespace="agents-prod")
    return [d for p, text in rendered.items() if p.endswith(".yaml") for d in load_all(text)]


def _image_of(expression: str) -> str:
    return str(yaml.safe_load(expression)).strip("'")


def test_the_manifests_admit_the_image_the_operator_deployment_runs() -> None:
    policy = _docs(POLICY)["ValidatingAdmissionPolicy"]
    image = _image_of(policy["spec"]["variables"][0]["expression"])
    deployment = _docs(MANIFESTS / "operator" / "deployment.yaml")["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert image == container["image"] == env["HOURGLASS_OPERATOR_IMAGE"]
    assert image == DEFAULT_IMAGE == SHIPPED_IMAGE


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_the_chart_renders_the_same_rules_for_its_account_and_image(scope: str) -> None:
    docs = _chart({"operator": {"watch": {"scope": scope}}})
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    bindings = {
        d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"
    }
    ours = policies["agents-prod.hg-hourglass-operator"]["spec"]
    shipped = _docs(POLICY)["ValidatingAdmissionPolicy"]["spec"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert _image_of(ours["variables"][0]["expression"]) == container["image"]
    assert ours["variables"][1:] == shipped["variables"][1:]
    assert ours["validations"] == shipped["validations"]
    assert ours["matchConstraints"] == shipped["matchConstraints"]
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    (condition,) = ours["matchConditions"]
    assert f"'system:serviceaccount:agents-prod:{account}'" in condition["expression"]

    store = policies["agents-prod.hg-hourglass-session-store"]["spec"]
    assert store == _docs(STORE_POLICY)["ValidatingAdmissionPolicy"]["spec"]
    shipped_binding = _docs(STORE_POLICY)["ValidatingAdmissionPolicyBinding"]["spec"]
    # A namespace-scoped release binds its policies to its own namespaces (issue 21), so a
    # second release's namespaces are judged by that release alone.
    scoped = {} if scope == "cluster" else {"matchResources": _namespaces("agents-prod")}
    assert bindings["agents-prod.hg-hourglass-session-store"]["spec"] == {
        **shipped_binding,
        "policyName": "agents-prod.hg-hourglass-session-store",
        **scoped,
    }
    assert bindings["agents-prod.hg-hourglass-operator"]["spec"] == {
        "policyName": "agents-prod.hg-hourglass-operator",
        "validationActions": ["Deny"],
        **scoped,
    }


def _namespaces(*names: str) -> dict[str, Any]:
    expression = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(names)}
    return {"namespaceSelector": {"matchExpressions": [expression]}}


def test_the_chart_policies_can_be_turned_off() -> None:
    docs = _chart({"rbac": {"admissionPolicy": False, "sessionStoreOptIn": False}})
    assert not [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]


def test_the_webhook_configuration_guard_comes_with_the_webhook() -> None:
    """Tested on the real control plane in test_cp_operator_webhook_helm.py."""
    names = {
        d["metadata"]["name"]
        for d in _chart({"operator": {"webhook": {"enabled": True}}})
        if d["kind"] == "ValidatingAdmissionPolicy"
    }
    assert "agents-prod.hg-hourglass-operator-webhook" in names
    without = {d["metadata"]["name"] for d in _chart() if d["kind"] == "ValidatingAdmissionPolicy"}
    assert "agents-prod.hg-hourglass-operator-webhook" not in without
