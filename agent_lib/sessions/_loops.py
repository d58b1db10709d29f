"""Session objects shared between event loops and threads.

A redis-py asyncio connection (and its pool's locks) belongs to the loop that opened
it: reused from another loop it fails with "Event loop is closed" or "attached to a
different loop". ``asyncio.run`` twice, the Agents SDK's ``Runner.run_sync``, a sync web
framework calling async code per request and a thread pool whose threads each run a
loop all call one `SessionManager` from several loops, in turn or at once.

`PerLoop` keeps one resource (a client with its pool) per live loop. A pool closes on
its own loop just before that loop closes: asyncio closes every async generator a
loop started when the loop shuts down (``asyncio.run``, ``asyncio.Runner``,
``loop.shutdown_asyncgens()``), and each pool is watched by such a generator. A loop
closed without that step is noticed when another loop next asks, and its pool is
dropped (its sockets close when collected). At most ``limit`` pools are kept: past it
the least recently used loop's pool is closed on its loop and made again if that loop
asks again.

`running`/`stop` keep a periodic task (a cleaner, a sweeper) alive in whichever loop
calls, and `thread_safe` serialises an in-process store's methods between threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

MAX_EVENT_LOOPS = 16
"""Most event loops one store keeps a connection pool for at the same time."""

_log = logging.getLogger("agent_lib.sessions")
_T = TypeVar("_T")
_C = TypeVar("_C", bound=type)


class _Entry(Generic[_T]):
    __slots__ = ("loop", "value", "watcher")

    def __init__(self, loop: asyncio.AbstractEventLoop, value: _T) -> None:
        self.loop = loop
        self.value = value
        self.watcher: AsyncGenerator[None, None] | None = None


class PerLoop(Generic[_T]):
    """One ``make()`` per live event loop, closed with ``close(value)`` on that loop."""

    def __init__(
        self,
        make: Callable[[], _T],
        close: Callable[[_T], Awaitable[object]],
        *,
        limit: int = MAX_EVENT_LOOPS,
        first: _T | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._make = make
        self._close = close
        self.limit = limit
        self._first = first  # made before any loop asked: goes to the first one that does
        self._entries: OrderedDict[asyncio.AbstractEventLoop, _Entry[_T]] = OrderedDict()
        self._last: tuple[asyncio.AbstractEventLoop, _T] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Pools kept now (loops that closed unnoticed count until the next `get`)."""
        return len(self._entries)

    def get(self) -> _T:
        """The running loop's resource, made on its first use in that loop."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        return self._get_slow(loop)

    def _get_slow(self, loop: asyncio.AbstractEventLoop) -> _T:
        with self._lock:
            entry = self._entries.get(loop)
            if entry is None:
                entry = self._add(loop)
            else:
                self._entries.move_to_end(loop)
            self._last = (loop, entry.value)
            return entry.value

    def _add(self, loop: asyncio.AbstractEventLoop) -> _Entry[_T]:
        for other in [e for e in self._entries.values() if e.loop.is_closed()]:
            self._forget(other)  # closed without shutdown_asyncgens: nothing left to await
        while len(self._entries) >= self.limit:
            evicted = next(iter(self._entries.values()))
            self._forget(evicted)
            _log.warning(
                "more than %d event loops use one session store at once: the pool of the "
                "least recently used one is closed (raise max_event_loops to keep more)",
                self.limit,
            )
            self._release_elsewhere(evicted)
        value = self._make() if self._first is None else self._first
        self._first = None
        entry = _Entry(loop, value)
        self._entries[loop] = entry
        entry.watcher = self._watch(entry)
        _start(entry.watcher)
        return entry

    def _forget(self, entry: _Entry[_T]) -> bool:
        """Drop ``entry`` from the registry; ``False`` when it was gone already."""
        if self._entries.get(entry.loop) is not entry:
            return False
        del self._entries[entry.loop]
        if self._last is not None and self._last[0] is entry.loop:
            self._last = None
        return True

    async def _watch(self, entry: _Entry[_T]) -> AsyncGenerator[None, None]:
        """Suspended for the loop's life; its ``finally`` runs on the loop as it shuts down
        (or when the entry is released), and closes the resource there."""
        try:
            yield
        finally:
            with self._lock:
                self._forget(entry)
            try:
                await self._close(entry.value)
            except Exception as error:  # a pool that cannot close cleanly is still gone
                _log.debug("closing a connection pool of a finished event loop: %r", error)

    def _release_elsewhere(self, entry: _Entry[_T]) -> None:
        """Close ``entry`` on its own loop (another thread's, or idle between runs)."""
        watcher = entry.watcher
        if watcher is None or entry.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            entry.loop.call_soon_threadsafe(_finish_soon, watcher)

    async def aclose(self) -> None:
        """Close every pool: this loop's now, other live loops' on their loops."""
        current = asyncio.get_running_loop()
        with self._lock:
            entries = list(self._entries.values())
            for entry in entries:
                self._forget(entry)
            first, self._first = self._first, None
        for entry in entries:
            if entry.loop is current and entry.watcher is not None:
                await _finish(entry.watcher)
            else:
                self._release_elsewhere(entry)
        if first is not None:
            await self._close(first)


def _start(generator: AsyncGenerator[None, None]) -> None:
    """Run ``generator`` to its first ``yield`` now, in the running loop's thread, so the
    loop registers it (asyncio's first-iteration hook) and closes it at shutdown."""
    step = generator.asend(None)
    try:
        step.send(None)
    except StopIteration:
        return
    raise RuntimeError("the loop watcher suspended before its first yield")


async def _finish(generator: AsyncGenerator[None, None]) -> None:
    await generator.aclose()


_finishing: set[asyncio.Task[None]] = set()


def _finish_soon(generator: AsyncGenerator[None, None]) -> None:
    """In the generator's loop: close it in a task (made here, not in the caller's
    thread, so a loop that never runs again leaves no coroutine un-awaited)."""
    task = asyncio.get_running_loop().create_task(_finish(generator))
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


def running(task: asyncio.Task[Any] | None) -> bool:
    """Whether ``task`` still runs or will: not done, and its loop not closed."""
    return task is not None and not task.done() and not task.get_loop().is_closed()


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` from any loop; wait for it only when it runs in this one.

    Its own errors are left to it (the periodic tasks log theirs); a cancellation of
    the caller itself still propagates.
    """
    if task is None or task.done():
        return
    loop = task.get_loop()
    if loop is not asyncio.get_running_loop():
        with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
            loop.call_soon_threadsafe(task.cancel)
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception as error:
        _log.debug("a stopped background task ended with %r", error)


def thread_safe(cls: _C) -> _C:
    """Class decorator: every public coroutine method but ``close`` (the store, item and
    record calls, whichever class defines them) runs under the instance's re-entrant
    ``_lock``.

    The in-process store keeps its state in dicts whose updates span several
    statements; one lock makes each call atomic between threads. The lock is held
    across an ``await`` only by cleanup's yields between batches: re-entrant, so other
    calls of the same thread's loop go on meanwhile, as they did before.
    """
    names = [
        name
        for name in dir(cls)
        if not name.startswith("_")
        and name != "close"
        and inspect.iscoroutinefunction(getattr(cls, name))
    ]
    for name in names:
        setattr(cls, name, _locked(getattr(cls, name)))
    return cls


def _locked(
    method: Callable[..., Coroutine[Any, Any, _T]],
) -> Callable[..., Coroutine[Any, Any, _T]]:
    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> _T:
        with self._lock:
            return await method(self, *args, **kwargs)

    return call
