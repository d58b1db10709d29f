"""Status writes per rollout (issue 21): pods reporting one after another for a while end
in a handful of status writes, and the write that leaves no pod pending is not held.

The real `_Debouncer` on a real event loop, with its windows shortened (10 ms debounce,
0.3 s progress interval). The bound on refreshes holds however loaded the machine is:
load only stretches the gaps between refreshes. Before the fix each debounce window
made its own refresh: these 1.2 s of reports made 120 (and a 2,000-pod rollout in the
fleet benchmark, 50 status writes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hourglass_operator.rollout_handlers import _Debouncer

NS = "fleet"
REPORTS = 240
EVERY_S = 0.005
INTERVAL_S = 0.3


class _Rollout:
    """Pods still pending, as each refresh saw it."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.seen: list[int] = []

    async def refresh(self, namespace: str, indices: Mapping[str, Any]) -> None:
        self.seen.append(self.pending)

    def settled(self, namespace: str, indices: Mapping[str, Any]) -> bool:
        return self.pending == 0


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def test_a_long_rollout_makes_a_handful_of_refreshes_and_the_last_sees_it_done() -> None:
    async def scenario() -> _Rollout:
        rollout = _Rollout(REPORTS)
        debouncer = _Debouncer(rollout.refresh, rollout.settled, debounce=0.01, interval=INTERVAL_S)
        for _ in range(REPORTS):
            rollout.pending -= 1
            debouncer.poke(NS, {})
            await asyncio.sleep(EVERY_S)
        await _until(lambda: rollout.seen and rollout.seen[-1] == 0)
        return rollout

    rollout = asyncio.run(scenario())
    longest = REPORTS * EVERY_S * 2  # sleeps overshoot; at most double
    assert len(rollout.seen) <= longest / INTERVAL_S + 2, rollout.seen
    assert rollout.seen[-1] == 0


def test_the_write_that_settles_the_rollout_is_not_held_for_the_interval() -> None:
    async def scenario() -> _Rollout:
        rollout = _Rollout(2)
        debouncer = _Debouncer(rollout.refresh, rollout.settled, debounce=0.01, interval=300)
        rollout.pending = 1
        debouncer.poke(NS, {})
        await _until(lambda: len(rollout.seen) == 1)
        rollout.pending = 0
        debouncer.poke(NS, {})
        await _until(lambda: len(rollout.seen) == 2)  # long before 300 s
        return rollout

    assert asyncio.run(scenario()).seen == [1, 0]


def test_progress_is_held_to_the_interval_while_pods_are_pending() -> None:
    async def scenario() -> tuple[_Rollout, bool]:
        rollout = _Rollout(3)
        debouncer = _Debouncer(rollout.refresh, rollout.settled, debounce=0.01, interval=300)
        debouncer.poke(NS, {})
        await _until(lambda: len(rollout.seen) == 1)
        rollout.pending = 2
        debouncer.poke(NS, {})
        await asyncio.sleep(0.5)
        held = len(rollout.seen) == 1
        rollout.pending = 0  # the hold ends as soon as the rollout settles
        await _until(lambda: len(rollout.seen) == 2)
        return rollout, held

    rollout, held = asyncio.run(scenario())
    assert held
    assert rollout.seen == [3, 0]
