"""spec.tuning: recommendations from observed latency, censoring, Recommend vs Apply.

The pure rules (`hourglass_operator.tuning`) by example, the Apply schedule as a
hypothesis state machine, and the loop (`Tuner`) against an unreachable Prometheus
(a closed loopback port: a real refusal, no mock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest
from hourglass_operator import tuning
from hourglass_operator.tuning_loop import Tuner, tuned_profiles
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent_lib.config.timeout_profiles import TimeoutProfile, TuningSpec
from agent_lib.durations import parse_duration
from hourglass_cli.valkey_server import free_port

T0 = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)


def spec(**fields: Any) -> TuningSpec:
    return TuningSpec.model_validate({"mode": "Recommend", **fields})


def test_defaults_are_the_issue_s() -> None:
    s = TuningSpec()
    assert (s.mode, s.percentile, s.headroom, s.window, s.min_samples) == (
        "Off",
        99.9,
        1.5,
        86400.0,
        1000,
    )


def test_uncensored_recommends_headroom_times_the_observed_percentile() -> None:
    rec = tuning.recommend("llmCall", 60.0, tuning.Observation(8.0, 5000, 0), spec())
    assert rec is not None
    assert (rec.value, rec.observed, rec.censored, rec.samples) == (12.0, 8.0, False, 5000)


def test_bounds_clamp_the_recommendation() -> None:
    bounded = spec(bounds={"llmCall": {"min": "20s", "max": "40s"}})
    low = tuning.recommend("llmCall", 60.0, tuning.Observation(2.0, 5000, 0), bounded)
    high = tuning.recommend("llmCall", 60.0, tuning.Observation(100.0, 5000, 0), bounded)
    assert low is not None and high is not None
    assert (low.value, high.value) == (20.0, 40.0)


def test_censored_data_raises_by_headroom_and_never_lowers() -> None:
    """1% of calls timed out at 10s (> 0.1%): the observed p99.9 is the timeout itself."""
    seen = tuning.Observation(9.9, 10_000, 100)
    rec = tuning.recommend("toolCall", 10.0, seen, spec())
    assert rec is not None and rec.censored
    assert (rec.observed, rec.value) == (10.0, 15.0)
    capped = tuning.recommend("toolCall", 10.0, seen, spec(bounds={"toolCall": {"max": "5s"}}))
    assert capped is not None and capped.value == 10.0, "censored data never lowers the timeout"


def test_too_few_samples_or_no_data_gives_nothing() -> None:
    assert tuning.recommend("x", 1.0, tuning.Observation(0.5, 999, 0), spec()) is None
    assert tuning.recommend("x", 1.0, tuning.Observation(None, 5000, 0), spec()) is None


def test_queries_use_the_selector_the_percentile_and_the_window() -> None:
    q = tuning.queries(spec(window="2h", percentile=99.0), 'namespace="agents-prod"')
    assert set(q) == {"quantile", "samples", "timeouts"} and len(q) == tuning.QUERIES_PER_ROUND
    assert q["quantile"].startswith("histogram_quantile(0.99, sum by (name, le) (increase(")
    assert (
        'hourglass_operation_duration_seconds_bucket{namespace="agents-prod"}[7200s]'
        in (q["quantile"])
    )
    assert 'outcome="timeout"' in q["timeouts"]
    assert tuning.selector_for('namespace="{namespace}",p="{profile}"', "a", "b") == (
        'namespace="a",p="b"'
    )


def test_apply_moves_only_by_more_than_ten_percent_and_once_per_quarter_window() -> None:
    window = 3600.0
    assert not tuning.should_apply(10.9, 10.0, None, window, T0)
    assert tuning.should_apply(11.5, 10.0, None, window, T0)
    applied = tuning._stamp(T0)
    assert not tuning.should_apply(20.0, 10.0, applied, window, T0 + dt.timedelta(minutes=14))
    assert tuning.should_apply(20.0, 10.0, applied, window, T0 + dt.timedelta(minutes=15))


def test_entry_writes_durations_as_the_spec_does_and_effective_only_for_apply() -> None:
    rec = tuning.Recommendation("llmCall", 60.0, 12.0, 8.0, 5000, censored=False)
    shown = tuning.entry(rec, spec(), None, T0)
    assert shown == {
        "value": "12s",
        "observed": "8s",
        "current": "1m",
        "percentile": 99.9,
        "samples": 5000,
        "window": "24h",
        "lastUpdated": "2026-12-06T10:00:00Z",
        "censored": False,
    }
    applied = tuning.entry(rec, spec(mode="Apply"), None, T0)
    assert (applied["effective"], applied["appliedAt"]) == ("12s", "2026-12-06T10:00:00Z")


def profile(mode: str = "Apply", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "prod", "namespace": "ns", "uid": "u1", "generation": 3},
        "spec": {"timeouts": {"llmCall": "60s"}, "tuning": {"mode": mode}},
        "status": status,
    }


def test_with_applied_renders_effective_and_leaves_the_spec_alone() -> None:
    body = profile(recommendations={"llmCall": {"value": "12s", "effective": "12s"}})
    rendered = tuning.with_applied([body])
    assert rendered[0]["spec"]["timeouts"] == {"llmCall": "12s"}
    assert body["spec"]["timeouts"] == {"llmCall": "60s"}
    recommend_only = profile("Recommend", recommendations={"llmCall": {"effective": "12s"}})
    assert tuning.with_applied([recommend_only])[0] is recommend_only


def test_tuned_profiles_resolves_inherited_timeouts() -> None:
    base = profile("Off")
    base["metadata"] = {"name": "base", "namespace": "ns", "uid": "u0"}
    base["spec"] = {"timeouts": {"toolCall": "30s", "llmCall": "60s"}}
    child = profile("Recommend")
    child["spec"] = {
        "extends": "base",
        "timeouts": {"llmCall": "90s"},
        "tuning": {"mode": "Recommend"},
    }
    found = tuned_profiles("ns", [base, child])
    assert [(b["metadata"]["name"], t) for b, _, t in found] == [
        ("prod", {"toolCall": 30.0, "llmCall": 90.0})
    ]


def test_unreachable_prometheus_sets_tuned_false_and_keeps_the_last_value() -> None:
    kept = {"llmCall": {"value": "12s", "observed": "8s", "samples": 5000}}
    statuses: dict[str, dict[str, Any]] = {"u1": {"recommendations": kept}}

    async def write(_ns: str, body: Mapping[str, Any], change: Any) -> dict[str, Any]:
        uid = body["metadata"]["uid"]
        statuses[uid] = change(statuses.get(uid, {}))
        return statuses[uid]

    tuner = Tuner(write, f"http://127.0.0.1:{free_port()}")
    moved = asyncio.run(tuner.run_round("ns", [profile("Recommend")]))
    status = statuses["u1"]
    assert moved is False
    assert status["recommendations"] == kept
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Tuned",
        "False",
        "PrometheusUnreachable",
    )


def test_off_profiles_are_never_queried() -> None:
    assert tuned_profiles("ns", [profile("Off")]) == []


def test_turning_tuning_off_says_so_once_and_keeps_the_recommendations() -> None:
    """Without this, a profile switched to Off kept showing Tuned=True from its last round."""
    kept = {"llmCall": {"value": "12s"}}
    was_tuned = {
        "recommendations": kept,
        "conditions": [{"type": "Tuned", "status": "True", "reason": "Applied"}],
    }
    statuses: dict[str, dict[str, Any]] = {"u1": was_tuned}
    writes: list[dict[str, Any]] = []

    async def write(_ns: str, body: Mapping[str, Any], change: Any) -> dict[str, Any]:
        uid = body["metadata"]["uid"]
        new = change(statuses[uid])
        if new != statuses[uid]:
            writes.append(new)
        statuses[uid] = new
        return new

    tuner = Tuner(write, None)
    for _ in range(3):
        asyncio.run(tuner.run_round("ns", [profile("Off")]))
    assert len(writes) == 1
    (condition,) = statuses["u1"]["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "TuningOff")
    assert statuses["u1"]["recommendations"] == kept
    assert tuning.with_applied([profile("Off", **statuses["u1"])])[0]["spec"]["timeouts"] == {
        "llmCall": "60s"
    }


class ApplySchedule(RuleBasedStateMachine):
    """Rounds of recommendations while time passes: what Apply does with them.

    Invariants: the effective value is always within bounds; it changes only by more than
    10% and never twice within window / 4; censored rounds never lower it. Without the
    window / 4 check in `should_apply`, hypothesis shrinks to two rounds in the same
    minute: ``round(censored=False, observed=1.0)`` (60s -> the 2s floor), then
    ``round(censored=True, observed=1.0)`` (2s -> 3s).
    """

    WINDOW = 3600.0
    TUNING = TuningSpec.model_validate(
        {"mode": "Apply", "bounds": {"llmCall": {"min": "2s", "max": "120s"}}, "window": "1h"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.entry: dict[str, Any] | None = None
        self.changes: list[tuple[dt.datetime, float, float]] = []

    @rule(
        minutes=st.integers(0, 60),
        observed=st.floats(0.05, 200.0),
        censored=st.booleans(),
    )
    def round(self, minutes: int, observed: float, censored: bool) -> None:
        self.now += dt.timedelta(minutes=minutes)
        in_use = parse_duration(self.entry["effective"]) if self.entry else 60.0
        seen = tuning.Observation(observed, 5000, 100 if censored else 0)
        rec = tuning.recommend("llmCall", in_use, seen, self.TUNING)
        assert rec is not None
        if censored:
            assert rec.value >= in_use
        new = tuning.entry(rec, self.TUNING, self.entry, self.now)
        after = parse_duration(new["effective"])
        if after != in_use:
            self.changes.append((self.now, in_use, after))
        self.entry = new

    @invariant()
    def within_bounds_and_rate(self) -> None:
        if self.entry is not None:
            assert 2.0 <= parse_duration(self.entry["effective"]) <= 120.0 or not self.changes
        for (when, before, after), (later, _, _) in zip(
            self.changes, self.changes[1:], strict=False
        ):
            assert (later - when).total_seconds() >= self.WINDOW / 4
        for _, before, after in self.changes:
            assert abs(after - before) / before > tuning.APPLY_THRESHOLD


TestApplySchedule = ApplySchedule.TestCase
TestApplySchedule.settings = settings(max_examples=60, stateful_step_count=12, deadline=None)


@pytest.mark.parametrize("bad", [{"percentile": 100}, {"headroom": 0.5}, {"mode": "Auto"}])
def test_bad_tuning_is_refused_naming_the_field(bad: dict[str, Any]) -> None:
    doc = {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "p"},
        "spec": {"tuning": bad},
    }
    with pytest.raises(Exception, match=next(iter(bad))):
        TimeoutProfile.model_validate(doc)
