"""The rollout aggregation: pod annotations -> status.rollout, Applied, Reconciling, Stalled,
and the Events and metric the tracker derives from them."""

from __future__ import annotations

from typing import Any

from hourglass_operator import metrics
from hourglass_operator.reconcile import ResourceKey
from hourglass_operator.rollout import (
    APPLIED_HASH,
    APPLIED_PROFILE,
    CONFIG_ERROR,
    REJECTED_HASH,
    PodReport,
    PodState,
    aggregate,
    counts,
    with_rollout,
)
from hourglass_operator.rollout_handlers import index_entry
from hourglass_operator.rollout_tracker import Resource, RolloutTracker
from hourglass_operator.status import Condition, build_status

from hourglass_cli._rollout_progress import Snapshot, Verdict, judge

NEW, OLD, FIXED = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"


def _pod(
    name: str,
    applied: str | None = None,
    error: str | None = None,
    rejected: str | None = None,
    phase: str | None = None,
    **extra: Any,
) -> Any:
    given = ((APPLIED_HASH, applied), (CONFIG_ERROR, error), (REJECTED_HASH, rejected))
    notes = {k: v for k, v in given if v is not None}
    if applied:
        notes[APPLIED_PROFILE] = "default"
    status = {"phase": phase} if phase else {}
    return {"metadata": {"name": name, "annotations": notes, **extra}, "status": status}


def _report(*args: Any, **kwargs: Any) -> PodReport:
    report = PodReport.from_pod(_pod(*args, **kwargs))
    assert report is not None
    return report


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def _rendered(generation: int = 1, now: str = "T0") -> dict[str, Any]:
    return build_status(
        {},
        generation=generation,
        conditions=[
            Condition("Valid", True, "SpecValid", "spec is valid"),
            Condition("Ready", True, "Rendered", "rendered"),
        ],
        config_hash=NEW,
        now=now,
    )


def test_pod_states_follow_the_annotations() -> None:
    assert _report("a", NEW).state(NEW) is PodState.UPDATED
    assert _report("b", OLD).state(NEW) is PodState.PENDING
    assert _report("c").state(NEW) is PodState.PENDING
    bad = "timeouts.fooBar: unknown timeout"
    assert _report("d", OLD, bad, rejected=NEW).state(NEW) is PodState.REJECTED
    # An error next to the current hash is stale: the agent applied it since.
    assert _report("e", NEW, "old trouble", rejected=OLD).state(NEW) is PodState.UPDATED


def test_a_fix_is_not_blamed_for_the_error_it_fixes() -> None:
    """Issue 24, repro 1: a1 refused OLD and still runs FIRST; NEW is the fix."""
    first = "dddddddddddddddd"
    pod = _report("a1", first, "timeouts.fooBar: unknown timeout", rejected=OLD)
    assert pod.state(OLD) is PodState.REJECTED
    assert pod.state(FIXED) is PodState.PENDING
    line = pod.describe(FIXED)
    assert line.startswith(f"pod a1 still runs hash {first}")
    assert f"it rejected hash {OLD}: timeouts.fooBar: unknown timeout" in line
    rollout = aggregate("ns", FIXED, [pod, _report("a2", FIXED)])
    assert rollout.applied().reason == "Progressing"
    assert rollout.rejected == 0


def test_an_agent_that_does_not_name_the_hash_is_pending_never_rejecting() -> None:
    pod = _report("old-agent", OLD, "timeouts.fooBar: unknown timeout")
    assert pod.state(NEW) is PodState.PENDING
    assert "it rejected an earlier config: timeouts.fooBar" in pod.describe(NEW)


def test_finished_and_deleting_pods_do_not_count() -> None:
    terminating = _pod("a", NEW, deletionTimestamp="2026-01-01T00:00:00Z")
    evicted = _pod("b", NEW, phase="Failed")
    done = _pod("c", NEW, phase="Succeeded")
    for pod in (terminating, evicted, done):
        assert not counts(pod)
        assert PodReport.from_pod(pod) is None
    for phase in (None, "Pending", "Running", "Unknown"):
        assert counts(_pod("d", NEW, phase=phase))


def test_the_operator_index_and_the_cli_count_the_same_pods() -> None:
    """One function decides for both: the kopf index entry and the CLI's snapshot."""
    pods = [
        _pod("running", NEW, phase="Running"),
        _pod("pending", OLD),
        _pod("evicted", NEW, phase="Failed"),
        _pod("finished", NEW, phase="Succeeded"),
        _pod("terminating", NEW, phase="Running", deletionTimestamp="2026-01-01T00:00:00Z"),
    ]
    indexed = [report for pod in pods for report in index_entry("ns", pod).values()]
    snapshot = Snapshot.of("ns", [], NEW, pods)
    assert sorted(indexed) == sorted(snapshot.pods)
    assert [p.name for p in sorted(indexed)] == ["pending", "running"]
    # A pod that stops counting gets an empty entry: kopf drops its old one (None keeps it).
    assert index_entry("ns", pods[2]) == {}


