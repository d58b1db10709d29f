"""Named deadlines that nest: an inner deadline never outlives the one around it.

The innermost active deadline lives in a context variable, so each asyncio task and
each thread sees its own chain. A deadline's effective expiry is the earlier of its
own budget and its parent's, and `remaining()` gives what is left to hand to an
HTTP client's ``timeout``.

- ``async with``: the inner work is cancelled at expiry (``asyncio.timeout_at``) and
  `DeadlineExceeded` (a ``TimeoutError``) is raised.
- ``with``: Python cannot interrupt synchronous code without signals, so the
  deadline is checked at exit, and `Deadline.check()` / `check_deadline()` let long
  loops stop early. A ``TimeoutError`` escaping the block within a small slack of
  the expiry of the budget that binds it (say, from a socket whose timeout came from
  `remaining()`) counts as that budget's expiry; an earlier one passes through.

Every expiry is reported once (however often it is checked, caught, or seen from
other tasks), by the deadline whose budget ran out, to a `TimeoutEvents` (counts and
elapsed time per name). A deadline binds only while its block runs: a task created
inside it that outlives the block is bound by the nearest enclosing deadline still
running, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
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
    """One named budget; enter it with ``with`` or ``async with`` (once per object).

    A deadline binds only while its block runs. A task or thread that inherited it
    (a task created inside the block) and outlives the block is no longer bound by it:
    `remaining()` and `check_deadline()` skip it to the nearest enclosing deadline still
    running, and a deadline entered below it stops being capped by it (an ``async with``
    timer is moved to the new expiry).
    """

    __slots__ = (
        "_active",
        "_async_timeout",
        "_children",
        "_clock",
        "_events",
        "_listed_in",
        "_loop",
        "_own_expiry",
        "_reported",
        "_thread",
        "_token",
        "budget",
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._active = False
        self._reported = False
        self._children: set[Deadline] = set()
        self._listed_in: Deadline | None = None
        self.parent: Deadline | None = None
        self.started_at = 0.0
        self._own_expiry = 0.0

    # --- state ----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True while the block runs (entered, not yet left)."""
        return self._active

    @property
    def binding(self) -> Deadline:
        """The deadline whose budget ends this one first: itself, or a running ancestor."""
        owner, expiry = self, self._own_expiry
        ancestor = self.parent
        while ancestor is not None:
            if ancestor._active and ancestor._own_expiry < expiry:
                owner, expiry = ancestor, ancestor._own_expiry
            ancestor = ancestor.parent
        return owner

    @property
    def expires_at(self) -> float:
        """The effective expiry (clock time): the earlier of its own and its running parents'."""
        return self.binding._own_expiry

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

    def _exceeded(self, owner: Deadline | None = None) -> DeadlineExceeded:
        """The error for the deadline whose budget ran out; its expiry is counted once."""
        owner = owner or self.binding
        elapsed = self._clock() - owner.started_at
        with _registry:
            first, owner._reported = not owner._reported, True
        if first:
            owner._events.timeout(owner.name, elapsed)
        return DeadlineExceeded(owner.name, owner.budget, elapsed)

    # --- entering and leaving -------------------------------------------------------

    def _enter(self) -> None:
        if self._token is not None:
            raise RuntimeError(f"deadline {self.name!r} is already active")
        self.started_at = self._clock()
        self._own_expiry = self.started_at + self.budget
        self._reported = False
        self.parent = _running(_current.get())
        with _registry:
            if self.parent is not None:
                self.parent._children.add(self)
            self._listed_in = self.parent
            self._active = True
        self._token = _current.set(self)

    def _leave(self) -> None:
        if self._token is None:
            return
        _current.reset(self._token)
        self._token = None
        with _registry:
            self._active = False
            if self._listed_in is not None:
                self._listed_in._children.discard(self)
            heir = _running(self.parent)
            orphans, self._children = self._children, set()
            for child in orphans:
                child._listed_in = heir
                if heir is not None:
                    heir._children.add(child)
        for child in orphans:
            child._retime()

    def _retime(self) -> None:
        """A running ancestor finished: move this block's timer (and its children's)."""
        timer, loop = self._async_timeout, self._loop
        if timer is not None and loop is not None:
            when = loop.time() + (self.expires_at - self._clock())
            if threading.get_ident() == self._thread:
                _reschedule(timer, when)
            else:
                with contextlib.suppress(RuntimeError):  # that loop is closed: nothing to move
                    loop.call_soon_threadsafe(_reschedule, timer, when)
        with _registry:
            children = list(self._children)
        for child in children:
            child._retime()

    def _record(self, error: BaseException | None) -> None:
        """One operation of this name in the latency histogram (`agent_lib.timeouts.timing`)."""
        elapsed = self._clock() - self.started_at
        default_recorder.observe(self.name, elapsed, deadline_outcome(self.name, error))

    def _outcome(self, error: BaseException | None) -> BaseException | None:
        """The exception to raise on exit instead of ``error``, if any.

        A ``TimeoutError`` from inside the block is this deadline's expiry only when
        the budget that binds (its own or a parent's) is within its slack of running
        out; any earlier one is someone else's timer and passes through unchanged.
        """
        if isinstance(error, DeadlineExceeded):
            return None
        if error is None:
            return self._exceeded() if self.expired else None
        if isinstance(error, TimeoutError):
            owner = self.binding
            if owner._own_expiry - self._clock() <= _slack(owner.budget):
                return self._exceeded(owner)
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
        replacement = self._outcome(exc)
        self._leave()
        self._record(replacement or exc)
        if replacement is not None:
            raise replacement from exc

    async def __aenter__(self) -> Deadline:
        self._enter()
        loop = asyncio.get_running_loop()
        self._loop, self._thread = loop, threading.get_ident()
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
            error = self._exceeded()
            self._leave()
            self._record(error)
            raise error from timed_out
        replacement = self._outcome(exc)
        self._leave()
        self._record(replacement or exc)
        if replacement is not None:
            raise replacement from exc


_registry = threading.Lock()
"""Guards the parent/children links between deadlines and the counted-once flags."""


def _running(deadline: Deadline | None) -> Deadline | None:
    """``deadline`` or its nearest ancestor whose block is still running."""
    while deadline is not None and not deadline._active:
        deadline = deadline.parent
    return deadline


def _reschedule(timer: asyncio.Timeout, when: float) -> None:
    if not timer.expired():
        with contextlib.suppress(RuntimeError):
            timer.reschedule(when)


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
    """The innermost running deadline of this task or thread, if any."""
    return _running(_current.get())


def remaining() -> float | None:
    """Seconds left in the innermost active deadline, or None outside any deadline."""
    active = _running(_current.get())
    return None if active is None else active.remaining()


def check_deadline() -> None:
    """Raise `DeadlineExceeded` if the innermost running deadline has run out."""
    active = _running(_current.get())
    if active is not None:
        active.check()
