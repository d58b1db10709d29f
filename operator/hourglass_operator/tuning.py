"""Timeouts sized from observed latency: the pure part of ``spec.tuning``.

The established practice: choose an acceptable false-timeout rate (0.1%), read that
percentile of the observed latency (p99.9) and pad it (``headroom``). The agents export
``hourglass_operation_duration_seconds{name,outcome}``; Prometheus answers three queries
per tuned profile and round (`queries`); `recommend` turns the answers into
``status.recommendations.<name>``.

**Censoring.** A call that timed out ran exactly as long as the timeout: when more than
``1 - percentile`` of the calls time out, the observed percentile *is* the timeout and
says nothing about the true latency. Then the recommendation is the current value times
``headroom`` (never lower), clamped to the bounds, with ``censored: true``.

**Apply** puts the recommendation into the rendered bundle (`with_applied`), never into
the spec: only when it moves by more than `APPLY_THRESHOLD` and at most once per
``window / 4``.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_lib.config.timeout_profiles import TuningSpec
from agent_lib.durations import format_duration, parse_duration
from agent_lib.timeouts.timing import METRIC

TUNED = "Tuned"
APPLY_THRESHOLD = 0.10
"""Apply a new value only when it differs from the one in use by more than this."""
QUERIES_PER_ROUND = 3
"""Prometheus queries per tuned profile per round: the quantile, the count, the timeouts."""
DEFAULT_SELECTOR = 'namespace="{namespace}"'
"""Series of a namespace as the chart's PodMonitor labels them (Prometheus adds
``namespace`` from the scraped pod). ``{namespace}`` and ``{profile}`` are substituted."""


@dataclass(frozen=True)
class Observation:
    """What Prometheus says about one timeout name over the window."""

    quantile: float | None
    """The observed percentile in seconds (None: no data, NaN from PromQL)."""
    samples: float
    timeouts: float


@dataclass(frozen=True)
class Recommendation:
    name: str
    current: float
    value: float
    observed: float
    samples: int
    censored: bool


def queries(tuning: TuningSpec, selector: str) -> dict[str, str]:
    """The PromQL of one round for one profile: ``quantile``, ``samples``, ``timeouts``."""
    window = _promql_duration(tuning.window)
    q = tuning.percentile / 100.0
    inner = f"{METRIC}_bucket{{{selector}}}"
    return {
        "quantile": f"histogram_quantile({q:g}, sum by (name, le) (increase({inner}[{window}])))",
        "samples": f"sum by (name) (increase({METRIC}_count{{{selector}}}[{window}]))",
        "timeouts": (
            f'sum by (name) (increase({METRIC}_count{{{selector},outcome="timeout"}}[{window}]))'
        ),
    }


def selector_for(template: str, namespace: str, profile: str) -> str:
    return template.replace("{namespace}", namespace).replace("{profile}", profile)


def _promql_duration(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


def observations(results: Mapping[str, Mapping[str, float]]) -> dict[str, Observation]:
    """Per name, from the three queries' ``name -> value`` answers."""
    quantiles, samples, timeouts = (
        results.get("quantile", {}),
        results.get("samples", {}),
        results.get("timeouts", {}),
    )
    out: dict[str, Observation] = {}
    for name in set(quantiles) | set(samples):
        quantile = quantiles.get(name)
        if quantile is not None and not math.isfinite(quantile):
            quantile = None
        out[name] = Observation(quantile, samples.get(name, 0.0), timeouts.get(name, 0.0))
    return out


def clamp(seconds: float, bounds: Any | None) -> float:
    if bounds is not None:
        if bounds.min is not None:
            seconds = max(seconds, bounds.min)
        if bounds.max is not None:
            seconds = min(seconds, bounds.max)
    return seconds


def recommend(
    name: str, current: float, seen: Observation, tuning: TuningSpec
) -> Recommendation | None:
    """The recommendation for one timeout, or None when there are too few samples."""
    if seen.samples < tuning.min_samples or seen.samples <= 0:
        return None
    bounds = tuning.bounds.get(name)
    allowed = 1.0 - tuning.percentile / 100.0
    censored = seen.timeouts / seen.samples > allowed
    if censored:
        observed = current
        value = max(current, clamp(current * tuning.headroom, bounds))
    elif seen.quantile is None:
        return None
    else:
        observed = seen.quantile
        value = clamp(observed * tuning.headroom, bounds)
    return Recommendation(
        name, current, _ms(value), _ms(observed), round(seen.samples), censored=censored
    )


def _ms(seconds: float) -> float:
    return max(0.001, round(seconds, 3))


def should_apply(
    value: float,
    in_use: float,
    applied_at: str | None,
    window: float,
    now: dt.datetime,
) -> bool:
    """Move the effective value only by more than 10%, and at most once per window / 4."""
    if in_use > 0 and abs(value - in_use) / in_use <= APPLY_THRESHOLD:
        return False
    if applied_at:
        try:
            last = dt.datetime.fromisoformat(applied_at.replace("Z", "+00:00"))
        except ValueError:
            return True
        if (now - last).total_seconds() < window / 4:
            return False
    return True


def entry(
    rec: Recommendation,
    tuning: TuningSpec,
    previous: Mapping[str, Any] | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """``status.recommendations.<name>``: durations written as the spec writes them."""
    stamp = _stamp(now)
    result: dict[str, Any] = {
        "value": format_duration(rec.value),
        "observed": format_duration(rec.observed),
        "current": format_duration(rec.current),
        "percentile": tuning.percentile,
        "samples": rec.samples,
        "window": format_duration(tuning.window),
        "lastUpdated": stamp,
        "censored": rec.censored,
    }
    if tuning.mode == "Apply":
        previous = previous or {}
        in_use = _seconds(previous.get("effective")) or rec.current
        applied_at = previous.get("appliedAt")
        clamped = clamp(rec.value, tuning.bounds.get(rec.name))
        if should_apply(clamped, in_use, applied_at, tuning.window, now):
            result["effective"], result["appliedAt"] = format_duration(clamped), stamp
        else:
            result["effective"] = format_duration(in_use)
            if applied_at:
                result["appliedAt"] = applied_at
    return result


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except Exception:
        return None


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_applied(
    bodies: Iterable[Mapping[str, Any]], status_of: Any | None = None
) -> list[Mapping[str, Any]]:
    """The bodies to render: each ``Apply`` profile's timeouts replaced by
    ``status.recommendations.<name>.effective`` (a copy; the spec in the API is untouched)."""
    out: list[Mapping[str, Any]] = []
    for body in bodies:
        spec = body.get("spec") or {}
        tuning = spec.get("tuning") or {}
        if body.get("kind") != "TimeoutProfile" or tuning.get("mode") != "Apply":
            out.append(body)
            continue
        status = status_of(body) if status_of is not None else body.get("status") or {}
        recommendations = (status or {}).get("recommendations") or {}
        timeouts = dict(spec.get("timeouts") or {})
        changed = False
        for name, rec in recommendations.items():
            effective = rec.get("effective") if isinstance(rec, Mapping) else None
            if effective:
                timeouts[name] = effective
                changed = True
        if not changed:
            out.append(body)
            continue
        copied = copy.deepcopy(dict(body))
        copied["spec"]["timeouts"] = timeouts
        out.append(copied)
    return out
