"""Timeout events: every expiry counted per timeout name, with how long the operation ran.

Plain in-process counters are always kept (``TimeoutEvents.stats()``), so an agent
without ``prometheus-client`` still sees them. When ``prometheus-client`` is
importable the same events also feed process-wide Prometheus metrics:

- ``hourglass_timeouts_total{name}`` (counter)
- ``hourglass_timeout_elapsed_seconds{name}`` (histogram)
- ``hourglass_config_reloads_total{result}`` (counter; ``ok``, ``error``, ``unchanged``)
- ``hourglass_config_info{profile,hash}`` (info: the active profile and config hash)
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_prometheus: Any
try:
    import prometheus_client as _prometheus
except ImportError:  # pragma: no cover - exercised only where the extra is not installed
    _prometheus = None

PROMETHEUS_AVAILABLE = _prometheus is not None
ELAPSED_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _PrometheusMetrics:
    """The process-wide metric objects; created once because a registry refuses duplicates."""

    def __init__(self, prometheus: Any) -> None:
        self.timeouts = prometheus.Counter(
            "hourglass_timeouts", "Operations that ran out of their named timeout.", ["name"]
        )
        self.elapsed = prometheus.Histogram(
            "hourglass_timeout_elapsed_seconds",
            "How long an operation ran before its named timeout expired.",
            ["name"],
            buckets=ELAPSED_BUCKETS,
        )
        self.reloads = prometheus.Counter(
            "hourglass_config_reloads", "Reloads of the mounted hourglass.yaml.", ["result"]
        )
        self.info = prometheus.Info("hourglass_config", "The active timeout profile and hash.")


_metrics: _PrometheusMetrics | None = None
_metrics_lock = threading.Lock()


def _prometheus_metrics() -> _PrometheusMetrics | None:
    global _metrics
    if _prometheus is None:
        return None
    with _metrics_lock:
        if _metrics is None:
            _metrics = _PrometheusMetrics(_prometheus)
        return _metrics


@dataclass
class TimeoutEvents:
    """Counters of one TimeoutManager (or of the module-level deadlines), thread-safe."""

    timeouts: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: dict[str, float] = field(default_factory=dict)
    reloads: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def timeout(self, name: str, elapsed: float) -> None:
        """Count one expiry of ``name`` after ``elapsed`` seconds."""
        with self._lock:
            self.timeouts[name] += 1
            self.elapsed_seconds[name] = self.elapsed_seconds.get(name, 0.0) + elapsed
        metrics = _prometheus_metrics()
        if metrics is not None:
            metrics.timeouts.labels(name=name).inc()
            metrics.elapsed.labels(name=name).observe(elapsed)

    def reload(self, result: str) -> None:
        """Count one reload attempt by its result."""
        with self._lock:
            self.reloads[result] += 1
        metrics = _prometheus_metrics()
        if metrics is not None:
            metrics.reloads.labels(result=result).inc()

    def config_info(self, profile: str, config_hash: str) -> None:
        """Publish which profile and config hash are active."""
        metrics = _prometheus_metrics()
        if metrics is not None:
            metrics.info.info({"profile": profile, "hash": config_hash})

    def stats(self) -> dict[str, dict[str, float]]:
        """A copy of the counters: ``timeouts``, ``timeout_elapsed_seconds``, ``reloads``."""
        with self._lock:
            return {
                "timeouts": {k: float(v) for k, v in self.timeouts.items()},
                "timeout_elapsed_seconds": dict(self.elapsed_seconds),
                "reloads": {k: float(v) for k, v in self.reloads.items()},
            }


default_events = TimeoutEvents()
"""Where deadlines created without a TimeoutManager report their expiries."""
