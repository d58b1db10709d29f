"""Fleet scale on the real control plane (issue 21): thousands of namespaces and agent Pods.

One kube-apiserver (tests/controlplane), the operator under its ServiceAccount, and the
fleet harness (`tests.fixtures.fleet`): agent Pod objects played by a driver that patches
their ``applied-hash`` as agents do, beside real agent_lib processes for a sample.

- ``rollout_2000_pods_s``: a TimeoutProfile patch until its ``status.rollout`` reads
  2000/2000 for the new hash, 2,000 Pods in one namespace (3 of them real agent_lib
  processes), median of 3 rollouts (``--quick``: 200 Pods, 2 rollouts; ``fleet_rollout_pods``
  says which).
- ``status_writes_per_rollout_2000_pods``: the operator's status patches in that namespace
  (profile and policy together) per rollout, from the audit log, the most of the rollouts.
- ``cr_to_agent_p99_ms_1000_watchers``: a TimeoutProfile patch until the slowest of 1,000
  agent_lib API watches (`ConfigMapWatch`, one thread and connection each) has the new
  revision, p99 of 20 patches (``--quick``: 100 watches, 10 patches).
- ``operator_rss_mib_10k_pods``: the operator's RSS after 10,000 Pods over 100 namespaces
  were listed and rolled out once (``--quick``: 1,000 over 10); ``operator_rss_idle_mib``:
  the same operator before any Pod existed (goal: at most 1.5 times). It runs last and
  serves every namespace of the run (about 2,100).
- ``cold_start_apiserver_2000_namespaces_s``: launching the operator until all 2,000
  namespaces (a profile and a policy each) are rendered (``--quick``: 200).
- ``operator_idle_requests_per_min_2000_namespaces``: the operator's requests per minute
  once settled, from the audit log, with the default 5-minute resync: requests outside
  the resync over the window, plus one resync round (``resync_requests_per_round_2000_
  namespaces``, measured with a short resync interval) spread over 5 minutes.

The control plane, the operator and this process share the machine's two cores.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psutil
from hourglass_operator.settings import DEFAULT_RESYNC_S

from agent_lib.config.bundle import CONFIGMAP_NAME
from tests.controlplane._build import BuildError, cached_bin_dir
from tests.controlplane._run import ControlPlane
from tests.fixtures.agent_pods import AgentPod, agent_rbac
from tests.fixtures.controlplane import RealCluster, install, poll
from tests.fixtures.fleet import (
    AgentDriver,
    ApiWatchers,
    Fleet,
    operator_call_log,
    operator_calls,
    revision_of,
    status_writes,
)
from tests.fixtures.operator_process import OperatorProcess

SAMPLE_AGENTS = 3
"""Pods of the rollout namespace played by real agent_lib processes (API watch, pod report)."""
SETTLE_S = 3.0
"""After a rollout completes, late status writes are still counted for this long."""
RESYNC_PROBE_S = 20
"""The resync interval while its cost is measured (the default is 300 s)."""

_RESYNC_CALLS = frozenset(
    f"{verb} {kind}" for verb in ("get", "list") for kind in ("configmaps", "cronjobs", "jobs")
)
"""What a resync round reads (before issue 21: a GET of each per namespace)."""


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {
            "pods": 200,
            "rounds": 2,
            "watchers": 100,
            "patches": 10,
            "spread_ns": 10,
            "spread_pods": 100,
            "namespaces": 200,
            "idle_s": 30,
            "resync_s": 10,
        }
    return {
        "pods": 2000,
        "rounds": 3,
        "watchers": 1000,
        "patches": 20,
        "spread_ns": 100,
        "spread_pods": 100,
        "namespaces": 2000,
        "idle_s": 60,
        "resync_s": RESYNC_PROBE_S,
    }


def _rss_mib(operator: OperatorProcess) -> float:
    assert operator._process is not None
    return float(psutil.Process(operator._process.pid).memory_info().rss) / 2**20


def _cpu_s(operator: OperatorProcess) -> float:
    assert operator._process is not None
    times = psutil.Process(operator._process.pid).cpu_times()
    return float(times.user + times.system)


def _complete(fleet: Fleet, namespace: str, total: int) -> bool:
    """Whether the profile's rollout is of the ConfigMap's hash and reads total/total."""
    rollout = fleet.run(fleet.rollout(namespace))
    digest = fleet.run(fleet.config_hash(namespace))
    return bool(
        digest
        and rollout.get("hash") == digest
        and rollout.get("updated") == rollout.get("total") == total
    )


def rollouts(cluster: RealCluster, fleet: Fleet, pods: int, rounds: int) -> dict[str, float]:
    """Rollouts over ``pods`` Pods in one namespace: seconds and status writes each."""
    ns = "fleet-rollout"
    fleet.run(fleet.namespace(ns))
    cluster.apply(agent_rbac(ns))
    driven = [f"agent-{i:05d}" for i in range(pods - SAMPLE_AGENTS)]
    fleet.run(fleet.pods(ns, driven))
    with ExitStack() as stack:
        operator = OperatorProcess(cluster, name="fleet-rollout", verbose=False).start(60)
        stack.callback(operator.stop)
        driver = AgentDriver(fleet, {ns: driven}).start()
        stack.callback(driver.stop)
        for i in range(SAMPLE_AGENTS):
            agent = AgentPod(cluster, ns, f"real-agent-{i}")
            stack.callback(agent.stop)
            agent.start(timeout=60)
        poll(lambda: _complete(fleet, ns, pods), 600, f"the first rollout to {pods} pods")
        seconds, writes = [], []
        for i in range(rounds):
            mark = cluster.audit_mark()
            started = time.perf_counter()
            fleet.run(fleet.set_request(ns, 11 + i))
            time.sleep(0.5)  # the ConfigMap's new hash is what completion is judged by
            poll(lambda: _complete(fleet, ns, pods), 600, f"rollout {i} to {pods} pods")
            seconds.append(time.perf_counter() - started)
            time.sleep(SETTLE_S)
            writes.append(status_writes(operator_calls(cluster, mark)))
        return {
            "rollout_2000_pods_s": statistics.median(seconds),
            "rollout_2000_pods_max_s": max(seconds),
            "status_writes_per_rollout_2000_pods": float(max(writes)),
            "fleet_rollout_pods": float(pods),
            "fleet_rollout_driver_patches": float(driver.patches),
        }


def fan_out(cluster: RealCluster, fleet: Fleet, watchers: int, patches: int) -> dict[str, float]:
    """A profile patch until ``watchers`` agent_lib API watches have the new revision."""
    ns = "fleet-watchers"
    fleet.run(fleet.namespace(ns, policy_too=False))
    cluster.apply(agent_rbac(ns))
    fleet.run(fleet.pods(ns, ["watched-agent"]))
    with ExitStack() as stack:
        operator = OperatorProcess(cluster, name="fleet-watch", verbose=False).start(60)
        stack.callback(operator.stop)
        poll(lambda: cluster.get("configmaps", ns, CONFIGMAP_NAME), 120, "the first render")
        group = ApiWatchers(cluster, ns, "watched-agent", watchers).start()
        stack.callback(group.stop)
        poll(group.watching, 300, f"{watchers} API watches")
        measured = []
        for i in range(patches):
            before = revision_of(cluster.get("configmaps", ns, CONFIGMAP_NAME)) or 0
            started = time.time()
            fleet.run(fleet.set_request(ns, 11 + i))

            def arrived(before: int = before) -> list[float] | None:
                newer = [r for r in list(group.arrivals) if r > before]
                return group.all_got(max(newer)) if newer else None

            times = poll(arrived, 60, f"patch {i} in {watchers} watches", interval=0.01)
            measured.append((max(times) - started) * 1000)
        ordered = sorted(measured)
        return {
            "cr_to_agent_p99_ms_1000_watchers": ordered[max(0, -(-99 * len(ordered) // 100) - 1)],
            "cr_to_agent_p50_ms_1000_watchers": statistics.median(measured),
            "fleet_api_watchers": float(watchers),
            "fleet_api_watch_failing_streaks": float(sum(group.refusals.values())),
            "fleet_api_watch_429_streaks": float(group.refusals["429"]),
        }


def spread(cluster: RealCluster, fleet: Fleet, namespaces: int, per_ns: int) -> dict[str, float]:
    """RSS before any Pod, and after ``namespaces`` x ``per_ns`` Pods rolled out once."""
    names = [f"fleet-spread-{n:03d}" for n in range(namespaces)]
    fleet.run(fleet.namespaces(names))
    with ExitStack() as stack:
        operator = OperatorProcess(cluster, name="fleet-spread", verbose=False).start(60)
        stack.callback(operator.stop)
        poll(lambda: all(fleet.run(fleet.config_hash(n)) for n in names), 600, "renders")
        time.sleep(SETTLE_S)
        idle = _rss_mib(operator)
        cpu_before = _cpu_s(operator)
        pods = {n: [f"agent-{i:04d}" for i in range(per_ns)] for n in names}
        fleet.run(fleet.gather(fleet.pods(n, p) for n, p in pods.items()))
        driver = AgentDriver(fleet, pods).start()  # after the Pods: it reports at once
        stack.callback(driver.stop)
        total = namespaces * per_ns
        poll(lambda: driver.patches >= total, 600, "the driver's first reports")
        fleet.run(fleet.gather(fleet.set_request(n, 12) for n in names))
        poll(lambda: driver.patches >= 2 * total, 600, "the driver's second reports")
        poll(lambda: all(_complete(fleet, n, per_ns) for n in names), 600, "every rollout", 1)
        time.sleep(SETTLE_S)
        loaded = _rss_mib(operator)
        return {
            "operator_rss_mib_10k_pods": loaded,
            "operator_rss_idle_mib": idle,
            "operator_rss_ratio_10k_pods": loaded / idle,
            "operator_cpu_s_10k_pods": _cpu_s(operator) - cpu_before,
            "fleet_spread_pods": float(total),
        }


def big_cluster(
    cluster: RealCluster,
    fleet: Fleet,
    namespaces: int,
    idle_s: int,
    resync_s: int = RESYNC_PROBE_S,
) -> dict[str, float]:
    """Cold start over ``namespaces`` (a profile and a policy each), then the idle requests."""
    names = [f"fleet-ns-{n:05d}" for n in range(namespaces)]
    fleet.run(fleet.namespaces(names))
    os.environ["HOURGLASS_RESYNC_SECONDS"] = str(resync_s)
    try:
        operator = OperatorProcess(cluster, name="fleet-cold", verbose=False)
        started = time.perf_counter()
        operator.start(120)
    finally:
        del os.environ["HOURGLASS_RESYNC_SECONDS"]
    try:
        pending = list(names)

        def done() -> bool:
            while pending and fleet.run(fleet.config_hash(pending[0])):
                pending.pop(0)
            return not pending

        poll(done, 900, f"{namespaces} namespaces rendered", interval=0.2)
        cold = time.perf_counter() - started
        settled = _quiet(cluster)
        mark = cluster.audit_mark()
        window = max(idle_s, 3 * resync_s)
        time.sleep(window)
        calls = operator_call_log(cluster, mark)
        rss = _rss_mib(operator)
    finally:
        operator.stop()
    resync = sorted(when for when, key in calls if key in _RESYNC_CALLS)
    rounds = 1 + sum(1 for a, b in itertools.pairwise(resync) if b - a > resync_s / 2)
    per_round = len(resync) / rounds if resync else 0.0
    steady = (len(calls) - len(resync)) * 60 / window
    return {
        "cold_start_apiserver_2000_namespaces_s": cold,
        "cold_start_settled_2000_namespaces_s": cold + settled,
        "fleet_namespaces": float(namespaces),
        "operator_idle_requests_per_min_2000_namespaces": steady
        + per_round * 60 / DEFAULT_RESYNC_S,
        "resync_requests_per_round_2000_namespaces": per_round,
        "fleet_idle_resync_rounds": float(rounds if resync else 0),
        "operator_rss_mib_2000_namespaces": rss,
    }


def _quiet(cluster: RealCluster, quiet_s: float = 10.0, timeout: float = 600) -> float:
    """Seconds until the operator has written nothing for ``quiet_s`` (statuses, Events
    and kopf's annotations of the cold start still land after the ConfigMaps)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        mark = cluster.audit_mark()
        time.sleep(quiet_s)
        calls = operator_call_log(cluster, mark)
        if not [key for _, key in calls if key.split()[0] in ("create", "patch", "update")]:
            return time.perf_counter() - started - quiet_s
    raise TimeoutError(f"the operator still writing {timeout:.0f}s after the cold start")


def run(quick: bool) -> dict[str, float]:
    bin_dir = cached_bin_dir()
    if bin_dir is None:
        raise BuildError("build the control plane first: python -m tests.controlplane --build-only")
    size = _sizes(quick)
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-fleet-") as tmp:
        plane = ControlPlane(bin_dir, Path(tmp)).start()
        fleet: Fleet | None = None
        try:
            workdir = Path(tmp) / "work"
            workdir.mkdir()
            cluster = RealCluster(plane, workdir)
            install(cluster)
            fleet = Fleet(cluster)
            figures: dict[str, float] = {}
            failed = []
            for part in _PARTS:
                started = time.perf_counter()
                try:
                    produced = part(cluster, fleet, size)
                    figures |= produced
                    print(f"# {json.dumps(produced, sort_keys=True)}", file=sys.stderr)
                except Exception as error:  # the other parts' figures still count
                    failed.append(f"{part.__name__}: {type(error).__name__}: {error}")
                took = time.perf_counter() - started
                print(f"# fleet {part.__name__}: {took:.0f}s", file=sys.stderr, flush=True)
            if failed and not figures:
                raise RuntimeError("; ".join(failed))
            for line in failed:
                print(f"# fleet part FAILED (its figures are missing): {line}", file=sys.stderr)
            return figures
        finally:
            if fleet is not None:
                fleet.close()
            plane.stop()


def _rollouts(cluster: RealCluster, fleet: Fleet, size: dict[str, int]) -> dict[str, float]:
    return rollouts(cluster, fleet, size["pods"], size["rounds"])


def _fan_out(cluster: RealCluster, fleet: Fleet, size: dict[str, int]) -> dict[str, float]:
    return fan_out(cluster, fleet, size["watchers"], size["patches"])


def _spread(cluster: RealCluster, fleet: Fleet, size: dict[str, int]) -> dict[str, float]:
    return spread(cluster, fleet, size["spread_ns"], size["spread_pods"])


def _big_cluster(cluster: RealCluster, fleet: Fleet, size: dict[str, int]) -> dict[str, float]:
    return big_cluster(cluster, fleet, size["namespaces"], size["idle_s"], size["resync_s"])


_PARTS = (_rollouts, _fan_out, _big_cluster, _spread)
"""The 2,000 namespaces start cold before the 10,000 Pods exist (see docs/reliability.md)."""
