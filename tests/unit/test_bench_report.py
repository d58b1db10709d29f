"""bench/report.py: every metric lands beside its goal and baseline; plots are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench._goals import GOALS, RELATIVE_GOALS

SERIES = {
    "date": "2026-01-01T00:00:00+00:00",
    "machine": {"cpus": 2, "python": "3.11", "platform": "Linux", "cpu_model": "Test CPU"},
    "command": "python -m bench.report --measure",
    "cleanup_scaling": {
        "expired": 10_000,
        "repeats": 3,
        "points": [
            {"live": live, "best_s": 0.09, "median_s": 0.1 + live / 1e8, "max_s": 0.2}
            for live in (0, 10_000, 100_000)
        ],
    },
    "reload_latency_ms": [40.0 + i for i in range(50)],
}
RESULTS = {
    "date": "2026-01-01T00:00:00+00:00",
    "quick": True,
    "machine": {"cpus": 2, "python": "3.11", "platform": "Linux"},
    "metrics": {"timeout_lookup_ratio_vs_dict": 2.0, "cleanup_scaling_ratio": 1.7, "extra": 5.0},
    "failures": {"operator": "RuntimeError: boom"},
}


@pytest.mark.parametrize("name", sorted(GOALS))
def test_verdicts_follow_the_goals(name: str) -> None:
    op, bound = GOALS[name]
    inside, outside = (0.9 * bound, 1.1 * bound) if op == "<=" else (1.1 * bound, 0.9 * bound)
    assert report.verdict(name, bound) == (f"{op} {bound:g}", "met")
    assert report.verdict(name, inside) == (f"{op} {bound:g}", "met")
    assert report.verdict(name, outside) == (f"{op} {bound:g}", "**MISSED**")


def test_a_metric_without_a_goal_has_no_verdict() -> None:
    assert report.verdict("not_a_goal", 1.0) == ("-", "")


def test_markdown_lists_every_metric_goal_baseline_and_missing_one(tmp_path: Path) -> None:
    plots = report.write_plots(SERIES, tmp_path / "img")
    text = report.render_markdown(RESULTS, SERIES, plots, tmp_path)
    row = next(line for line in text.splitlines() if "`cleanup_scaling_ratio`" in line)
    assert "1.7" in row and "<= 1.25" in row and "MISSED" in row and "1x live" in row
    assert "`extra`" in text
    assert "`session_touch_ratio_vs_raw_redis`" in text.split("Not in the published figures:")[1]
    assert "**operator failed**" in text
    assert "python -m bench --quick" in text and "2026-01-01" in text and "Test CPU" in text
    assert "![cleanup scaling](img/cleanup_scaling.png)" in text
    assert "p99 89.0 ms" in text
    for path in plots.values():
        assert path.read_bytes().startswith(b"\x89PNG")


def test_every_goal_has_a_description() -> None:
    assert set(GOALS) | set(RELATIVE_GOALS) <= set(report.ABOUT)


@pytest.mark.parametrize("name", sorted(RELATIVE_GOALS))
def test_a_relative_goal_is_judged_against_the_metric_of_the_same_run(name: str) -> None:
    op, factor, base = RELATIVE_GOALS[name]
    metrics = {base: 100.0}
    bound = factor * 100.0
    inside, outside = (0.9 * bound, 1.1 * bound) if op == "<=" else (1.1 * bound, 0.9 * bound)
    assert report.verdict(name, inside, metrics)[1] == "met"
    assert report.verdict(name, outside, metrics)[1] == "**MISSED**"
    assert base in report.verdict(name, inside, metrics)[0]
    assert report.verdict(name, inside) == ("-", "")  # nothing to judge it against


def test_report_without_results_says_what_to_run(tmp_path: Path, capsys) -> None:
    code = report.main(["--results", str(tmp_path / "none.json"), "--out", str(tmp_path / "b.md")])
    assert code == 1
    assert "run `python -m bench` first" in capsys.readouterr().err


def test_partial_publish_says_when_each_area_ran(tmp_path: Path) -> None:
    results = {
        **RESULTS,
        "command": "python -m bench --only timeouts --publish",
        "areas": {
            "earlier": {"date": "2025-12-31T00:00:00+00:00", "metrics": ["extra"]},
            "timeouts": {
                "date": "2026-01-01T00:00:00+00:00",
                "load_before": 0.5,
                "load_after": 0.75,
                "seconds": 12.0,
                "metrics": ["timeout_lookup_ratio_vs_dict"],
            },
        },
    }
    series = {**SERIES, "cleanup_scaling": {**SERIES["cleanup_scaling"]}}
    series["cleanup_scaling"]["points"] = [
        {**point, "ratio_min": 0.9 + i / 10, "ratio_max": 1.1 + i / 10}
        for i, point in enumerate(SERIES["cleanup_scaling"]["points"])
    ]
    text = report.render_markdown(results, series, report.write_plots(series, tmp_path), tmp_path)
    assert "- **Command**: `python -m bench --only timeouts --publish`" in text
    assert "| timeouts | 2026-01-01T00:00:00+00:00 | 0.5 -> 0.75 | 12 |" in text
    assert (
        "| earlier run (before areas were recorded) | 2025-12-31T00:00:00+00:00 | - | - |" in text
    )
    assert "| 100,000 | 90.0 | 101.0 | 200.0 | 1.00 | 1.10 - 1.30 |" in text


def test_the_lookup_ratio_is_shown_beside_its_floor(tmp_path: Path) -> None:
    plots = report.write_plots(SERIES, tmp_path / "img")
    figures = {"timeout_lookup_ratio_vs_dict": 1.8, "timeout_lookup_floor_ratio_vs_dict": 1.5}
    text = report.render_markdown({**RESULTS, "metrics": figures}, SERIES, plots, tmp_path)
    section = text.split("## Timeout lookup and its floor", 1)[1].split("##", 1)[0]
    assert "1.80x" in section and "1.50x" in section and "1.20x over the floor" in section
    without = report.render_markdown(RESULTS, SERIES, plots, tmp_path)
    assert "## Timeout lookup" not in without
