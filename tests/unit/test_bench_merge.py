"""bench/__main__.py's partial publish and bench/sessions.py's scaling spread: pure functions."""

from __future__ import annotations

import pytest

from bench.__main__ import merge_results
from bench.sessions import scaling_figures

LEGACY = {
    "date": "2025-12-31T00:00:00+00:00",
    "quick": False,
    "metrics": {"timeout_lookup_ratio_vs_dict": 2.0, "reconcile_p99_ms": 30.0},
    "failures": {"operator": "RuntimeError: old"},
}


def _run(areas: dict[str, dict[str, float]], failures: dict[str, str] | None = None) -> dict:
    metrics = {name: value for produced in areas.values() for name, value in produced.items()}
    return {
        "date": "2026-01-01T00:00:00+00:00",
        "quick": False,
        "metrics": metrics,
        "failures": failures or {},
        "areas": {
            area: {"date": "2026-01-01T00:00:00+00:00", "metrics": sorted(produced)}
            for area, produced in areas.items()
        },
    }


def test_nothing_published_yet_takes_the_run_as_it_is() -> None:
    run = _run({"timeouts": {"reload_idle_cpu_pct": 0.2}})
    assert merge_results(None, run, ["timeouts"]) is run


def test_a_legacy_file_keeps_what_was_not_measured_again() -> None:
    run = _run({"timeouts": {"timeout_lookup_ratio_vs_dict": 1.4, "reload_idle_cpu_pct": 0.2}})
    merged = merge_results(LEGACY, run, ["timeouts"])
    assert merged["metrics"] == {
        "timeout_lookup_ratio_vs_dict": 1.4,
        "reload_idle_cpu_pct": 0.2,
        "reconcile_p99_ms": 30.0,
    }
    assert merged["areas"]["earlier"] == {
        "date": "2025-12-31T00:00:00+00:00",
        "quick": False,
        "metrics": ["reconcile_p99_ms"],
    }
    assert merged["failures"] == {"operator": "RuntimeError: old"}
    assert merged["date"] == "2026-01-01T00:00:00+00:00"


def test_an_area_run_again_drops_its_old_figures_and_failure() -> None:
    first = _run(
        {"timeouts": {"timeout_lookup_ratio_vs_dict": 1.4, "gone_metric": 1.0}},
        {"sessions": "boom"},
    )
    first["areas"]["sessions"] = {"date": "2026-01-01T00:00:00+00:00", "metrics": []}
    second = _run({"sessions": {"cleanup_scaling_ratio": 1.1}, "timeouts": {}})
    merged = merge_results(first, second, ["sessions", "timeouts"])
    assert merged["metrics"] == {"cleanup_scaling_ratio": 1.1}
    assert merged["failures"] == {}
    assert set(merged["areas"]) == {"sessions", "timeouts"}


def test_scaling_spread_pairs_each_round() -> None:
    figures = scaling_figures([1.0, 2.0, 1.0], [1.2, 2.2, 1.5])
    assert figures["cleanup_scaling_ratio"] == pytest.approx(1.2)
    assert figures["cleanup_scaling_ratio_min"] == pytest.approx(1.1)
    assert figures["cleanup_scaling_ratio_median"] == pytest.approx(1.2)
    assert figures["cleanup_scaling_ratio_max"] == pytest.approx(1.5)
    assert figures["cleanup_scaling_rounds"] == 3
    with pytest.raises(ValueError):
        scaling_figures([1.0], [1.0, 2.0])
