"""``python -m bench [--quick] [--only AREA]... [--json PATH] [--publish]``: run the benchmarks.

Each area is a module ``bench/<area>.py`` with ``run(quick: bool) -> dict[str, float]``.
An area whose dependencies are missing is reported and skipped, never faked.

A run prints its figures and, with ``--json PATH``, saves them there; it writes nothing
else, so the working tree stays clean. Only ``--publish`` (full sizes, never with
``--quick``) records them as the project's figures: ``bench/results/latest.json``, the
plot series ``bench/results/series.json``, ``docs/benchmarks.md`` and its plots. With
``--only``, the areas run replace their own figures and every other area keeps those of
its last published run; the page says when and under what load each area was measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench._goals import goal_of

AREAS = ("timeouts", "sessions", "agents", "operator", "apiserver", "local", "tuning", "fleet")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
SERIES = ROOT / "bench" / "results" / "series.json"
DOC = ROOT / "docs" / "benchmarks.md"
_EARLIER = "earlier"
"""Area name for figures of a results file written before areas were recorded."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; under a minute")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    parser.add_argument("--only", action="append", choices=AREAS, default=None)
    parser.add_argument(
        "--publish",
        action="store_true",
        help="record the figures in bench/results/ and regenerate docs/benchmarks.md "
        "and its plots (full sizes only)",
    )
    args = parser.parse_args(argv)
    if args.publish and args.quick:
        parser.error("--publish: only a full run is published; drop --quick")
    areas = list(dict.fromkeys(args.only or AREAS))
    run = _run(areas, args.quick)
    run["command"] = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    _print_table(run["metrics"], run["failures"])
    if args.json_path is not None:
        _write_json(args.json_path, run)
    if args.publish:
        publish(run, areas, RESULTS, SERIES, DOC)
    return 1 if run["failures"] else 0


def _run(areas: list[str], quick: bool) -> dict[str, Any]:
    metrics: dict[str, float] = {}
    failures: dict[str, str] = {}
    about: dict[str, dict[str, Any]] = {}
    for area in areas:
        started, load = time.perf_counter(), _load()
        produced: dict[str, float] = {}
        try:
            module = importlib.import_module(f"bench.{area}")
            produced = module.run(quick)
        except Exception as error:  # one broken area must not hide the others
            failures[area] = f"{type(error).__name__}: {error}"
        metrics.update(produced)
        seconds = time.perf_counter() - started
        about[area] = {
            "date": _now(),
            "quick": quick,
            "seconds": round(seconds, 1),
            "load_before": load,
            "load_after": _load(),
            "metrics": sorted(produced),
        }
        print(f"# {area}: {seconds:.1f}s, load {load} -> {_load()}", file=sys.stderr)
    return {
        "metrics": metrics,
        "failures": failures,
        "quick": quick,
        "date": _now(),
        "machine": _machine(),
        "areas": about,
    }


def publish(run: dict[str, Any], areas: list[str], results: Path, series: Path, doc: Path) -> None:
    """Merge this run into ``results``, measure the plot series of the areas run, and
    regenerate ``doc`` and its plots."""
    from bench import report  # imported here: matplotlib only when publishing

    old = json.loads(results.read_text()) if results.exists() else None
    merged = merge_results(old, run, areas)
    _write_json(results, merged)
    parts = {
        name for area, name in (("sessions", "cleanup"), ("timeouts", "reload")) if area in areas
    }
    report.publish(merged, series, doc, measure=parts, command=run.get("command", ""))


def merge_results(
    old: dict[str, Any] | None, run: dict[str, Any], areas: list[str]
) -> dict[str, Any]:
    """``old`` with the areas of ``run`` replaced: their figures, failures and dates."""
    if old is None:
        return run
    earlier: dict[str, dict[str, Any]] = dict(old.get("areas") or {})
    if not earlier and old.get("metrics"):
        about = {"date": old.get("date", "?"), "quick": old.get("quick", False)}
        earlier[_EARLIER] = {**about, "metrics": sorted(old["metrics"])}
    stale = {name for area in areas for name in earlier.pop(area, {}).get("metrics", [])}
    metrics = {
        name: value
        for name, value in old.get("metrics", {}).items()
        if name not in stale and name not in run["metrics"]
    }
    kept = {}
    for area, about in earlier.items():
        left = [name for name in about.get("metrics", []) if name in metrics]
        if left:
            kept[area] = {**about, "metrics": left}
    failures = {k: v for k, v in old.get("failures", {}).items() if k not in areas}
    return {
        **run,
        "metrics": {**metrics, **run["metrics"]},
        "failures": {**failures, **run["failures"]},
        "areas": {**kept, **run["areas"]},
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _load() -> float:
    """The 1-minute load average (the machine is shared: say how busy it was)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else -1.0


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def _print_table(metrics: dict[str, float], failures: dict[str, str]) -> None:
    width = max((len(name) for name in metrics), default=10)
    print(f"{'metric':<{width}}  {'value':>14}  goal")
    for name, value in sorted(metrics.items()):
        goal = goal_of(name, metrics)
        verdict = ""
        if goal is not None:
            op, bound, text = goal
            met = value <= bound if op == "<=" else value >= bound
            verdict = f"{text}  {'met' if met else 'MISSED'}"
        print(f"{name:<{width}}  {value:>14.4g}  {verdict}")
    for area, reason in failures.items():
        print(f"{area}: FAILED {reason}")


if __name__ == "__main__":
    raise SystemExit(main())
