"""Cleanup scaling series: the time to remove a fixed number of expired sessions as the
number of live sessions beside them grows (the plot in docs/benchmarks.md).

The design promise is that cleanup's cost follows the sessions to remove, not the live
ones (an index sorted by deadline, batches, UNLINK), so the curve should stay flat.
Namespaces are loaded and cleaned exactly as ``bench/sessions.py`` does for
``cleanup_scaling_ratio`` (same server-side loader, same ``sm.cleanup()``), on a private
valkey-server; each point is the median of ``REPEATS`` runs.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from bench.sessions import _cleanup_run, _server

EXPIRED = 10_000
LIVE_FULL = (0, 10_000, 30_000, 100_000, 300_000, 1_000_000)
LIVE_QUICK = (0, 10_000, 30_000, 100_000)
REPEATS = 3


def series(quick: bool) -> dict[str, Any]:
    """``{"expired": N, "points": [{"live", "median_s", "min_s", "max_s"}, ...]}``."""
    with _server() as url:
        points = asyncio.run(_measure(url, LIVE_QUICK if quick else LIVE_FULL))
    return {"expired": EXPIRED, "repeats": REPEATS, "points": points}


async def _measure(url: str, lives: tuple[int, ...]) -> list[dict[str, float]]:
    await _cleanup_run(url, 1_000, 1_000)  # warm up: connections, script cache
    runs: dict[int, list[float]] = {live: [] for live in lives}
    for _ in range(REPEATS):  # interleaved, so a slow moment hits every size alike
        for live in lives:
            _, seconds = await _cleanup_run(url, EXPIRED, live)
            runs[live].append(seconds)
    return [
        {
            "live": live,
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
        }
        for live, times in runs.items()
    ]


def run(quick: bool) -> dict[str, float]:
    """The series' spread as one figure: slowest median over the fastest one."""
    medians = [p["median_s"] for p in series(quick)["points"]]
    return {"cleanup_series_max_over_min": max(medians) / min(medians)}