def test_summary_counts_and_the_printer_column_text() -> None:
    rollout = aggregate(
        "ns",
        NEW,
        [_report("a", NEW), _report("b", OLD), _report("c", OLD, "bad field", rejected=NEW)],
    )
    assert rollout.summary() == {
        "hash": NEW,
        "updated": 1,
        "total": 3,
        "rejected": 1,
        "applied": "1/3",
    }
    assert rollout.counts() == {PodState.UPDATED: 1, PodState.PENDING: 1, PodState.REJECTED: 1}


def test_applied_true_when_every_pod_runs_the_hash() -> None:
    rollout = aggregate("ns", NEW, [_report(n, NEW) for n in "abc"])
    status = with_rollout(_rendered(), {}, rollout, generation=1, now="T1")
    conditions = _conditions(status)
    assert conditions["Applied"]["status"] == "True"
    assert conditions["Applied"]["reason"] == "Applied"
    assert "3/3" in conditions["Applied"]["message"]
    assert "Reconciling" not in conditions and "Stalled" not in conditions
    assert status["rollout"]["applied"] == "3/3"


def test_progressing_names_a_waiting_pod_and_sets_reconciling() -> None:
    rollout = aggregate("ns", NEW, [_report("a", NEW), _report("b", OLD)])
    conditions = _conditions(with_rollout(_rendered(), {}, rollout, generation=1, now="T1"))
    assert conditions["Applied"]["status"] == "False"
    assert conditions["Applied"]["reason"] == "Progressing"
    assert f"pod b still runs hash {OLD}" in conditions["Applied"]["message"]
    assert conditions["Reconciling"]["status"] == "True"
    assert "Stalled" not in conditions


def test_rejected_names_the_pod_and_its_reason_and_stalls() -> None:
    rollout = aggregate(
        "ns",
        NEW,
        [
            _report("a", NEW),
            _report("b", OLD, "timeouts.fooBar: unknown", rejected=NEW),
            _report("c", OLD, "x", rejected=NEW),
        ],
    )
    conditions = _conditions(with_rollout(_rendered(), {}, rollout, generation=1, now="T1"))
    applied = conditions["Applied"]
    assert (applied["status"], applied["reason"]) == ("False", "Rejected")
    assert "pod b rejected the config: timeouts.fooBar: unknown" in applied["message"]
    assert "1 more" in applied["message"]
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "Rejected"
    assert "Reconciling" not in conditions


def test_no_pods_is_applied_with_its_own_reason() -> None:
    rollout = aggregate("ns", NEW, [])
    applied = _conditions(with_rollout(_rendered(), {}, rollout, generation=1, now="T"))["Applied"]
    assert (applied["status"], applied["reason"]) == ("True", "NoPods")


def test_invalid_spec_stalls_whatever_the_pods_do() -> None:
    status = build_status(
        {},
        generation=2,
        conditions=[
            Condition("Valid", False, "InvalidSpec", "spec.timeouts.x: bad"),
            Condition("Ready", False, "NotRendered", "not rendered"),
        ],
        config_hash=None,
        now="T",
    )
    rollout = aggregate("ns", NEW, [_report("a", NEW)])
    conditions = _conditions(with_rollout(status, {}, rollout, generation=2, now="T"))
    assert conditions["Stalled"]["reason"] == "InvalidSpec"
    assert conditions["Applied"]["status"] == "True"


def test_transition_time_moves_only_when_applied_flips() -> None:
    progressing = aggregate("ns", NEW, [_report("a", OLD), _report("b", OLD)])
    first = with_rollout(_rendered(), {}, progressing, generation=1, now="T1")
    halfway = aggregate("ns", NEW, [_report("a", NEW), _report("b", OLD)])
    second = with_rollout(first, first, halfway, generation=1, now="T2")
    assert _conditions(second)["Applied"]["lastTransitionTime"] == "T1"
    done = aggregate("ns", NEW, [_report("a", NEW), _report("b", NEW)])
    third = with_rollout(second, second, done, generation=1, now="T3")
    assert _conditions(third)["Applied"]["lastTransitionTime"] == "T3"


