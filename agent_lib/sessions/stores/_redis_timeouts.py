"""redis-py connections whose socket timeout costs no timer per command.

redis-py bounds every write with ``asyncio.wait_for`` (a new Task on Python 3.11) and
every read with ``asyncio.timeout`` (a timer in the loop's heap, cancelled a moment
later). With 32 commands in flight that was about 30 us of client CPU per LangGraph
put and read, a seventh of the whole (``docs/benchmarks.md``). The bound itself
stays; only its machinery changes:

- a read arms a deadline in its loop's `_Watchdog`, one timer per loop that wakes every
  quarter of the timeout while reads are pending and sleeps when none is. A read past
  its deadline has its connection aborted and raises redis-py's ``TimeoutError``
  ("Timeout reading from ..."), as before; it fires between 1 and 1.25 timeouts;
- a write that fits under the transport's high-water mark with what is buffered cannot
  wait (the drain returns at once) and needs no bound; a larger one, or one behind a
  backlog, runs under ``asyncio.timeout`` and raises "Timeout writing to socket".

Connecting keeps its own timeout. A read with an explicit timeout, or a connection
whose timeout redis-py changes (its relaxed timeouts during maintenance), is left to
redis-py as it is.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Any

import redis.exceptions as rexc
from redis.asyncio.connection import AbstractConnection

CHECKS_PER_TIMEOUT = 4
"""How often, per timeout, the watchdog looks at pending reads."""


class _Watchdog:
    """The pending reads of one event loop and their deadlines (loop time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # weakly: `_WATCHDOGS` holds this for as long as the loop lives, no longer
        self._loop_ref = weakref.ref(loop)
        self._armed: dict[int, tuple[float, _Deadlines]] = {}
        self._every = math.inf
        # weakly too: the loop holds its pending timer, and the timer this watchdog
        self._handle: weakref.ref[asyncio.TimerHandle] | None = None

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop_ref()
        assert loop is not None, "a watchdog is used only in its running loop"
        return loop

    def arm(self, connection: _Deadlines, timeout: float) -> None:
        self._armed[id(connection)] = (self._loop.time() + timeout, connection)
        every = timeout / CHECKS_PER_TIMEOUT
        if every < self._every:
            self._every = every
            pending = self._handle() if self._handle is not None else None
            if pending is not None:
                pending.cancel()
            self._handle = None
        if self._handle is None:
            self._schedule(self._loop)

    def disarm(self, connection: _Deadlines) -> None:
        self._armed.pop(id(connection), None)

    def _check(self) -> None:
        self._handle = None
        loop = self._loop
        now = loop.time()
        for key, (deadline, connection) in list(self._armed.items()):
            if deadline <= now:
                del self._armed[key]
                connection._expire()
        if self._armed:
            self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = weakref.ref(loop.call_later(self._every, self._check))


_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)


def _watchdog() -> _Watchdog:
    loop = asyncio.get_running_loop()
    found = _WATCHDOGS.get(loop)
    if found is None:
        found = _WATCHDOGS[loop] = _Watchdog(loop)
    return found


def _size(command: Any) -> int:
    if isinstance(command, (bytes, str)):
        return len(command)
    return sum(map(len, command))


class _Deadlines:
    """Mixed in before a redis-py connection class (see `with_cheap_timeouts`)."""

    socket_timeout: float | None
    _writer: asyncio.StreamWriter | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # redis-py sets no timer while its own timeout is None; this module keeps the bound
        self._io_timeout: float | None = self.socket_timeout
        self.socket_timeout = None
        self._watchdog: _Watchdog | None = None
        self._expired = False

    def _expire(self) -> None:
        """The pending read is past its deadline: end it (the read raises)."""
        self._expired = True
        if self._writer is not None:
            self._writer.transport.abort()

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        send = super().send_packed_command  # type: ignore[misc]
        writer = self._writer
        if not self._io_timeout or self.socket_timeout is not None or writer is None:
            await send(command, check_health)
            return
        transport = writer.transport
        if (
            transport.get_write_buffer_size() + _size(command)
            <= (transport.get_write_buffer_limits()[1])
        ):
            await send(command, check_health)  # cannot wait for the server
            return
        try:
            async with asyncio.timeout(self._io_timeout):
                await send(command, check_health)
        except TimeoutError:
            # redis-py closed the connection on the cancelled write, as on its own timeout
            raise rexc.TimeoutError("Timeout writing to socket") from None

    async def read_response(
        self, disable_decoding: bool = False, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        read = super().read_response  # type: ignore[misc]
        if timeout is not None or self.socket_timeout is not None or not self._io_timeout:
            return await read(disable_decoding, timeout, **kwargs)
        watchdog = self._watchdog = self._watchdog or _watchdog()
        self._expired = False
        watchdog.arm(self, self._io_timeout)
        try:
            response = await read(disable_decoding, None, **kwargs)
        except rexc.ConnectionError:
            if self._expired:
                raise rexc.TimeoutError("Timeout reading from the server") from None
            raise
        finally:
            watchdog.disarm(self)
        if self._expired:  # answered as the deadline struck: the connection is gone
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
        return response


_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def with_cheap_timeouts(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with its socket timeout kept by `_Deadlines` (one class per
    redis-py class, so that pools of one kind share it)."""
    if issubclass(connection_class, _Deadlines):
        return connection_class
    made = _CLASSES.get(connection_class)
    if made is None:
        bases = (_Deadlines, connection_class)
        made = _CLASSES[connection_class] = type(connection_class.__name__, bases, {})
    return made
