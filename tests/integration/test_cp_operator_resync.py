"""Work that must not be done only once (issue 15, item 6), on the real control plane.

A drift repair, a lastCleanup record and the re-render after a deletion each fail once
(a ValidatingAdmissionPolicy refuses the operator's write with 422), then the refusal
is lifted: each is retried until it succeeds, with no other event to help. A CronJob
deleted by hand (the operator watches no CronJobs) comes back with the periodic resync,
here every 5 s (HOURGLASS_RESYNC_SECONDS; 300 s by default).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from agent_lib.config.bundle import CONFIG_KEY, CONFIGMAP_NAME
from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._refusals import Refusal
from tests.integration._resources import _config, _configmap, _policy, _profile, _yaml

pytestmark = pytest.mark.timeout(150)
STORE = {"urlSecretRef": {"name": "redis", "key": "url"}}
RESYNC_S = 5


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster) -> Iterator[OperatorProcess]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_RESYNC_SECONDS", str(RESYNC_S))
        process = OperatorProcess(real_cluster, name="resync").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def _refused_once(cluster: RealCluster, refusal: Refusal, mark: int, resource: str) -> None:
    cluster.wait_for(
        lambda: refusal.refused_calls(mark, resource), timeout=30, what=f"a refused {resource}"
    )


def test_drift_repair_is_retried_until_it_succeeds(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    real_cluster.apply(
        _yaml(_profile(ns, "base", {"default": True, "timeouts": {"request": "7s"}}))
    )
    real_cluster.wait_for(lambda: _configmap(real_cluster, ns), what="the ConfigMap")
    refusal = Refusal(real_cluster, ns, "", "configmaps", "no ConfigMap writes now (test)").on()
    try:
        mark = real_cluster.audit_mark()
        real_cluster.patch("configmaps", ns, CONFIGMAP_NAME, {"data": {CONFIG_KEY: "edited: 1\n"}})
        _refused_once(real_cluster, refusal, mark, "configmaps")
    finally:
        refusal.off()
    real_cluster.wait_for(
        lambda: "profiles" in yaml.safe_load(_configmap(real_cluster, ns)["data"][CONFIG_KEY]),
        timeout=90,
        what="the hand edit repaired after the refusal was lifted",
    )
    assert _config(real_cluster, ns)["profiles"]["base"]["timeouts"]["request"] == 7


def test_deletion_rerender_is_retried_until_it_succeeds(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    real_cluster.apply(
        _yaml(_profile(ns, "base", {"default": True}), _profile(ns, "gone", {"extends": "base"}))
    )
    real_cluster.wait_for(
        lambda: _configmap(real_cluster, ns) and "gone" in _config(real_cluster, ns)["profiles"],
        what="both profiles rendered",
    )
    refusal = Refusal(real_cluster, ns, "", "configmaps", "no ConfigMap writes now (test)").on()
    try:
        mark = real_cluster.audit_mark()
        real_cluster.delete("timeoutprofiles", ns, "gone")
        _refused_once(real_cluster, refusal, mark, "configmaps")
        time.sleep(10)  # longer than the few quick retries a one-shot handler could make
    finally:
        refusal.off()
    real_cluster.wait_for(
        lambda: "gone" not in _config(real_cluster, ns)["profiles"],
        timeout=90,
        what="the re-render without the deleted profile",
    )


def test_last_cleanup_record_is_retried_until_it_succeeds(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    real_cluster.apply(_yaml(_policy(ns, "sessions", {"ttl": "10m", "store": STORE})))
    real_cluster.wait_for(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"), what="the CronJob"
    )
    refusal = Refusal(
        real_cluster, ns, "hourglass.dev", "sessionpolicies/status", "no status now (test)"
    ).on()
    try:
        mark = real_cluster.audit_mark()
        job = real_cluster.run_cleanup_job(ns, json.dumps({"scanned": 3, "expired": 2}))
        _refused_once(real_cluster, refusal, mark, "sessionpolicies")
    finally:
        refusal.off()
    last = real_cluster.wait_for(
        lambda: (
            (real_cluster.get("sessionpolicies", ns, "sessions") or {})
            .get("status", {})
            .get("lastCleanup")
        ),
        timeout=90,
        what="lastCleanup recorded after the refusal was lifted",
    )
    assert last["job"] == job
    assert last["summary"] == {"scanned": 3, "expired": 2}


def test_a_cronjob_deleted_by_hand_comes_back_with_the_resync(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    real_cluster.apply(_yaml(_policy(ns, "sessions", {"ttl": "10m", "store": STORE})))
    first = real_cluster.wait_for(
        lambda: real_cluster.get("cronjobs", ns, "hourglass-cleanup"), what="the CronJob"
    )
    real_cluster.delete("cronjobs", ns, "hourglass-cleanup")
    again = real_cluster.wait_for(
        lambda: (
            (cj := real_cluster.get("cronjobs", ns, "hourglass-cleanup"))
            and cj["metadata"]["uid"] != first["metadata"]["uid"]
            and cj
        ),
        timeout=RESYNC_S * 6,
        what="the CronJob re-created by the resync",
    )
    assert again["spec"]["schedule"] == first["spec"]["schedule"]


def test_resync_puts_no_finalizer_on_the_resources(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    """The resync is one loop, not a kopf timer per resource (kopf gives every timed
    resource its finalizer): a profile deletes even while no operator runs."""
    ns = real_cluster.namespace()
    real_cluster.apply(_yaml(_profile(ns, "base", {"default": True})))
    real_cluster.wait_for(lambda: _configmap(real_cluster, ns), what="rendered")
    time.sleep(RESYNC_S + 1)  # at least one resync round has run over this namespace
    profile = real_cluster.get("timeoutprofiles", ns, "base")
    assert profile is not None and not profile["metadata"].get("finalizers")
