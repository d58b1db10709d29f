"""`hourglass operator --namespace NS ...`: only those namespaces are served."""

from __future__ import annotations

import kubernetes
import pytest
import yaml

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.fixtures.k8s_emulator import Cluster, OperatorProcess, check_api_calls

pytestmark = pytest.mark.timeout(90)


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
            "spec": {"ttl": "5m", "cleanup": {"schedule": schedule}},
        }
    )


def test_only_the_given_namespaces_are_reconciled(k8s_cluster: Cluster) -> None:
    # kubectl sends core objects as protobuf, which the emulator cannot read: the
    # namespaces are created through the `kubernetes` client (JSON) instead.
    core = kubernetes.client.CoreV1Api(k8s_cluster.client())
    for ns in ("team-a", "team-b", "elsewhere"):
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for ns in ("team-a", "team-b"):
        k8s_cluster.apply(
            yaml.safe_dump({**PEERING, "metadata": {"name": "hourglass", "namespace": ns}})
        )
    operator = OperatorProcess(
        k8s_cluster, "--namespace", "team-a", "--namespace", "team-b", "--peering", "hourglass"
    ).start()
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
        calls = k8s_cluster.operator_calls()
        scoped = [c for c in calls if c.group == "hourglass.dev" and c.verb in ("list", "watch")]
        assert scoped and all(c.namespaced for c in scoped)
    finally:
        operator.stop()
    check_api_calls(k8s_cluster, mode="namespaced")
