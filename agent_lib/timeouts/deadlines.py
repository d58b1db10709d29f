"""Named deadlines that nest: an inner deadline never outlives the one around it.

The innermost active deadline lives in a context variable, so each asyncio task and
each thread sees its own chain. A deadline's effective expiry is the earlier of its
own budget and its parent's, and `remaining()` gives what is left to hand to an
HTTP client's ``timeout``.

- ``async with``: the inner work is cancelled at expiry (``asyncio.timeout_at``) and
  `DeadlineExceeded` (a ``TimeoutError``) is raised.
- ``with``: Python cannot interrupt synchronous code without signals, so the
  deadline is checked at exit, and `Deadline.check()` / `check_deadline()` let long
  loops stop early. A ``TimeoutError`` escaping the block at the expiry (say, from
  a socket whose timeout came from `remaining()`) counts as this deadline's expiry.

Every expiry is reported once, by the deadline whose budget ran out, to a
`TimeoutEvents` (counts and elapsed time per name).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType

from agent_lib.errors import DeadlineExceeded
from agent_lib.timeouts.metrics import TimeoutEvents, default_events
from agent_lib.timeouts.timing import deadline_outcome, default_recorder

Clock = Callable[[], float]

_current: ContextVar[Deadline | None] = ContextVar("hourglass_deadline", default=None)


class Deadline:
    """One named budget; enter it with ``with`` or ``async with`` (once per object)."""

    __slots__ = (
        "_async_timeout",
        "_clock",
        "_events",
        "_token",
        "binding",
        "budget",
        "expires_at",
        "name",
        "parent",
        "started_at",
    )

    def __init__(
        self,
        name: str,
        seconds: float,
        *,
        events: TimeoutEvents | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not seconds > 0:
            raise ValueError(f"{name}: a deadline needs a positive number of seconds")
        self.name = name
        self.budget = float(seconds)
        self._events = events or default_events
        self._clock = clock
        self._token: Token[Deadline | None] | None = None
        self._async_timeout: asyncio.Timeout | None = None
        self.parent: Deadline | None = None
        self.binding: Deadline = self
        self.started_at = 0.0
        self.expires_at = 0.0

    # --- state ----------------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds left before the effective expiry (never negative)."""
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.expires_at

    def check(self) -> None:
        """Raise `DeadlineExceeded` now if the budget (own or inherited) ran out."""
        if self.expired:
            raise self._exceeded()

    def _exceeded(self) -> DeadlineExceeded:
        """Build the error for the deadline whose budget bound, and count it once."""
        owner = self.binding
        elapsed = self._clock() - owner.started_at
        owner._events.timeout(owner.name, elapsed)
        return DeadlineExceeded(owner.name, owner.budget, elapsed)

    # --- entering and leaving -------------------------------------------------------

    def _enter(self) -> None:
        if self._token is not None:
            raise RuntimeError(f"deadline {self.name!r} is already active")
        self.started_at = self._clock()
        self.expires_at = self.started_at + self.budget
        self.parent = _current.get()
        if self.parent is not None and self.parent.expires_at < self.expires_at:
            self.expires_at = self.parent.expires_at
            self.binding = self.parent.binding
        self._token = _current.set(self)

    def _leave(self) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def _record(self, error: BaseException | None) -> None:
        """One operation of this name in the latency histogram (`agent_lib.timeouts.timing`)."""
        elapsed = self._clock() - self.started_at
        default_recorder.observe(self.name, elapsed, deadline_outcome(self.name, error))

    def _outcome(self, error: BaseException | None) -> BaseException | None:
        """The exception to raise on exit instead of ``error``, if any."""
        if isinstance(error, DeadlineExceeded):
            return None
        if error is None and self.expired:
            return self._exceeded()
        if isinstance(error, TimeoutError) and self.remaining() <= _slack(self.budget):
            return self._exceeded()
        return None

    def __enter__(self) -> Deadline:
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        replacement = self._outcome(exc)
        self._record(replacement or exc)
        if replacement is not None:
            raise replacement from exc

    async def __aenter__(self) -> Deadline:
        self._enter()
        loop = asyncio.get_running_loop()
        when = loop.time() + (self.expires_at - self._clock())
        self._async_timeout = asyncio.timeout_at(when)
        await self._async_timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        timer, self._async_timeout = self._async_timeout, None
        try:
            if timer is not None:
                await timer.__aexit__(exc_type, exc, tb)
        except TimeoutError as timed_out:
            self._leave()
            exceeded = self._exceeded()
            self._record(exceeded)
            raise exceeded from timed_out
        finally:
            self._leave()
        replacement = self._outcome(exc)
        self._record(replacement or exc)
        if replacement is not None:
            raise replacement from exc


def _slack(budget: float) -> float:
    """How early a client timeout built from `remaining()` may fire and still be ours."""
    return max(0.01, 0.02 * budget)


def deadline(
    name: str,
    seconds: float,
    *,
    events: TimeoutEvents | None = None,
    clock: Clock = time.monotonic,
) -> Deadline:
    """A `Deadline` of ``seconds`` named ``name`` (use `TimeoutManager.deadline` for profiles)."""
    return Deadline(name, seconds, events=events, clock=clock)


def current_deadline() -> Deadline | None:
    """The innermost active deadline of this task or thread, if any."""
    return _current.get()


def remaining() -> float | None:
    """Seconds left in the innermost active deadline, or None outside any deadline."""
    active = _current.get()
    return None if active is None else active.remaining()


def check_deadline() -> None:
    """Raise `DeadlineExceeded` if the innermost active deadline has run out."""
    active = _current.get()
    if active is not None:
        active.check()
