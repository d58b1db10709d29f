"""Deadlines, property-based: whichever timer fires, the error names the deadline whose
budget actually ran out, and each expiry is counted once.

The synchronous chains run on a hand-moved clock, so every case is exact: hypothesis
picks the budgets, how long passes before each level is entered and inside the
innermost one, and how the block ends (plain exit, `check_deadline`, expiries caught
and checked again by threads sharing the context, or a stray ``TimeoutError`` from
some client's own timer). The asyncio chains use the real event-loop timers; what is
expected is computed from the start times the deadlines recorded.

On the code before issue 26 the synchronous property fails; hypothesis shrinks to
``chain_levels=[Level(1, 0)], inside=1, how="exit", checkers=1``: the expiry a thread
caught is counted again when the block exits (``{"d0": 2.0}``). A stray timeout is
caught too (``[Level(1, 0), Level(100, 0)]``, stray at once: ``d0`` blamed with its
whole budget left, the slack being taken from ``d1``'s 100 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent_lib import Deadline, DeadlineExceeded, TimeoutEvents, check_deadline, deadline

NO_EXPLAIN = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)
"""Hypothesis' explain phase traces every line, far too slow on Python 3.11 to report
a failure within the test timeout."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Level:
    budget: int
    entered_after: int
    """Seconds that pass before this level is entered."""


def _slack(budget: float) -> float:
    """The documented tolerance: a client timeout this close to the expiry is the deadline's."""
    return max(0.01, 0.02 * budget)


def first_to_run_out(levels: list[Deadline]) -> Deadline:
    """Of a chain (outermost first), the one whose own budget ends first; the innermost on a tie."""
    return min(reversed(levels), key=lambda d: d.started_at + d.budget)


def expected_outcome(chain: list[Deadline], now: float, how: str) -> str | None:
    """The name ``DeadlineExceeded`` should carry, or None for no such error."""
    if how != "stray-timeout":
        binding = first_to_run_out(chain)
        return binding.name if now >= binding.started_at + binding.budget else None
    # A stray TimeoutError leaves block after block; each judges it against the budget
    # that binds it, and it is that budget's expiry only when that has (nearly) run out.
    for depth in range(len(chain), 0, -1):
        binding = first_to_run_out(chain[:depth])
        if binding.started_at + binding.budget - now <= _slack(binding.budget):
            return binding.name
    return None


levels = st.lists(st.builds(Level, st.integers(1, 100), st.integers(0, 60)), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None, phases=NO_EXPLAIN)
@given(
    chain_levels=levels,
    inside=st.integers(0, 150),
    how=st.sampled_from(["exit", "check", "checks-caught", "stray-timeout"]),
    checkers=st.integers(0, 3),
)
def test_sync_chains_name_the_budget_that_ran_out_and_count_it_once(
    chain_levels: list[Level], inside: int, how: str, checkers: int
) -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    chain: list[Deadline] = []
    outcome: BaseException | None = None
    try:
        with contextlib.ExitStack() as stack:
            for depth, level in enumerate(chain_levels):
                clock.now += level.entered_after
                chain.append(
                    stack.enter_context(
                        deadline(f"d{depth}", level.budget, events=events, clock=clock)
                    )
                )
            clock.now += inside
            _check_in_threads(checkers)
            if how == "check":
                check_deadline()
            elif how == "checks-caught":
                for _ in range(2):
                    with contextlib.suppress(DeadlineExceeded):
                        check_deadline()
            elif how == "stray-timeout":
                raise TimeoutError("a client's own timer")
    except TimeoutError as error:
        outcome = error
    name = expected_outcome(chain, clock.now, how)
    if name is None:
        assert outcome is None or type(outcome) is TimeoutError, outcome
        assert events.stats()["timeouts"] == {}
    else:
        assert isinstance(outcome, DeadlineExceeded), outcome
        assert outcome.name == name
        assert events.stats()["timeouts"] == {name: 1.0}


def _check_in_threads(count: int) -> None:
    """Threads sharing this context check the deadline too; their expiries are the same one."""

    def check(context: contextvars.Context) -> None:
        with contextlib.suppress(DeadlineExceeded):
            context.run(check_deadline)

    threads = [
        threading.Thread(target=check, args=(contextvars.copy_context(),)) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


@settings(
    max_examples=25,
    deadline=None,
    phases=NO_EXPLAIN,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    budgets_ms=st.lists(st.sampled_from([20, 40, 60, 1000]), min_size=1, max_size=4),
    pauses_ms=st.lists(st.sampled_from([0, 10, 30]), min_size=4, max_size=4),
    caught=st.booleans(),
)
def test_async_timers_name_the_budget_that_ran_out_and_count_it_once(
    budgets_ms: list[int], pauses_ms: list[int], caught: bool
) -> None:
    events = TimeoutEvents()
    chain: list[Deadline] = []

    async def nest(depth: int) -> None:
        if depth == len(budgets_ms):
            while caught:
                try:
                    check_deadline()
                except DeadlineExceeded:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(30)
            return
        await asyncio.sleep(pauses_ms[depth] / 1000)
        async with deadline(f"d{depth}", budgets_ms[depth] / 1000, events=events) as level:
            chain.append(level)
            await nest(depth + 1)

    async def run() -> BaseException | None:
        try:
            await nest(0)
        except TimeoutError as error:
            return error
        return None

    outcome = asyncio.run(run())
    binding = first_to_run_out(chain)
    assert isinstance(outcome, DeadlineExceeded), outcome
    assert outcome.name == binding.name
    assert events.stats()["timeouts"] == {binding.name: 1.0}
