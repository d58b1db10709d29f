"""A write the API server refuses for good, on the real control plane (issue 15, item 2).

A ValidatingAdmissionPolicy refuses the operator's CronJob with 422. The SessionPolicy
says so (Ready=False, the server's message), a Warning Event says so, the profiles of
the namespace are still rendered, and the operator does not hammer the API server:
it retries after growing delays (15 s, 30 s, ... up to 5 min), not every 5 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._refusals import Refusal
from tests.integration._resources import _condition, _configmap, _policy, _profile, _yaml

pytestmark = pytest.mark.timeout(120)
STORE = {"urlSecretRef": {"name": "redis", "key": "url"}}


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess(real_cluster, name="refusals").start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def test_refused_cronjob_sets_ready_false_posts_a_warning_and_backs_off(
    real_cluster: RealCluster, operator: OperatorProcess
) -> None:
    ns = real_cluster.namespace()
    refusal = Refusal(
        real_cluster, ns, "batch", "cronjobs", "cleanup CronJobs are not allowed here (test)"
    ).on()
    try:
        mark = real_cluster.audit_mark()
        real_cluster.apply(
            _yaml(
                _profile(ns, "base", {"default": True}),
                _policy(ns, "sessions", {"ttl": "10m", "store": STORE}),
            )
        )

        def refused_ready() -> dict[str, str]:
            ready = _condition(real_cluster.get("sessionpolicies", ns, "sessions"), "Ready")
            return ready if ready.get("reason") == "WriteRefused" else {}

        ready = real_cluster.wait_for(refused_ready, timeout=60, what="Ready=False WriteRefused")
        assert ready["status"] == "False"
        assert "cleanup CronJobs are not allowed here (test)" in ready["message"]
        assert "422" in ready["message"]
        warnings = real_cluster.wait_for(
            lambda: [
                e
                for e in real_cluster.events(ns, "sessions")
                if e["type"] == "Warning" and e["reason"] == "WriteRefused"
            ],
            what="a WriteRefused Warning Event",
        )
        assert "not allowed here" in warnings[0]["message"]
        # The ConfigMap is not what was refused: the profile is rendered and Ready.
        assert _configmap(real_cluster, ns) is not None
        profile = real_cluster.get("timeoutprofiles", ns, "base")
        assert _condition(profile, "Ready").get("status") == "True"

        # Backing off: over the next 20 s, at most one more try (a 5 s loop makes 4+).
        first = refusal.refused_calls(mark, "cronjobs")
        assert first, "the CronJob create was not refused by the admission policy"
        since = real_cluster.audit_mark()
        time.sleep(20)
        again = refusal.refused_calls(since, "cronjobs")
        assert len(again) <= 1, f"{len(again)} refused tries in 20 s: no backoff"
    finally:
        refusal.off()
