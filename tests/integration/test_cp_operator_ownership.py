"""Owner references under OwnerReferencesPermissionEnforcement (issue 15, item 3).

The real kube-apiserver runs with the plugin on. The operator, as its own ServiceAccount
under the shipped RBAC, goes through a namespace's whole life: create, update, a second
profile joining the ConfigMap's owners, a SessionPolicy's CronJob (blockOwnerDeletion),
the last profile leaving, deletion; the garbage collector removes what is owned. Not one
request is refused (403).

Why RBAC rather than another ownership design: ownerReferences are what make the
ConfigMap and the CronJob go away with their resources without a finalizer (deletion
never waits for the operator), and blockOwnerDeletion keeps foreground deletion
ordered. The plugin only asks that whoever sets them may delete the object and update
the owner's finalizers: `update` on `<kind>/finalizers` (a permission check, never a
request) and `delete` on the one ConfigMap named hourglass-config. Dropping
blockOwnerDeletion or owners would trade that for a cleanup loop of our own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _configmap, _policy, _profile, _wait_timeout, _yaml

pytestmark = pytest.mark.timeout(150)
STORE = {"urlSecretRef": {"name": "redis", "key": "url"}}


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess(real_cluster, name="ownership").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def _owners(cluster: RealCluster, ns: str) -> set[str]:
    cm = _configmap(cluster, ns) or {}
    return {o["name"] for o in cm.get("metadata", {}).get("ownerReferences", [])}


def _discovery_lag(refusal: str) -> bool:
    """The ownership plugin's own lag, not a permission: it maps an owner's kind through
    the apiserver's cached discovery, which learns a new CRD late (it is reset on a timer).
    Until then it refuses blockOwnerDeletion with "no matches for kind"; the operator's
    retry lands once the cache knows the kind (the CronJob wait above proves it did)."""
    return "no matches for kind" in refusal and "hourglass.dev" in refusal


def test_every_ownership_change_passes_the_admission_plugin(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    mark = real_cluster.audit_mark()
    wait = real_cluster.wait_for

    real_cluster.apply(
        _yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "10s"}}))
    )
    wait(lambda: _owners(real_cluster, ns) == {"base"}, what="created: owned by base")

    real_cluster.apply(
        _yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "20s"}}))
    )
    _wait_timeout(real_cluster, ns, "base", "request", 20)

    real_cluster.apply(_yaml(_profile(ns, "slow", {"extends": "base"})))
    wait(lambda: _owners(real_cluster, ns) == {"base", "slow"}, what="a second owner joined")

    real_cluster.apply(_yaml(_policy(ns, "sessions", {"ttl": "10m", "store": STORE})))
    # The CronJob passes two admission policies (the operator's and the Secret opt-in);
    # on a loaded CI machine the first try can be refused and retried with backoff.
    cronjob = wait(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"), timeout=90, what="CronJob"
    )
    ref = cronjob["metadata"]["ownerReferences"][0]
    assert (ref["name"], ref["blockOwnerDeletion"]) == ("sessions", True)
    wait(lambda: _owners(real_cluster, ns) == {"base", "slow", "sessions"}, what="3 owners")

    real_cluster.delete("timeoutprofiles", ns, "slow")
    wait(lambda: _owners(real_cluster, ns) == {"base", "sessions"}, what="an owner left")

    real_cluster.delete("sessionpolicies", ns, "sessions")
    wait(lambda: _owners(real_cluster, ns) == {"base"}, what="the policy left the owners")
    wait(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup") is None,
        timeout=90,
        what="the garbage collector removing the CronJob",
    )

    real_cluster.delete("timeoutprofiles", ns, "base")  # the last one
    wait(
        lambda: real_cluster.get("configmaps", ns, CONFIGMAP_NAME) is None,
        timeout=90,
        what="the garbage collector removing the ConfigMap",
    )
    assert [r for r in real_cluster.forbidden(since=mark) if not _discovery_lag(r)] == []
    calls = real_cluster.audited(since=mark)
    assert any((e.get("objectRef") or {}).get("namespace") == ns for e in calls)
