"""``poll(check)``: retry a check under a profile's polling policy until it is truthy.

The policy is the profile's ``polling`` block: exponential backoff from ``interval``
by ``multiplier`` up to ``maxInterval``, each sleep scaled by a random factor in
``[1 - jitter, 1 + jitter]`` (so many pods do not retry in step), and a give-up
after ``maxDuration`` raising `DeadlineExceeded`. The polling runs inside a
`Deadline`, so an enclosing deadline shortens it and every give-up is counted. The
last check is made when the budget runs out, sync and async alike, and a result a
check returned is always returned, never replaced by `DeadlineExceeded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar, overload

from agent_lib.errors import ConfigError
from agent_lib.timeouts._layers import builtin_polling
from agent_lib.timeouts.deadlines import Clock, Deadline
from agent_lib.timeouts.metrics import TimeoutEvents

if TYPE_CHECKING:
    from agent_lib.config.bundle import RenderedPolling

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PollingPolicy:
    """A resolved polling block, in seconds."""

    interval: float
    max_interval: float
    multiplier: float
    jitter: float
    max_duration: float

    def __post_init__(self) -> None:
        for field, value in (
            ("polling.interval", self.interval),
            ("polling.maxInterval", self.max_interval),
            ("polling.maxDuration", self.max_duration),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(field, f"must be a positive number of seconds, got {value!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ConfigError("polling.multiplier", f"must be at least 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("polling.jitter", f"must be between 0 and 1, got {self.jitter!r}")
        if not self.interval <= self.max_interval <= self.max_duration:
            raise ConfigError(
                "polling",
                "interval <= maxInterval <= maxDuration must hold, got "
                f"{self.interval}, {self.max_interval}, {self.max_duration}",
            )

    @classmethod
    def from_rendered(cls, polling: RenderedPolling) -> PollingPolicy:
        """The policy of a rendered profile's ``polling`` block."""
        return cls(
            polling.interval,
            polling.max_interval,
            polling.multiplier,
            polling.jitter,
            polling.max_duration,
        )


def backoff_delays(policy: PollingPolicy, rng: random.Random | None = None) -> Iterator[float]:
    """The endless sequence of sleeps between checks, jittered, never above maxInterval."""
    pick = (rng or random).uniform
    delay = policy.interval
    while True:
        factor = pick(1.0 - policy.jitter, 1.0 + policy.jitter) if policy.jitter else 1.0
        yield min(delay * factor, policy.max_interval)
        delay = min(delay * policy.multiplier, policy.max_interval)


def _resolve(policy: PollingPolicy | None, **changes: float | None) -> PollingPolicy:
    if policy is None:
        policy = PollingPolicy.from_rendered(builtin_polling())
    given = {key: value for key, value in changes.items() if value is not None}
    return replace(policy, **given) if given else policy


@overload
def poll(
    check: Callable[[], Awaitable[T]],
    *,
    policy: PollingPolicy | None = None,
    name: str = "poll",
    interval: float | None = None,
    max_interval: float | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_duration: float | None = None,
    events: TimeoutEvents | None = None,
    rng: random.Random | None = None,
) -> Coroutine[Any, Any, T]: ...


@overload
def poll(
    check: Callable[[], T],
    *,
    policy: PollingPolicy | None = None,
    name: str = "poll",
    interval: float | None = None,
    max_interval: float | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_duration: float | None = None,
    events: TimeoutEvents | None = None,
    rng: random.Random | None = None,
) -> T: ...


