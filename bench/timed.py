"""``timed_overhead_ns``: what ``with tm.timed(name):`` costs over a bare perf_counter pair.

Both sides time an empty block in a tight loop, interleaved in many short rounds; the
best round of each approaches the undisturbed cost on a shared machine. The bare side
is ``t = perf_counter(); perf_counter() - t`` (what any hand-rolled timing costs); the
timed side also records the observation into the histogram (a bisect over the bucket
bounds and three additions under a lock). Goal: at most 1,000 ns more per operation.
"""

from __future__ import annotations

import time

from agent_lib import TimeoutManager

N = 20_000
ROUNDS = {True: 30, False: 150}


def _bare(n: int) -> float:
    clock = time.perf_counter
    started = clock()
    for _ in range(n):
        t = clock()
        _ = clock() - t
    return clock() - started


def _timed(tm: TimeoutManager, n: int) -> float:
    clock = time.perf_counter
    started = clock()
    for _ in range(n):
        with tm.timed("llmCall"):
            pass
    return clock() - started


def run(quick: bool) -> dict[str, float]:
    tm = TimeoutManager(config_dir="/nonexistent")
    bare, timed = float("inf"), float("inf")
    for _ in range(ROUNDS[quick]):
        bare = min(bare, _bare(N))
        timed = min(timed, _timed(tm, N))
    return {
        "timed_overhead_ns": round((timed - bare) / N * 1e9, 1),
        "timed_bare_pair_ns": round(bare / N * 1e9, 1),
    }
