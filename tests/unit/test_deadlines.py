"""Deadlines: sync and asyncio, nesting through contextvars, and the expiry counters."""

from __future__ import annotations

import asyncio
import contextvars
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from agent_lib import (
    Deadline,
    DeadlineExceeded,
    TimeoutEvents,
    TimeoutManager,
    check_deadline,
    current_deadline,
    deadline,
    remaining,
)


class FakeClock:
    """A clock the test moves by hand, so that sync deadlines need no real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prometheus_count(name: str) -> float:
    return REGISTRY.get_sample_value("hourglass_timeouts_total", {"name": name}) or 0.0


# --- sync -----------------------------------------------------------------------------


def test_remaining_is_none_outside_and_bounded_inside() -> None:
    assert remaining() is None
    assert current_deadline() is None
    clock = FakeClock()
    with deadline("request", 10, clock=clock) as active:
        assert current_deadline() is active
        assert remaining() == 10.0
        clock.now += 4
        assert remaining() == 6.0
    assert remaining() is None


def test_sync_deadline_raises_at_exit_and_counts() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with (
        pytest.raises(DeadlineExceeded) as caught,
        deadline("toolCall", 2, events=events, clock=clock),
    ):
        clock.now += 3
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert (error.name, error.budget, error.elapsed) == ("toolCall", 2.0, 3.0)
    assert events.stats()["timeouts"] == {"toolCall": 1.0}
    assert events.stats()["timeout_elapsed_seconds"] == {"toolCall": 3.0}


def test_sync_deadline_within_budget_does_not_raise() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with deadline("toolCall", 2, events=events, clock=clock):
        clock.now += 1.5
    assert events.stats()["timeouts"] == {}


def test_check_deadline_stops_a_loop_early() -> None:
    clock = FakeClock()
    steps = 0
    with pytest.raises(DeadlineExceeded), deadline("batch", 5, clock=clock):
        while True:
            check_deadline()
            steps += 1
            clock.now += 1
    assert steps == 5


def test_nested_takes_the_smaller_budget_and_names_the_binding_one() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with deadline("request", 10, events=events, clock=clock) as outer:
        clock.now += 8
        with deadline("connect", 1, events=events, clock=clock) as short:
            assert short.binding is short
            assert remaining() == 1.0
        with (
            pytest.raises(DeadlineExceeded) as caught,
            deadline("llmCall", 60, events=events, clock=clock) as inner,
        ):
            assert inner.remaining() == 2.0
            assert remaining() == 2.0
            assert inner.binding is outer
            clock.now += 3
            inner.check()
        assert caught.value.name == "request"
        assert caught.value.elapsed == 11.0
        clock.now -= 3  # back inside the outer budget so that leaving it is clean
    assert events.stats()["timeouts"] == {"request": 1.0}


def test_nested_expiry_is_counted_once() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with (
        pytest.raises(DeadlineExceeded),
        deadline("request", 10, events=events, clock=clock),
        deadline("llmCall", 60, events=events, clock=clock),
    ):
        clock.now += 12
    assert events.stats()["timeouts"] == {"request": 1.0}


def test_timeout_error_at_expiry_becomes_deadline_exceeded() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with (
        pytest.raises(DeadlineExceeded) as caught,
        deadline("llmCall", 5, events=events, clock=clock),
    ):
        clock.now += 5
        raise TimeoutError("socket timed out")
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert events.stats()["timeouts"] == {"llmCall": 1.0}


def test_early_timeout_error_is_not_the_deadlines() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with pytest.raises(TimeoutError) as caught, deadline("llmCall", 60, events=events, clock=clock):
        clock.now += 1
        raise TimeoutError("inner 1s timeout")
    assert not isinstance(caught.value, DeadlineExceeded)
    assert events.stats()["timeouts"] == {}


def test_other_exceptions_pass_through() -> None:
    clock = FakeClock()
    with pytest.raises(KeyError), deadline("x", 1, clock=clock):
        clock.now += 5
        raise KeyError("bug")


def test_a_deadline_is_entered_once_and_needs_a_positive_budget() -> None:
    active = Deadline("x", 1)
    with active, pytest.raises(RuntimeError, match="already active"), active:
        pass
    with pytest.raises(ValueError, match="positive"):
        Deadline("x", 0)


def test_manager_deadline_counts_per_name(tmp_path: Path) -> None:
    tm = TimeoutManager(config_dir=tmp_path, environ={}, overrides={"toolCall": "1ms"})
    before = prometheus_count("toolCall")
    with pytest.raises(DeadlineExceeded) as caught, tm.deadline("toolCall"):
        time.sleep(0.01)
    assert caught.value.budget == 0.001
    assert tm.stats()["timeouts"] == {"toolCall": 1.0}
    assert tm.stats()["timeout_elapsed_seconds"]["toolCall"] >= 0.01
    assert prometheus_count("toolCall") == before + 1
    with tm.deadline("llmCall") as active:
        budget = tm.remaining()
        assert budget is not None
        assert 0 < budget <= 300.0
        assert active.budget == 300.0
    assert tm.remaining() is None


def test_manager_deadline_of_an_unknown_name(tmp_path: Path) -> None:
    tm = TimeoutManager(config_dir=tmp_path, environ={})
    with pytest.raises(KeyError, match="llmCall"):
        tm.deadline("llmcall")


def test_config_info_and_reload_metrics_exist(kube_folder: Path) -> None:
    tm = TimeoutManager(config_dir=kube_folder, environ={"HOURGLASS_PROFILE": "staging"})
    labels = {"profile": "staging", "hash": tm.current.hash}
    assert REGISTRY.get_sample_value("hourglass_config_info", labels) == 1.0
    before = REGISTRY.get_sample_value("hourglass_config_reloads_total", {"result": "unchanged"})
    tm.reload()
    after = REGISTRY.get_sample_value("hourglass_config_reloads_total", {"result": "unchanged"})
    assert after == (before or 0.0) + 1


# --- asyncio --------------------------------------------------------------------------


async def test_async_deadline_cancels_the_inner_work() -> None:
    events = TimeoutEvents()
    finished = False
    with pytest.raises(DeadlineExceeded) as caught:
        async with deadline("llmCall", 0.02, events=events):
            await asyncio.sleep(30)
            finished = True
    assert not finished
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert caught.value.name == "llmCall"
    assert events.stats()["timeouts"] == {"llmCall": 1.0}


async def test_async_deadline_within_budget() -> None:
    async with deadline("llmCall", 30) as active:
        await asyncio.sleep(0)
        assert remaining() == pytest.approx(active.remaining(), abs=1)
    assert remaining() is None


async def test_async_nested_parent_budget_cancels_the_child() -> None:
    events = TimeoutEvents()
    with pytest.raises(DeadlineExceeded) as caught:
        async with (
            deadline("request", 0.02, events=events),
            deadline("llmCall", 60, events=events) as inner,
        ):
            budget = inner.remaining()
            assert budget <= 0.02
            await asyncio.sleep(30)
    assert caught.value.name == "request"
    assert events.stats()["timeouts"] == {"request": 1.0}


async def test_async_child_shorter_than_parent_lets_the_parent_continue() -> None:
    events = TimeoutEvents()
    async with deadline("request", 30, events=events):
        with pytest.raises(DeadlineExceeded) as caught:
            async with deadline("toolCall", 0.01, events=events):
                await asyncio.sleep(30)
        assert caught.value.name == "toolCall"
        await asyncio.sleep(0)
        assert remaining() is not None
    assert events.stats()["timeouts"] == {"toolCall": 1.0}


async def test_tasks_have_their_own_deadlines() -> None:
    async def budget_in(seconds: float) -> float | None:
        async with deadline("task", seconds):
            await asyncio.sleep(0)
            return remaining()

    short, long = await asyncio.gather(budget_in(5), budget_in(500))
    assert short is not None
    assert long is not None
    assert short <= 5 < long


async def test_child_task_inherits_the_deadline_of_its_creator() -> None:
    with pytest.raises(DeadlineExceeded):
        async with deadline("request", 0.05):

            async def child() -> float | None:
                return remaining()

            inherited = await asyncio.create_task(child())
            assert inherited is not None
            assert inherited <= 0.05
            await asyncio.sleep(30)


async def test_manager_async_deadline(tmp_path: Path) -> None:
    tm = TimeoutManager(config_dir=tmp_path, environ={}, overrides={"llmCall": "10ms"})
    with pytest.raises(DeadlineExceeded):
        async with tm.deadline("llmCall"):
            await asyncio.sleep(30)
    assert tm.stats()["timeouts"] == {"llmCall": 1.0}


# --- which deadline a timeout belongs to, counted once (issue 26) --------------------------


async def test_a_stray_timeout_error_is_not_blamed_on_a_parent_with_time_left() -> None:
    """An inner ``asyncio.timeout`` firing inside ``llmCall`` (bound by ``request``) is
    neither deadline's expiry: ``request`` has nearly all of its budget left."""
    events = TimeoutEvents()
    async with deadline("request", 5, events=events):
        with pytest.raises(TimeoutError) as caught:
            async with deadline("llmCall", 300, events=events), asyncio.timeout(0.01):
                await asyncio.sleep(30)
        assert not isinstance(caught.value, DeadlineExceeded)
    assert events.stats()["timeouts"] == {}


