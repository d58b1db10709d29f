"""Timeout events: plain counters always, Prometheus metrics when the client is importable."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY

from agent_lib.timeouts import metrics as timeout_metrics
from agent_lib.timeouts.metrics import TimeoutEvents


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_events_feed_plain_counters_and_prometheus() -> None:
    events = TimeoutEvents()
    before = sample("hourglass_timeouts_total", {"name": "metricsProbe"})
    before_count = sample("hourglass_timeout_elapsed_seconds_count", {"name": "metricsProbe"})
    events.timeout("metricsProbe", 1.5)
    events.timeout("metricsProbe", 2.5)
    events.reload("error")
    assert events.stats() == {
        "timeouts": {"metricsProbe": 2.0},
        "timeout_elapsed_seconds": {"metricsProbe": 4.0},
        "reloads": {"error": 1.0},
    }
    assert sample("hourglass_timeouts_total", {"name": "metricsProbe"}) == before + 2
    assert sample("hourglass_timeout_elapsed_seconds_count", {"name": "metricsProbe"}) == (
        before_count + 2
    )


def test_without_prometheus_the_plain_counters_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stands in for an install without prometheus-client: the import result is None."""
    monkeypatch.setattr(timeout_metrics, "_prometheus", None)
    monkeypatch.setattr(timeout_metrics, "_metrics", None)
    before = sample("hourglass_timeouts_total", {"name": "noPrometheus"})
    events = TimeoutEvents()
    events.timeout("noPrometheus", 0.5)
    events.config_info("dev", "abc")
    assert events.stats()["timeouts"] == {"noPrometheus": 1.0}
    assert sample("hourglass_timeouts_total", {"name": "noPrometheus"}) == before


def test_counters_are_thread_safe() -> None:
    events = TimeoutEvents()

    def hammer() -> None:
        for _ in range(2000):
            events.timeout("busy", 0.001)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events.stats()["timeouts"] == {"busy": 8000.0}
