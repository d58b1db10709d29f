"""What independent scanners check, enforced by the real API server (issue 15, item 10).

Monokle's PSS203 wants `runAsNonRoot` on every container, not only on the pod. The same
rule, as a ValidatingAdmissionPolicy on the real kube-apiserver, admits the sample agent
Deployments (server-side dry run). KBP107 is explained in manifests/README.md.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from tests.fixtures.controlplane import RealCluster

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
RULE = (
    "object.spec.template.spec.containers.all(c, has(c.securityContext) && "
    "has(c.securityContext.runAsNonRoot) && c.securityContext.runAsNonRoot == true)"
)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_sample_agents_pass_a_container_level_run_as_non_root_policy(
    real_cluster: RealCluster, env: str
) -> None:
    ns = real_cluster.namespace()
    name = f"pss203-{uuid.uuid4().hex[:8]}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            "validations": [
                {"expression": RULE, "message": "PSS203: runAsNonRoot on every container"}
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
            },
        },
    }
    real_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([policy, binding]))
    try:
        sample = yaml.safe_load(
            (REPO / f"manifests/samples/{env}/agent-deployment.yaml").read_text()
        )
        sample["metadata"]["namespace"] = ns
        pod_level = dict(sample["spec"]["template"]["spec"]["securityContext"])
        assert pod_level.get("runAsNonRoot") is True

        # The policy is live: a copy with the rule broken at container level is refused.
        broken = yaml.safe_load(yaml.safe_dump(sample))
        broken["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop(
            "runAsNonRoot", None
        )

        def refused() -> bool:
            out = real_cluster.kubectl(
                "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(broken), check=False
            )
            return "PSS203" in out

        real_cluster.wait_for(refused, timeout=20, what="the policy in force", interval=0.5)
        out = real_cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(sample), check=False
        )
        assert "PSS203" not in out and "created (server dry run)" in out, out
    finally:
        real_cluster.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            name,
            "--ignore-not-found",
        )


def test_readme_explains_kbp107_and_how_to_narrow_it() -> None:
    text = (REPO / "manifests/README.md").read_text()
    assert "KBP107" in text
    section = text[text.index("KBP107") :][:800]
    assert "CronJob" in section and "namespaced mode" in section
