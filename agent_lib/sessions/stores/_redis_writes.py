"""redis-py connections whose write timeout costs nothing when a write cannot wait.

redis-py bounds each command's write with ``asyncio.wait_for``, which on Python 3.11
wraps the write in a new Task: about 10 us of client CPU per command, as much as
packing and parsing a small one. A write is a buffer append and a drain, and the drain
waits only while the transport's buffer is above its high-water mark (64 KiB by
default). So a command that fits under the mark with what is already buffered cannot
wait and needs no timer; a larger one (or one behind a backlog) is bounded by the
socket timeout under ``asyncio.timeout``. Reads keep redis-py's own timeout, and
connecting and health checks are left to redis-py as they are.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as rexc
from redis.asyncio.connection import AbstractConnection


def _size(command: Any) -> int:
    if isinstance(command, (bytes, str)):
        return len(command)
    return sum(map(len, command))


class _TimedWrites:
    """Mixed in before a redis-py connection class (see `with_timed_writes`)."""

    socket_timeout: float | None
    health_check_interval: float
    is_connected: bool
    _writer: asyncio.StreamWriter | None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        send = super().send_packed_command  # type: ignore[misc]
        timeout = self.socket_timeout
        writer = self._writer
        if (
            not timeout
            or writer is None
            or not self.is_connected
            or (check_health and self.health_check_interval)
        ):
            await send(command, check_health)  # connecting or checking: redis-py's own way
            return
        transport = writer.transport
        can_wait = (
            transport.get_write_buffer_size() + _size(command)
            > (transport.get_write_buffer_limits()[1])
        )
        # redis-py's wait_for is skipped by clearing the timeout for the write only (the
        # connection is this task's until released); a change made meanwhile (redis-py's
        # relaxed timeouts during maintenance) is kept.
        self.socket_timeout = None
        try:
            if not can_wait:
                await send(command, check_health)
                return
            async with asyncio.timeout(timeout):
                await send(command, check_health)
        except TimeoutError:
            # redis-py closed the connection on the cancelled write, as on its own timeout
            raise rexc.TimeoutError("Timeout writing to socket") from None
        finally:
            if self.socket_timeout is None:
                self.socket_timeout = timeout


_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def with_timed_writes(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with its write timeout only where a write can wait (one class
    per redis-py class, so that pools of one kind share it)."""
    if issubclass(connection_class, _TimedWrites):
        return connection_class
    made = _CLASSES.get(connection_class)
    if made is None:
        bases = (_TimedWrites, connection_class)
        made = _CLASSES[connection_class] = type(connection_class.__name__, bases, {})
    return made
