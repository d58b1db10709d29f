"""Timeouts for the HTTP clients agents call (httpx, aiohttp), from a TimeoutManager.

``TimeoutManager.httpx_timeout`` and ``aiohttp_timeout`` are thin wrappers over these
functions. The client library is imported only when one is called, so agent_lib
imports without httpx or aiohttp. Inside an active `deadline`, no figure exceeds the
budget left, and an exhausted budget raises `DeadlineExceeded` before any request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agent_lib.timeouts.deadlines import check_deadline, remaining

if TYPE_CHECKING:
    import aiohttp
    import httpx

_FLOOR_S = 0.001
"""The smallest figure handed to a client: zero means 'no timeout' to some of them."""


class _Timeouts(Protocol):
    def get(self, name: str) -> float: ...


def _capped(seconds: float) -> float:
    left = remaining()
    if left is not None:
        seconds = min(seconds, left)
    return max(_FLOOR_S, seconds)


def _figures(manager: _Timeouts, name: str, connect: str | None) -> tuple[float, float | None]:
    check_deadline()
    total = _capped(manager.get(name))
    if connect is None:
        return total, None
    return total, min(total, _capped(manager.get(connect)))


def httpx_timeout(
    manager: _Timeouts, name: str, *, connect: str | None = "connect"
) -> httpx.Timeout:
    """An ``httpx.Timeout``: read, write and pool of timeout ``name``, connect of ``connect``."""
    import httpx

    total, connect_s = _figures(manager, name, connect)
    return httpx.Timeout(total, connect=total if connect_s is None else connect_s)


def aiohttp_timeout(
    manager: _Timeouts, name: str, *, connect: str | None = "connect"
) -> aiohttp.ClientTimeout:
    """An ``aiohttp.ClientTimeout``: total and socket read of ``name``, connect of ``connect``."""
    import aiohttp

    total, connect_s = _figures(manager, name, connect)
    return aiohttp.ClientTimeout(
        total=total, connect=connect_s, sock_connect=connect_s, sock_read=total
    )
