"""``python -m bench`` leaves the working tree alone unless asked to publish.

A real, test-sized timeouts area runs (real inotify, a real TimeoutManager): a
``--quick`` run, an ``--only`` run and a ``--json PATH`` run must leave every tracked
file as it was (``git status --porcelain`` and the published files' bytes), while
``--publish`` into a scratch copy of the published files merges the area it ran into
them and keeps the other areas' figures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench import timeouts

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = (
    ROOT / "bench" / "results" / "latest.json",
    ROOT / "bench" / "results" / "series.json",
    ROOT / "docs" / "benchmarks.md",
    ROOT / "docs" / "img" / "cleanup_scaling.png",
    ROOT / "docs" / "img" / "reload_latency.png",
)


def _git_status() -> str:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the check is `git status --porcelain`)")
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeouts area at test size, and it alone."""
    monkeypatch.setattr(timeouts, "SWAPS", 5)
    monkeypatch.setattr(timeouts, "IDLE_QUICK_S", 0.3)
    monkeypatch.setattr(timeouts, "IDLE_S", 0.3)
    monkeypatch.setattr(timeouts, "LOOKUP_N", 2_000)
    monkeypatch.setattr(timeouts, "LOOKUP_REPEATS", {True: 3, False: 3})
    monkeypatch.setattr(bench_main, "AREAS", ("timeouts",))


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("tiny")
def test_quick_only_and_json_runs_leave_the_tree_clean(tmp_path: Path) -> None:
    before = _git_status()
    published = {path: path.read_bytes() for path in PUBLISHED if path.exists()}
    out = tmp_path / "run.json"

    assert bench_main.main(["--quick"]) == 0
    assert bench_main.main(["--quick", "--only", "timeouts", "--json", str(out)]) == 0
    assert bench_main.main(["--only", "timeouts"]) == 0

    assert _git_status() == before
    assert {path: path.read_bytes() for path in published} == published
    saved = json.loads(out.read_text())
    assert saved["quick"] is True and not saved["failures"]
    assert {"timeout_lookup_ratio_vs_dict", "reload_idle_cpu_pct"} <= set(saved["metrics"])
    assert saved["areas"]["timeouts"]["metrics"] == sorted(saved["metrics"])


def test_publish_refuses_a_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_main.main(["--quick", "--publish"])
    assert exited.value.code == 2
    assert "--publish: only a full run is published" in capsys.readouterr().err


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("tiny")
def test_publish_merges_the_areas_it_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results, series = tmp_path / "latest.json", tmp_path / "series.json"
    doc = tmp_path / "docs" / "benchmarks.md"
    shutil.copy(PUBLISHED[0], results)  # the committed figures, all areas
    shutil.copy(PUBLISHED[1], series)
    earlier = json.loads(results.read_text())
    monkeypatch.setattr(bench_main, "RESULTS", results)
    monkeypatch.setattr(bench_main, "SERIES", series)
    monkeypatch.setattr(bench_main, "DOC", doc)
    before = _git_status()

    assert bench_main.main(["--only", "timeouts", "--publish"]) == 0

    assert _git_status() == before
    merged = json.loads(results.read_text())
    ran = merged["areas"]["timeouts"]
    assert ran["quick"] is False and "reload_idle_cpu_pct" in ran["metrics"]
    assert merged["command"] == "python -m bench --only timeouts --publish"
    timeouts_area = set(earlier["areas"]["timeouts"]["metrics"])
    untouched = {
        name: value for name, value in earlier["metrics"].items() if name not in timeouts_area
    }
    assert untouched and all(merged["metrics"][k] == v for k, v in untouched.items())
    kept = [about for name, about in merged["areas"].items() if name != "timeouts"]
    assert kept and set(untouched) <= {m for about in kept for m in about["metrics"]}
    plotted = json.loads(series.read_text())
    assert len(plotted["reload_latency_ms"]) == 50  # the reload series was measured again
    assert plotted["command"] == merged["command"]
    assert plotted["cleanup_scaling"] == json.loads(PUBLISHED[1].read_text())["cleanup_scaling"]
    text = doc.read_text()
    assert "`python -m bench --only timeouts --publish`" in text
    assert f"| timeouts | {ran['date']} |" in text
    assert (doc.parent / "img" / "reload_latency.png").read_bytes().startswith(b"\x89PNG")
