"""How long every bounded operation took, per timeout name and outcome: the tuning input.

Each operation run under a named timeout (a `Deadline`, `poll`, the HTTP helpers'
hooks, or ``TimeoutManager.timed(name)``) is recorded once into one process-wide
histogram, exported through ``prometheus-client`` as

    hourglass_operation_duration_seconds{name, outcome}   outcome: ok | timeout | error

**Buckets.** Upper bounds grow geometrically by ``RATIO`` (< 1.1) from 10 ms
(``BUCKETS[0]``) past 30 min (``BUCKETS[-1]``). PromQL's ``histogram_quantile``
interpolates linearly inside the bucket holding the quantile; the true value ``t``
and the estimate ``e`` then both lie in ``[a, a*RATIO]``, so
``|e - t| / t <= RATIO - 1 < 10%`` for any distribution: a p99.9 read back through
PromQL is within ±10% of the true one anywhere in 10 ms .. 30 min.
(tests/unit/test_timing_buckets.py checks the ratio and the interpolation.)

**Series per pod** (bounded): at most ``MAX_NAMES`` timeout names (further names are
recorded as ``name="_other"``), times 3 outcomes, times ``len(BUCKETS) + 3`` = 132 series
(the buckets, ``+Inf``, ``_sum``, ``_count``): 17 x 3 x 132 = 6,732 at most; a pod
whose calls only succeed, with the five built-in names, exports 5 x 132 = 660. A
(name, outcome) pair is exported only once it has been seen.

The hot path is a ``bisect`` and three additions under one lock; no label lookup.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Final, TypeVar, cast

from agent_lib.errors import DeadlineExceeded

METRIC: Final = "hourglass_operation_duration_seconds"
OUTCOMES: Final = ("ok", "timeout", "error")
RATIO: Final = 1.0999
MIN_SECONDS: Final = 0.01
MAX_SECONDS: Final = 1800.0
MAX_NAMES: Final = 16
OTHER: Final = "_other"


def _bounds() -> tuple[float, ...]:
    """Geometric upper bounds, 6 significant digits (keeps the ratio below 1.1)."""
    bounds: list[float] = []
    k = 0
    while not bounds or bounds[-1] < MAX_SECONDS:
        bounds.append(float(f"{MIN_SECONDS * RATIO**k:.6g}"))
        k += 1
    return tuple(bounds)


BUCKETS: Final = _bounds()

F = TypeVar("F", bound=Callable[..., Any])


class _Series:
    """Non-cumulative bucket counts (the last one is +Inf), sum and count of one pair."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0


class LatencyRecorder:
    """The process-wide store behind the histogram: thread-safe, bounded in names."""

    def __init__(self, max_names: int = MAX_NAMES) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}
        self._names: set[str] = set()
        self._max_names = max_names

    def observe(self, name: str, seconds: float, outcome: str) -> None:
        """Count one operation of ``name`` that took ``seconds`` and ended in ``outcome``."""
        index = bisect_left(BUCKETS, seconds)
        key = (name, outcome)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(name, outcome)
            series.buckets[index] += 1
            series.sum += seconds
            series.count += 1

    def _new_series(self, name: str, outcome: str) -> _Series:
        if name not in self._names:
            if len(self._names) >= self._max_names:
                name = OTHER
            self._names.add(name)
        return self._series.setdefault((name, outcome), _Series())

    def snapshot(self) -> dict[tuple[str, str], tuple[list[int], float, int]]:
        """``(name, outcome) -> (cumulative counts per bound and +Inf, sum, count)``."""
        with self._lock:
            copied = {k: (list(s.buckets), s.sum, s.count) for k, s in self._series.items()}
        out: dict[tuple[str, str], tuple[list[int], float, int]] = {}
        for key, (counts, total, count) in copied.items():
            running, cumulative = 0, []
            for value in counts:
                running += value
                cumulative.append(running)
            out[key] = (cumulative, total, count)
        return out

    def reset(self) -> None:
        """Forget every series (tests)."""
        with self._lock:
            self._series.clear()
            self._names.clear()


default_recorder = LatencyRecorder()
"""Where every bounded operation of this process is recorded."""


def outcome_of(error: BaseException | None) -> str:
    """``ok``, ``timeout`` (any TimeoutError, httpx's TimeoutException) or ``error``."""
    if error is None:
        return "ok"
    if isinstance(error, TimeoutError) or any(
        cls.__name__ == "TimeoutException" for cls in type(error).__mro__
    ):
        return "timeout"
    return "error"


def deadline_outcome(name: str, error: BaseException | None) -> str:
    """A deadline's outcome: ``timeout`` only when its own budget ran out, not an inner one's."""
    if isinstance(error, DeadlineExceeded):
        return "timeout" if error.name == name else "error"
    return outcome_of(error)


class Timed:
    """``with``/``async with`` block or decorator that records one operation of ``name``."""

    __slots__ = ("_recorder", "_started", "name")

    def __init__(self, name: str, recorder: LatencyRecorder | None = None) -> None:
        self.name = name
        self._recorder = recorder or default_recorder
        self._started = 0.0

    def __enter__(self) -> Timed:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._started
        self._recorder.observe(self.name, elapsed, "ok" if exc is None else outcome_of(exc))

    async def __aenter__(self) -> Timed:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        """Decorate ``func`` (sync or ``async def``): each call is one recorded operation."""
        name, recorder = self.name, self._recorder
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with Timed(name, recorder):
                    return await func(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Timed(name, recorder):
                return func(*args, **kwargs)

        return cast(F, run)


def timed(name: str, recorder: LatencyRecorder | None = None) -> Timed:
    """Record how long the block (or each call of the decorated function) took, by outcome."""
    return Timed(name, recorder)


# --- export ---------------------------------------------------------------------------


class _Collector:
    """A prometheus-client collector that reads the recorder at scrape time."""

    def __init__(self, recorder: LatencyRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(
            METRIC,
            "How long operations run under a named timeout took, by outcome.",
            labels=["name", "outcome"],
        )
        labels = [f"{bound:.6g}" for bound in BUCKETS] + ["+Inf"]
        for (name, outcome), (cumulative, total, _count) in sorted(
            self._recorder.snapshot().items()
        ):
            family.add_metric(
                [name, outcome],
                list(zip(labels, (float(c) for c in cumulative), strict=False)),
                total,
            )
        yield family


_registered = False
_register_lock = threading.Lock()


def register(registry: Any | None = None, recorder: LatencyRecorder | None = None) -> bool:
    """Export the histogram through ``registry`` (default: prometheus-client's REGISTRY).

    Called once on import of agent_lib's timeouts when prometheus-client is installed;
    returns False without it.
    """
    global _registered
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - only where the extra is not installed
        return False
    target = registry if registry is not None else prometheus_client.REGISTRY
    collector = _Collector(recorder or default_recorder)
    if registry is not None:
        target.register(collector)
        return True
    with _register_lock:
        if not _registered:
            target.register(collector)
            _registered = True
    return True


register()
