"""poll(): backoff, jitter, give-up and truthy results, sync and asyncio."""

from __future__ import annotations

import asyncio
import random
from itertools import islice
from pathlib import Path

import pytest

from agent_lib import (
    ConfigError,
    DeadlineExceeded,
    PollingPolicy,
    TimeoutManager,
    apoll,
    current_deadline,
    poll,
)
from agent_lib.timeouts.metrics import TimeoutEvents
from agent_lib.timeouts.polling import backoff_delays, poll_with

POLICY = PollingPolicy(interval=1, max_interval=5, multiplier=2, jitter=0, max_duration=20)
FAST = PollingPolicy(interval=0.001, max_interval=0.004, multiplier=2, jitter=0.1, max_duration=5)


class FakeTime:
    """Clock and sleep in one: sleeping moves the clock, so no real time passes."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_grows_by_multiplier_up_to_max_interval() -> None:
    assert list(islice(backoff_delays(POLICY), 6)) == [1, 2, 4, 5, 5, 5]


def test_jitter_stays_within_its_fraction_and_the_cap() -> None:
    policy = PollingPolicy(interval=1, max_interval=8, multiplier=2, jitter=0.5, max_duration=60)
    delays = list(islice(backoff_delays(policy, random.Random(7)), 200))
    nominal = [min(2**i, 8) for i in range(200)]
    assert all(d * 0.5 <= got <= min(d * 1.5, 8) for d, got in zip(nominal, delays, strict=True))
    assert len({round(d, 6) for d in delays[10:]}) > 1  # really jittered


def test_returns_the_first_truthy_result_after_backing_off() -> None:
    fake = FakeTime()
    answers = iter([None, 0, "", {"ready": True}])
    result = poll_with(lambda: next(answers), POLICY, sleep=fake.sleep, clock=fake.clock)
    assert result == {"ready": True}
    assert fake.sleeps == [1, 2, 4]


def test_gives_up_after_max_duration_and_counts_it() -> None:
    fake = FakeTime()
    events = TimeoutEvents()
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    with pytest.raises(DeadlineExceeded) as caught:
        poll_with(never, POLICY, name="jobDone", events=events, sleep=fake.sleep, clock=fake.clock)
    assert caught.value.name == "jobDone"
    assert caught.value.budget == 20
    assert fake.sleeps == [1, 2, 4, 5, 5, 3]  # the last sleep is cut to the budget
    assert sum(fake.sleeps) == 20
    assert calls == 7  # one last check at the deadline
    assert events.stats()["timeouts"] == {"jobDone": 1.0}


def test_poll_dispatches_on_the_check_kind() -> None:
    answers = iter([False, 3])
    assert poll(lambda: next(answers), policy=FAST) == 3


async def test_poll_with_an_async_check_returns_a_coroutine() -> None:
    answers = iter([False, False, "done"])

    async def check() -> str | bool:
        await asyncio.sleep(0)
        return next(answers)

    assert await poll(check, policy=FAST) == "done"


async def test_apoll_accepts_a_sync_check() -> None:
    answers = iter([[], [1]])
    assert await apoll(lambda: next(answers), policy=FAST) == [1]


async def test_apoll_cancels_a_hanging_check_at_max_duration() -> None:
    events = TimeoutEvents()
    finished = False

    async def hangs() -> bool:
        nonlocal finished
        await asyncio.sleep(30)
        finished = True
        return True

    with pytest.raises(DeadlineExceeded) as caught:
        await apoll(hangs, policy=FAST, max_duration=0.02, name="hang", events=events)
    assert not finished
    assert caught.value.name == "hang"
    assert events.stats()["timeouts"] == {"hang": 1.0}


def test_keyword_arguments_override_single_fields() -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        poll(lambda: False, policy=FAST, max_duration=0.01)
    assert caught.value.budget == 0.01


def test_default_policy_is_the_builtin_profile_of_the_environment(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("HOURGLASS_PROFILE", "prod")
    with pytest.raises(DeadlineExceeded) as caught:
        poll(lambda: False, interval=0.001, max_interval=0.002, max_duration=0.01)
    assert caught.value.budget == 0.01
    assert poll(lambda: "ok") == "ok"


def test_manager_poll_uses_the_profiles_policy(kube_folder: Path) -> None:
    tm = TimeoutManager(config_dir=kube_folder, environ={"HOURGLASS_PROFILE": "prod"})
    assert tm.current.polling.max_duration == 120
    answers = iter([None, "up"])
    assert tm.poll(lambda: next(answers), interval=0.001) == "up"
    with pytest.raises(DeadlineExceeded):
        tm.poll(lambda: False, name="warmup", interval=0.001, max_interval=0.002, max_duration=0.01)
    assert tm.stats()["timeouts"] == {"warmup": 1.0}


async def test_manager_apoll(kube_folder: Path) -> None:
    tm = TimeoutManager(config_dir=kube_folder, environ={})
    answers = iter([0, 0, 9])
    assert await tm.apoll(lambda: next(answers), interval=0.001, max_interval=0.002) == 9


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ((0, 1, 2, 0, 3), "polling.interval"),
        ((1, 1, 0.5, 0, 3), "polling.multiplier"),
        ((1, 1, 2, 1.5, 3), "polling.jitter"),
        ((2, 1, 2, 0, 3), "polling"),
        ((1, 1, 2, 0, float("inf")), "polling.maxDuration"),
    ],
)
def test_invalid_policy_names_the_field(values: tuple[float, ...], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PollingPolicy(*values)
    assert caught.value.field == field


# --- the last check, async checks through the manager (issue 26) -----------------------


def _at_the_budget() -> str | None:
    """A check that has something only once the polling budget has run out."""
    budget = current_deadline()
    assert budget is not None
    return "job" if budget.remaining() <= 0 else None


def test_a_result_of_the_last_check_is_returned_not_discarded() -> None:
    fake = FakeTime()
    events = TimeoutEvents()
    result = poll_with(_at_the_budget, POLICY, events=events, sleep=fake.sleep, clock=fake.clock)
    assert result == "job"
    assert sum(fake.sleeps) == POLICY.max_duration
    assert events.stats()["timeouts"] == {}


def test_a_slow_check_that_returns_after_the_budget_keeps_its_result() -> None:
    fake = FakeTime()
    popped: list[str] = []

    def slow_pop() -> str:
        fake.now += POLICY.max_duration + 1
        popped.append("job")
        return "job"

    assert poll_with(slow_pop, POLICY, sleep=fake.sleep, clock=fake.clock) == "job"
    assert popped == ["job"]


async def test_apoll_also_makes_the_last_check_at_the_budget() -> None:
    policy = PollingPolicy(
        interval=0.005, max_interval=0.01, multiplier=2, jitter=0, max_duration=0.03
    )
    assert await apoll(_at_the_budget, policy=policy) == "job"

    async def async_at_the_budget() -> str | None:
        await asyncio.sleep(0)
        return _at_the_budget()

    assert await apoll(async_at_the_budget, policy=policy) == "job"


async def test_manager_poll_awaits_an_async_check(kube_folder: Path) -> None:
    tm = TimeoutManager(config_dir=kube_folder, environ={})
    answers = iter([False, False, "done"])

    async def check() -> str | bool:
        await asyncio.sleep(0)
        return next(answers)

    assert await tm.poll(check, interval=0.001, max_interval=0.002) == "done"


def test_sync_poll_refuses_a_check_that_returns_an_awaitable() -> None:
    async def job_done() -> bool:
        return True

    with pytest.raises(TypeError, match="apoll"):
        poll(lambda: job_done(), policy=FAST, name="jobPoll")