def test_a_timeout_error_at_the_parents_expiry_is_the_parents() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with deadline("request", 5, events=events, clock=clock):
        with (
            pytest.raises(DeadlineExceeded) as caught,
            deadline("llmCall", 300, events=events, clock=clock),
        ):
            clock.now += 5
            raise TimeoutError("socket timeout from remaining()")
        clock.now -= 1  # let the outer block end inside its budget
    assert caught.value.name == "request"
    assert events.stats()["timeouts"] == {"request": 1.0}


def test_an_expiry_caught_inside_the_block_is_counted_once() -> None:
    clock = FakeClock()
    events = TimeoutEvents()
    with pytest.raises(DeadlineExceeded), deadline("toolCall", 2, events=events, clock=clock):
        clock.now += 3
        with pytest.raises(DeadlineExceeded):
            check_deadline()
    assert events.stats()["timeouts"] == {"toolCall": 1.0}


async def test_an_expiry_caught_inside_an_async_block_is_counted_once() -> None:
    events = TimeoutEvents()
    with pytest.raises(DeadlineExceeded):
        async with deadline("toolCall", 0.02, events=events):
            await asyncio.sleep(0.01)
            while True:
                try:
                    check_deadline()
                except DeadlineExceeded:
                    break
            await asyncio.sleep(30)
    assert events.stats()["timeouts"] == {"toolCall": 1.0}


