"""A small fleet on the real control plane (issue 21): 50 namespaces, each with a profile
and a policy, and 200 agent Pods in one of them, played by the fleet driver
(`tests.fixtures.fleet`; the full sizes run in ``python -m bench --only fleet``).

- A rollout reaches 200/200, and costs a handful of status writes however long the pods
  take to report: here they report one by one over about 4 s. Before issue 21 each
  0.2 s debounce window wrote both statuses (about 40 writes for this rollout).
- An idle resync round reads the operator's objects in a few paged lists, not one GET of
  the ConfigMap, the CronJob and the Jobs per namespace (before: at least 50 GETs of
  each kind per round here; 6,000 requests per round with 2,000 namespaces).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fixtures.controlplane import RealCluster
from tests.fixtures.fleet import AgentDriver, Fleet, operator_calls, status_writes
from tests.fixtures.operator_process import OperatorProcess

pytestmark = pytest.mark.timeout(180)
NAMESPACES = 50
PODS = 200
PACE_S = 0.02
"""One pod reports every 20 ms: the rollout lasts about 4 s (more on a loaded machine)."""
RESYNC_S = 4
STATUS_WRITES_BOUND = 12
"""Two resources, each written at most every 3 s while pods are pending, plus the last."""
SETTLE_S = 2.0


@pytest.fixture(scope="module")
def fleet(real_cluster: RealCluster) -> Iterator[Fleet]:
    harness = Fleet(real_cluster)
    names = [f"small-fleet-{n:02d}" for n in range(NAMESPACES)]
    harness.run(harness.namespaces(names))
    harness.run(harness.pods(names[0], [f"agent-{i:03d}" for i in range(PODS)]))
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="module")
def operator(real_cluster: RealCluster, fleet: Fleet) -> Iterator[OperatorProcess]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_RESYNC_SECONDS", str(RESYNC_S))
        process = OperatorProcess(real_cluster, name="fleet", verbose=False).start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def _complete(fleet: Fleet, namespace: str) -> bool:
    rollout = fleet.run(fleet.rollout(namespace))
    digest = fleet.run(fleet.config_hash(namespace))
    return bool(digest) and rollout.get("hash") == digest and rollout.get("applied") == "200/200"


def _wait_reconciled(cluster: RealCluster, fleet: Fleet) -> None:
    """Until the operator's first reconcile of every namespace is over: on a slow machine
    the first rollout in one namespace can finish while others are still being created."""
    names = [f"small-fleet-{n:02d}" for n in range(NAMESPACES)]
    cluster.wait_for(
        lambda: all(fleet.run(fleet.gather(fleet.reconciled(ns) for ns in names))),
        timeout=120,
        what="every namespace reconciled",
    )


def test_a_paced_rollout_reaches_every_pod_in_a_handful_of_status_writes(
    real_cluster: RealCluster, fleet: Fleet, operator: OperatorProcess
) -> None:
    ns = "small-fleet-00"
    driver = AgentDriver(fleet, {ns: [f"agent-{i:03d}" for i in range(PODS)]}, PACE_S).start()
    try:
        real_cluster.wait_for(lambda: _complete(fleet, ns), timeout=90, what="the first rollout")
        _wait_reconciled(real_cluster, fleet)
        first = fleet.run(fleet.config_hash(ns))
        mark = real_cluster.audit_mark()
        fleet.run(fleet.set_request(ns, 21))
        real_cluster.wait_for(
            lambda: fleet.run(fleet.config_hash(ns)) != first and _complete(fleet, ns),
            timeout=90,
            what="the rollout of the new config to 200/200",
        )
        time.sleep(SETTLE_S)
    finally:
        driver.stop()
    calls = operator_calls(real_cluster, mark, namespace=ns)
    writes = status_writes(calls)
    assert 2 <= writes <= STATUS_WRITES_BOUND, calls


def test_an_idle_resync_round_lists_instead_of_reading_each_namespace(
    real_cluster: RealCluster, fleet: Fleet, operator: OperatorProcess
) -> None:
    _wait_reconciled(real_cluster, fleet)
    time.sleep(RESYNC_S)
    mark = real_cluster.audit_mark()
    time.sleep(3 * RESYNC_S)  # at least two rounds
    calls = operator_calls(real_cluster, mark)
    assert calls["list cronjobs"] >= 2, calls  # the rounds ran
    reads = calls["get configmaps"] + calls["get cronjobs"] + calls["list jobs"]
    assert reads < NAMESPACES, calls