def poll(
    check: Callable[[], Any],
    *,
    policy: PollingPolicy | None = None,
    name: str = "poll",
    interval: float | None = None,
    max_interval: float | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_duration: float | None = None,
    events: TimeoutEvents | None = None,
    rng: random.Random | None = None,
) -> Any:
    """Call ``check`` until it returns something truthy, and return that.

    An ``async def`` check makes this return a coroutine (the same as `apoll`).
    ``policy`` defaults to the built-in profile of this environment; the keyword
    arguments override single fields of it. Raises `DeadlineExceeded` (named
    ``name``, or the enclosing deadline's name when that one is shorter).
    """
    resolved = _resolve(
        policy,
        interval=interval,
        max_interval=max_interval,
        multiplier=multiplier,
        jitter=jitter,
        max_duration=max_duration,
    )
    if inspect.iscoroutinefunction(check):
        return apoll(check, policy=resolved, name=name, events=events, rng=rng)
    return poll_with(check, resolved, name=name, events=events, rng=rng)


def poll_with(
    check: Callable[[], T],
    policy: PollingPolicy,
    *,
    name: str = "poll",
    events: TimeoutEvents | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Clock = time.monotonic,
) -> T:
    """The synchronous loop behind `poll`, with injectable ``sleep`` and ``clock``.

    The last check is made when the budget runs out, and whatever a check returns is
    returned, even past the budget: a result that was produced (a popped job) is never
    thrown away. `DeadlineExceeded` only when that last check comes back empty.
    """
    delays = backoff_delays(policy, rng)
    budget = Deadline(name, policy.max_duration, events=events, clock=clock)
    with _settled(budget):
        while True:
            result = check()
            if inspect.isawaitable(result):
                _refuse_awaitable(result, name)
            if result:
                return result
            left = budget.remaining()
            if left <= 0:
                raise budget._exceeded()
            sleep(min(next(delays), left))


async def apoll(
    check: Callable[[], T | Awaitable[T]],
    *,
    policy: PollingPolicy | None = None,
    name: str = "poll",
    interval: float | None = None,
    max_interval: float | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_duration: float | None = None,
    events: TimeoutEvents | None = None,
    rng: random.Random | None = None,
) -> T:
    """`poll` for asyncio: ``check`` may be sync or async.

    The same schedule as `poll`, last check at the budget included, and a result is
    never thrown away. An async check still running once the budget has run out is
    cancelled (`DeadlineExceeded`), but each check gets at least the policy's
    ``interval`` to answer, so the last one is not cancelled as it starts.
    """
    resolved = _resolve(
        policy,
        interval=interval,
        max_interval=max_interval,
        multiplier=multiplier,
        jitter=jitter,
        max_duration=max_duration,
    )
    delays = backoff_delays(resolved, rng)
    budget = Deadline(name, resolved.max_duration, events=events)
    with _settled(budget):
        while True:
            result = await _bounded(check(), budget, resolved.interval)
            if result:
                return result
            left = budget.remaining()
            if left <= 0:
                raise budget._exceeded()
            await asyncio.sleep(min(next(delays), left))


async def _bounded(result: T | Awaitable[T], budget: Deadline, least: float) -> T:
    """Await an async check's answer, cancelled once the budget (at least ``least``) is up."""
    if not inspect.isawaitable(result):
        return result
    loop = asyncio.get_running_loop()
    timer = asyncio.timeout_at(loop.time() + max(budget.remaining(), least))
    try:
        async with timer:
            return await result
    except TimeoutError as error:
        if timer.expired():
            raise budget._exceeded() from error
        raise


@contextlib.contextmanager
def _settled(budget: Deadline) -> Iterator[Deadline]:
    """``budget`` as the active deadline, without `Deadline`'s check at exit: the loop
    itself decides when the budget is spent, so a result it returns is kept."""
    budget._enter()
    ended: BaseException | None = None
    try:
        yield budget
    except TimeoutError as error:
        replacement = budget._outcome(error)
        ended = replacement or error
        if replacement is None:
            raise
        raise replacement from error
    except BaseException as error:
        ended = error
        raise
    finally:
        budget._leave()
        budget._record(ended)  # the latency histogram (agent_lib.timeouts.timing)


def _refuse_awaitable(result: object, name: str) -> None:
    if inspect.iscoroutine(result):
        result.close()
    raise TypeError(
        f"{name}: the check returned an awaitable; use apoll (or await poll) for async checks"
    )