# --- a finished deadline binds no one (issue 26) ---------------------------------------


async def test_a_task_that_outlives_its_request_is_not_bound_by_it() -> None:
    events = TimeoutEvents()
    finished = asyncio.Event()

    async def background() -> tuple[float | None, Deadline | None]:
        await finished.wait()
        check_deadline()
        return remaining(), current_deadline()

    async with deadline("request", 0.02, events=events):
        task = asyncio.create_task(background())
    await asyncio.sleep(0.05)  # past the request's budget
    finished.set()
    assert await task == (None, None)
    assert events.stats()["timeouts"] == {}


async def test_a_deadline_in_such_a_task_is_freed_and_keeps_the_running_ancestor() -> None:
    events = TimeoutEvents()
    entered = asyncio.Event()

    async def background() -> tuple[float, Deadline]:
        async with deadline("toolCall", 30, events=events) as tool:
            entered.set()
            await asyncio.sleep(0.05)  # the request ends and its budget passes meanwhile
            return tool.remaining(), tool.binding

    async with deadline("session", 20, events=events) as session:
        async with deadline("request", 0.02, events=events) as request:
            task = asyncio.create_task(background())
            await entered.wait()
            assert current_deadline() is request
        left, binding = await task
    assert binding is session.binding is session
    assert 0 < left <= 20
    assert events.stats()["timeouts"] == {}


def test_a_thread_given_the_requests_context_is_not_bound_after_it_ends() -> None:
    clock = FakeClock()
    with deadline("request", 1, clock=clock):
        context = contextvars.copy_context()
        assert context.run(remaining) == 1.0
    clock.now += 5
    assert context.run(remaining) is None
    context.run(check_deadline)