def test_a_render_keeps_the_rollout_conditions() -> None:
    rollout = aggregate("ns", NEW, [_report("a", NEW)])
    written = with_rollout(_rendered(), {}, rollout, generation=1, now="T1")
    rerendered = build_status(
        written,
        generation=1,
        conditions=[
            Condition("Valid", True, "SpecValid", "spec is valid"),
            Condition("Ready", True, "Rendered", "rendered"),
        ],
        config_hash=NEW,
        now="T2",
    )
    assert rerendered == written


def _resource(current: dict[str, Any], name: str = "p") -> Resource:
    body = {"kind": "TimeoutProfile", "metadata": {"name": name, "generation": 1}}
    return Resource(ResourceKey("TimeoutProfile", name), body, current, current)


def _sample(name: str) -> float | None:
    return metrics.REGISTRY.get_sample_value("hourglass_rollout_pods", name)  # type: ignore[arg-type]


def test_tracker_writes_only_on_change_and_announces_once() -> None:
    tracker = RolloutTracker()
    ns = "tracker-ns"
    tracker.set_pods(ns, [_report("a", OLD), _report("b", OLD)])
    first = tracker.update(ns, tracker.target(ns, NEW, []), [_resource(_rendered())], "T1")
    status = first.statuses[ResourceKey("TimeoutProfile", "p")]
    assert _conditions(status)["Applied"]["reason"] == "Progressing"
    assert not first.events
    assert _sample({"namespace": ns, "state": "pending"}) == 2  # type: ignore[arg-type]

    # Nothing changed: nothing to write.
    again = tracker.update(ns, tracker.target(ns, None, []), [_resource(status)], "T2")
    assert not again.statuses and not again.events

    assert not tracker.set_pods(ns, [_report("a", OLD), _report("b", OLD)])
    assert tracker.set_pods(ns, [_report("a", NEW), _report("b", OLD, "bad: field", NEW)])
    rejected = tracker.update(ns, NEW, [_resource(status)], "T3")
    assert [(e.type, e.reason) for e in rejected.events] == [("Warning", "ConfigRejected")]
    assert "pod b rejected hash" in rejected.events[0].message
    status = rejected.statuses[ResourceKey("TimeoutProfile", "p")]
    assert tracker.update(ns, NEW, [_resource(status)], "T4").events == []

    tracker.set_pods(ns, [_report("a", NEW), _report("b", NEW)])
    done = tracker.update(ns, NEW, [_resource(status)], "T5")
    assert [(e.type, e.reason) for e in done.events] == [("Normal", "RolloutComplete")]
    assert "2/2" in done.events[0].message
    assert _sample({"namespace": ns, "state": "updated"}) == 2  # type: ignore[arg-type]
    tracker.forget(ns)
    assert _sample({"namespace": ns, "state": "updated"}) is None  # type: ignore[arg-type]


def test_restarted_tracker_takes_the_hash_the_statuses_agree_on() -> None:
    tracker = RolloutTracker()
    assert tracker.target("ns", None, [{"configHash": NEW}, {"configHash": NEW}, {}]) == NEW
    assert tracker.target("ns", None, []) is None


def test_the_hash_on_the_configmap_wins_over_the_statuses() -> None:
    tracker = RolloutTracker()
    assert tracker.target("ns", OLD, [{"configHash": NEW}]) == OLD
    assert tracker.target("ns", None, [{"configHash": NEW}]) == OLD, "remembered"


def _resource_body(ready: Condition, config_hash: str) -> dict[str, Any]:
    status = build_status(
        {},
        generation=2,
        conditions=[Condition("Valid", True, "SpecValid", "spec is valid"), ready],
        config_hash=config_hash,
        now="T",
    )
    return {"kind": "TimeoutProfile", "metadata": {"name": "p", "generation": 2}, "status": status}


def test_the_cli_fails_on_a_refused_write_with_the_reason() -> None:
    """Issue 24, repro 2: the CLI waited on the unwritten hash and timed out (exit 3)."""
    message = f"the API server refused to write ConfigMap hourglass-config with hash {NEW}"
    refused = Condition("Ready", False, "WriteRefused", message)
    progress = judge(Snapshot.of("ns", [_resource_body(refused, OLD)], OLD, [_pod("a", OLD)]))
    assert progress.verdict is Verdict.FAILED
    assert progress.errors == [f"TimeoutProfile/p is not ready (WriteRefused): {message}"]
    ready = Condition("Ready", True, "Rendered", "rendered")
    applied = judge(Snapshot.of("ns", [_resource_body(ready, OLD)], OLD, [_pod("a", OLD)]))
    assert applied.verdict is Verdict.APPLIED
