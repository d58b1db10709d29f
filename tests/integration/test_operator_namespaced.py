"""`hourglass operator --namespace NS ...`: only those namespaces are served.

On the real control plane, under a ServiceAccount bound by exactly the shipped
namespaced RBAC (manifests/rbac/namespaced/, with the namespaces and the subject
renamed for this test): a call those Roles do not allow is a 403 and fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.fixtures.controlplane import OPERATOR_NS
from tests.fixtures.controlplane import RealCluster as Cluster
from tests.fixtures.operator_process import OperatorProcess, check_api_calls

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def k8s_cluster(real_cluster: Cluster) -> Cluster:
    """The real control plane; the operator runs as its ServiceAccount (RBAC enforced)."""
    return real_cluster


SA = "hourglass-operator-namespaced-test"
RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac" / "namespaced"


def _namespaced_rbac(namespaces: tuple[str, ...]) -> str:
    """The shipped namespaced RBAC for ``namespaces``, bound to this test's ServiceAccount."""
    docs = [d for d in yaml.safe_load_all((RBAC / "clusterrole.yaml").read_text()) if d]
    template = [d for d in yaml.safe_load_all((RBAC / "roles.yaml").read_text()) if d]
    first_ns = template[0]["metadata"]["namespace"]
    for ns in namespaces:
        for doc in template:
            if doc["metadata"].get("namespace") == first_ns:
                copy = yaml.safe_load(yaml.safe_dump(doc))
                copy["metadata"]["namespace"] = ns
                docs.append(copy)
    for doc in docs:
        if doc["kind"].endswith("Binding"):
            doc["metadata"]["name"] += "-test"
            doc["subjects"] = [{"kind": "ServiceAccount", "name": SA, "namespace": OPERATOR_NS}]
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SA, "namespace": OPERATOR_NS},
    }
    return yaml.safe_dump_all([sa, *docs, *_admission_policy()])


def _admission_policy() -> list[dict[str, Any]]:
    """The shipped operator admission policy (issue 27), for this test's ServiceAccount:
    the namespaced mode meets it too, with no refusal."""
    shipped = RBAC.parents[1] / "operator" / "admission-policy.yaml"
    docs = [d for d in yaml.safe_load_all(shipped.read_text()) if d]
    for doc in docs:
        doc["metadata"]["name"] += "-namespaced-test"
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["policyName"] += "-namespaced-test"
        for condition in doc["spec"].get("matchConditions", []):
            condition["expression"] = condition["expression"].replace(
                ":hourglass-operator'", f":{SA}'"
            )
            assert SA in condition["expression"]
    return docs


def _profile(ns: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "TimeoutProfile",
            "metadata": {"name": "base", "namespace": ns},
            "spec": {"default": True, "timeouts": {"request": "4s"}},
        }
    )


PEERING = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering"}


def _policy(ns: str, schedule: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "SessionPolicy",
            "metadata": {"name": "sessions", "namespace": ns},
            "spec": {
                "store": {"urlSecretRef": {"name": "redis", "key": "url"}},
                "ttl": "5m",
                "cleanup": {"schedule": schedule},
            },
        }
    )


def test_only_the_given_namespaces_are_reconciled(k8s_cluster: Cluster) -> None:
    for ns in ("team-a", "team-b", "elsewhere"):
        k8s_cluster.namespace(ns)
    k8s_cluster.apply(_namespaced_rbac(("team-a", "team-b")))
    for ns in ("team-a", "team-b"):
        k8s_cluster.apply(
            yaml.safe_dump({**PEERING, "metadata": {"name": "hourglass", "namespace": ns}})
        )
    operator = OperatorProcess(
        k8s_cluster,
        "--namespace",
        "team-a",
        "--namespace",
        "team-b",
        "--peering",
        "hourglass",
        service_account=SA,
    ).start(timeout=60)
    try:
        for ns in ("elsewhere", "team-a", "team-b"):
            k8s_cluster.apply(_profile(ns))
        for ns in ("team-a", "team-b"):
            k8s_cluster.wait_for(
                lambda n=ns: k8s_cluster.get("configmaps", n, CONFIGMAP_NAME), what=f"{ns} rendered"
            )
        # Both watched namespaces are done, so "elsewhere" would have been too by now.
        assert k8s_cluster.get("configmaps", "elsewhere", CONFIGMAP_NAME) is None

        # The cleanup path in this mode too: CronJob created and updated, a run recorded.
        k8s_cluster.apply(_policy("team-a", "*/5 * * * *"))
        k8s_cluster.wait_for(lambda: k8s_cluster.get("cronjobs", "team-a", "hourglass-cleanup"))
        k8s_cluster.apply(_policy("team-a", "*/9 * * * *"))
        k8s_cluster.wait_for(
            lambda: (
                (k8s_cluster.get("cronjobs", "team-a", "hourglass-cleanup") or {})["spec"][
                    "schedule"
                ]
                == "*/9 * * * *"
            ),
            what="the CronJob updated",
        )
        job = k8s_cluster.run_cleanup_job("team-a", '{"scanned": 1}')
        k8s_cluster.wait_for(
            lambda: (
                (k8s_cluster.get("sessionpolicies", "team-a", "sessions") or {})
                .get("status", {})
                .get("lastCleanup", {})
                .get("job")
                == job
            ),
            what="lastCleanup",
        )
        calls = k8s_cluster.operator_calls_since(0, service_account=SA)
        scoped = [c for c in calls if c.group == "hourglass.dev" and c.verb in ("list", "watch")]
        assert scoped and all(c.namespaced for c in scoped)
    finally:
        operator.stop()
    user = f"system:serviceaccount:{OPERATOR_NS}:{SA}"
    assert k8s_cluster.forbidden(user=user) == []
    check_api_calls(
        k8s_cluster,
        mode="namespaced",
        calls=k8s_cluster.operator_calls_since(0, service_account=SA),
    )
