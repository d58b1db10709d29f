"""Cleanup scaling series: the time to remove a fixed number of expired sessions as the
number of live sessions beside them grows (the plot in docs/benchmarks.md).

The design promise is that cleanup's cost follows the sessions to remove, not the live
ones (an index sorted by deadline, batches, UNLINK), so the curve should stay flat.
Each population is loaded and cleaned exactly as ``bench/sessions.py`` does for
``cleanup_scaling_ratio`` (its `_Population`: a valkey-server of its own, the live
sessions stay, each round adds ``EXPIRED`` sessions Redis already expired and times
``sm.cleanup()``); one warm-up round, then ``REPEATS`` rounds interleaved across
populations. Each point keeps the best, median and worst of its rounds (timings on a
shared machine only get longer), every round's time, and the spread of its ratio to the
first population round by round (``ratio_min``/``ratio_max``: a slow moment hits both
sides of a pair alike, so this spread is the method's own noise).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from typing import Any

from bench.sessions import _Population, _server

EXPIRED = 10_000
LIVE_FULL = (0, 10_000, 30_000, 100_000, 300_000, 1_000_000)
LIVE_QUICK = (0, 10_000, 30_000, 100_000)
REPEATS = 5


def series(quick: bool) -> dict[str, Any]:
    """``{"expired": N, "repeats": R, "points": [{"live", "best_s", "median_s", "max_s",
    "times_s", "ratio_min", "ratio_max"}, ...]}``."""
    points = asyncio.run(_measure(LIVE_QUICK if quick else LIVE_FULL))
    return {"expired": EXPIRED, "repeats": REPEATS, "points": points}


async def _measure(lives: tuple[int, ...]) -> list[dict[str, Any]]:
    runs: dict[int, list[float]] = {live: [] for live in lives}
    with contextlib.ExitStack() as servers:
        urls = {live: servers.enter_context(_server()) for live in lives}
        async with contextlib.AsyncExitStack() as stack:
            populations = {
                live: await stack.enter_async_context(_Population(urls[live], live))
                for live in lives
            }
            for population in populations.values():  # warm-up: connections, scripts
                await population.clean(EXPIRED)
            for _ in range(REPEATS):  # interleaved, so a slow moment hits every size alike
                for live, population in populations.items():
                    runs[live].append(await population.clean(EXPIRED))
    first = runs[lives[0]]
    points = []
    for live, times in runs.items():
        paired = [mine / theirs for mine, theirs in zip(times, first, strict=True)]
        points.append(
            {
                "live": live,
                "best_s": min(times),
                "median_s": statistics.median(times),
                "max_s": max(times),
                "times_s": times,
                "ratio_min": min(paired),
                "ratio_max": max(paired),
            }
        )
    return points


def run(quick: bool) -> dict[str, float]:
    """The series' spread as one figure: the slowest best time over the fastest one."""
    best = [p["best_s"] for p in series(quick)["points"]]
    return {"cleanup_series_max_over_min": max(best) / min(best)}
