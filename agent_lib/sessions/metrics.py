"""Session-store gauges and counters, exported when ``prometheus-client`` is installed.

- ``hourglass_sessions{namespace}``: live sessions, as of the last ``count()``
- ``hourglass_sessions_max{namespace}``: the ``maxSessions`` cap (absent when unlimited)
- ``hourglass_sessions_removed_total{namespace,reason}``: sessions that cleanups removed,
  by reason (``expired``, ``lifetime_ended``, ``evicted``)

The near-cap alert of ``config/monitoring_config.yaml`` divides the first two; they
live here, not in each agent, so every agent that uses SessionManager exports them.
"""

from __future__ import annotations

import threading
from typing import Any

from agent_lib.sessions.stores.base import CleanupReport

_prometheus: Any
try:
    import prometheus_client as _prometheus
except ImportError:  # pragma: no cover - exercised only where the extra is not installed
    _prometheus = None


class _Metrics:
    def __init__(self, prometheus: Any) -> None:
        self.sessions = prometheus.Gauge(
            "hourglass_sessions", "Live sessions in the store, as last counted.", ["namespace"]
        )
        self.sessions_max = prometheus.Gauge(
            "hourglass_sessions_max", "The SessionPolicy's maxSessions cap.", ["namespace"]
        )
        self.removed = prometheus.Counter(
            "hourglass_sessions_removed",
            "Sessions removed by cleanup, by reason.",
            ["namespace", "reason"],
        )


_metrics: _Metrics | None = None
_lock = threading.Lock()


def _get() -> _Metrics | None:
    global _metrics
    if _prometheus is None:
        return None
    with _lock:
        if _metrics is None:
            _metrics = _Metrics(_prometheus)
        return _metrics


def observe_limits(namespace: str, max_sessions: int | None) -> None:
    metrics = _get()
    if metrics is not None and max_sessions is not None:
        metrics.sessions_max.labels(namespace=namespace).set(max_sessions)


def observe_count(namespace: str, count: int) -> None:
    metrics = _get()
    if metrics is not None:
        metrics.sessions.labels(namespace=namespace).set(count)


def observe_cleanup(namespace: str, report: CleanupReport) -> None:
    metrics = _get()
    if metrics is None or report.dry_run:
        return
    for reason in ("expired", "lifetime_ended", "evicted"):
        removed = getattr(report, reason)
        if removed:
            metrics.removed.labels(namespace=namespace, reason=reason).inc(removed)
