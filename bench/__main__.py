"""``python -m bench [--quick] [--json PATH] [--only AREA]``: run every benchmark area.

Each area is a module ``bench/<area>.py`` with ``run(quick: bool) -> dict[str, float]``.
An area whose dependencies are missing is reported and skipped, never faked.
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

from bench._goals import GOALS

AREAS = ("timeouts", "sessions", "agents", "operator", "apiserver", "local")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; under a minute")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    parser.add_argument("--only", action="append", choices=AREAS, default=None)
    parser.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not regenerate docs/benchmarks.md and its plots (skipped with --only)",
    )
    args = parser.parse_args(argv)
    metrics: dict[str, float] = {}
    failures: dict[str, str] = {}
    for area in args.only or AREAS:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{area}")
            metrics.update(module.run(args.quick))
        except Exception as error:  # one broken area must not hide the others
            failures[area] = f"{type(error).__name__}: {error}"
        print(f"# {area}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    report = {
        "metrics": metrics,
        "failures": failures,
        "quick": args.quick,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    _print_table(metrics, failures)
    # A partial run (--only) must not replace the complete figures of the last full run.
    targets = [args.json_path] if args.json_path else []
    if not args.only:
        targets.append(RESULTS)
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if args.report and not args.only:
        from bench import report as markdown  # imported here: matplotlib only when reporting

        markdown.main(["--measure", *(["--quick"] if args.quick else [])])
    return 1 if failures else 0


def _print_table(metrics: dict[str, float], failures: dict[str, str]) -> None:
    width = max((len(name) for name in metrics), default=10)
    print(f"{'metric':<{width}}  {'value':>14}  goal")
    for name, value in sorted(metrics.items()):
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None:
            op, bound = goal
            met = value <= bound if op == "<=" else value >= bound
            verdict = f"{op} {bound:g}  {'met' if met else 'MISSED'}"
        print(f"{name:<{width}}  {value:>14.4g}  {verdict}")
    for area, reason in failures.items():
        print(f"{area}: FAILED {reason}")


if __name__ == "__main__":
    raise SystemExit(main())
