"""Record HTTP calls made under a named timeout into the latency histogram.

``TimeoutManager.httpx_timeout`` only hands a figure to the client; the call itself
is seen by a transport (httpx) or a trace config (aiohttp). Latency is time to the
response headers; a status of 500 or more counts as ``error``, a client timeout as
``timeout``. The client libraries are imported only when these are called.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agent_lib.timeouts.timing import LatencyRecorder, default_recorder, outcome_of

if TYPE_CHECKING:
    import aiohttp
    import httpx


def _status_outcome(status: int) -> str:
    return "error" if status >= 500 else "ok"


def httpx_transport(
    name: str,
    transport: Any | None = None,
    *,
    recorder: LatencyRecorder | None = None,
) -> httpx.BaseTransport:
    """A sync httpx transport (wrapping ``transport``, default ``httpx.HTTPTransport()``)
    that records each request as one operation of ``name``."""
    import httpx

    inner = transport if transport is not None else httpx.HTTPTransport()
    sink = recorder or default_recorder

    class _Timed(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            started = time.perf_counter()
            try:
                response: httpx.Response = inner.handle_request(request)
            except BaseException as error:
                sink.observe(name, time.perf_counter() - started, outcome_of(error))
                raise
            sink.observe(name, time.perf_counter() - started, _status_outcome(response.status_code))
            return response

        def close(self) -> None:
            inner.close()

    return _Timed()


def httpx_async_transport(
    name: str,
    transport: Any | None = None,
    *,
    recorder: LatencyRecorder | None = None,
) -> httpx.AsyncBaseTransport:
    """The asyncio form of `httpx_transport` (default ``httpx.AsyncHTTPTransport()``)."""
    import httpx

    inner = transport if transport is not None else httpx.AsyncHTTPTransport()
    sink = recorder or default_recorder

    class _Timed(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            started = time.perf_counter()
            try:
                response: httpx.Response = await inner.handle_async_request(request)
            except BaseException as error:
                sink.observe(name, time.perf_counter() - started, outcome_of(error))
                raise
            sink.observe(name, time.perf_counter() - started, _status_outcome(response.status_code))
            return response

        async def aclose(self) -> None:
            await inner.aclose()

    return _Timed()


def aiohttp_trace_config(
    name: str, *, recorder: LatencyRecorder | None = None
) -> aiohttp.TraceConfig:
    """An ``aiohttp.TraceConfig`` recording each request as one operation of ``name``:
    ``aiohttp.ClientSession(trace_configs=[tm.aiohttp_trace_config("llmCall")])``."""
    import aiohttp

    sink = recorder or default_recorder
    config = aiohttp.TraceConfig()

    async def start(_session: Any, context: Any, _params: Any) -> None:
        context.hourglass_started = time.perf_counter()

    async def end(_session: Any, context: Any, params: Any) -> None:
        elapsed = time.perf_counter() - context.hourglass_started
        sink.observe(name, elapsed, _status_outcome(params.response.status))

    async def failed(_session: Any, context: Any, params: Any) -> None:
        elapsed = time.perf_counter() - context.hourglass_started
        sink.observe(name, elapsed, outcome_of(params.exception))

    config.on_request_start.append(start)
    config.on_request_end.append(end)
    config.on_request_exception.append(failed)
    return config
