"""What only a real kube-apiserver shows: the CRD schema and its CEL rules enforced on
write, unknown fields refused, status written only through ``/status``, the CronJob
controller starting Jobs, and the operator's watches resuming after the apiserver
crashes and restarts (every stream cut; kopf resumes against a new, empty watch cache).

The emulator accepted all of these silently; here the real server decides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _policy, _profile, _wait_timeout, _yaml

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess(real_cluster, name="cp-apiserver").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def _refused(cluster: RealCluster, doc: dict[str, object]) -> str:
    out = cluster.kubectl("apply", "-f", "-", stdin=_yaml(doc), check=False)
    assert "created" not in out and "configured" not in out, out
    return out


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"timeouts": {"request": "soon"}}, "spec.timeouts.request"),
        ({"timeouts": {"request": "5s"}, "bogus": 1}, "bogus"),
        ({"extends": "self-ref"}, "extends"),
    ],
    ids=["pattern", "unknown-field", "cel-rule"],
)
def test_crd_schema_refuses_a_bad_profile_naming_the_field(
    real_cluster: RealCluster, spec: dict[str, object], field: str
) -> None:
    ns = real_cluster.namespace()
    out = _refused(real_cluster, _profile(ns, "self-ref", spec))
    assert field in out, out
    assert real_cluster.get("timeoutprofiles", ns, "self-ref") is None


def test_cel_rule_refuses_ttl_longer_than_lifetime(real_cluster: RealCluster) -> None:
    ns = real_cluster.namespace()
    out = _refused(real_cluster, _policy(ns, "p", {"ttl": "2h", "maxLifetime": "1h"}))
    assert "Invalid value" in out and "spec" in out, out


def test_status_is_written_only_through_the_status_subresource(
    real_cluster: RealCluster,
) -> None:
    ns = real_cluster.namespace()
    forged = {"configHash": "forged", "observedGeneration": 99}
    real_cluster.apply(
        _yaml({**_profile(ns, "p", {"timeouts": {"request": "5s"}}), "status": forged})
    )
    created = real_cluster.get("timeoutprofiles", ns, "p")
    assert created is not None and "status" not in created
    real_cluster.patch("timeoutprofiles", ns, "p", {"status": forged})
    assert "status" not in (real_cluster.get("timeoutprofiles", ns, "p") or {})
    real_cluster.patch("timeoutprofiles", ns, "p", {"status": forged}, subresource="status")
    assert real_cluster.get("timeoutprofiles", ns, "p")["status"]["configHash"] == "forged"  # type: ignore[index]


@pytest.mark.slow
def test_cronjob_controller_starts_the_cleanup_job(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    """`* * * * *`: kube-controller-manager's CronJob controller creates a Job within a
    minute; its Pod stays Pending (no kubelet), so the command and env are checked on the
    Job object."""
    ns = real_cluster.namespace()
    store = {"urlSecretRef": {"name": "redis-creds", "key": "url"}}
    spec = {"store": store, "ttl": "10m", "cleanup": {"schedule": "* * * * *"}}
    real_cluster.apply(_yaml(_policy(ns, "sessions", spec)))
    cronjob = real_cluster.wait_for(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"), what="the CronJob"
    )
    jobs = real_cluster.wait_for(
        lambda: real_cluster.list("jobs", ns), timeout=100, interval=1.0, what="a scheduled Job"
    )
    job = jobs[0]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("CronJob", cronjob["metadata"]["uid"])
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["hourglass", "cleanup"] and ns in container["command"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "redis-creds"
    pods = real_cluster.wait_for(
        lambda: real_cluster.list("pods", ns, labelSelector=f"job-name={job['metadata']['name']}"),
        what="the Job's Pod",
    )
    assert pods[0]["status"]["phase"] == "Pending"


def test_watches_resume_after_the_apiserver_restarts(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    base = _profile(ns, "base", {"default": True, "timeouts": {"request": "30s"}})
    real_cluster.apply(_yaml(base))
    _wait_timeout(real_cluster, ns, "base", "request", 30)
    real_cluster.plane.restart_apiserver()
    base["spec"]["timeouts"]["request"] = "31s"  # type: ignore[index]
    real_cluster.apply(_yaml(base))
    _wait_timeout(real_cluster, ns, "base", "request", 31)
    assert operator.alive()
    cm = real_cluster.get("configmaps", ns, CONFIGMAP_NAME)
    assert cm is not None
    logged = [json.loads(line) for line in operator.log_lines() if line.startswith("{")]
    assert any(ns in r.get("message", "") for r in logged)
