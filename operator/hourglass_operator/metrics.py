"""Prometheus metrics of the operator (names as documented in config/monitoring_config.yaml)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "hourglass_operator_reconciles",
    "Reconciles of a namespace's bundle, by outcome (rendered, unchanged, invalid, error).",
    ["namespace", "kind", "result"],
    registry=REGISTRY,
)
FAILURES = Counter(
    "hourglass_operator_reconcile_failures",
    "Reconciles that did not produce a config (invalid spec, inheritance error, API error).",
    ["namespace", "kind", "reason"],
    registry=REGISTRY,
)
RENDER_SECONDS = Histogram(
    "hourglass_operator_render_duration_seconds",
    "Time to render a namespace's bundle.",
    ["namespace"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
CONFIG_HASH = Gauge(
    "hourglass_operator_config_hash_info",
    "1 for the content hash currently written to hourglass-config.",
    ["namespace", "hash"],
    registry=REGISTRY,
)
INVALID = Gauge(
    "hourglass_operator_invalid_resources",
    "TimeoutProfiles / SessionPolicies whose Valid condition is False.",
    ["namespace", "kind"],
    registry=REGISTRY,
)
CLEANUP_RUNS = Counter(
    "hourglass_operator_cleanup_runs",
    "Finished cleanup Jobs seen by the operator (succeeded, failed).",
    ["namespace", "result"],
    registry=REGISTRY,
)
LAST_CLEANUP = Gauge(
    "hourglass_operator_last_cleanup_timestamp_seconds",
    "Unix time of the last successful cleanup Job.",
    ["namespace"],
    registry=REGISTRY,
)

_hashes: dict[str, str] = {}


def set_config_hash(namespace: str, digest: str | None) -> None:
    """Keep exactly one hash series per namespace (none once its config is gone)."""
    old = _hashes.pop(namespace, None)
    if old is not None and old != digest:
        CONFIG_HASH.remove(namespace, old)
    if digest is not None:
        CONFIG_HASH.labels(namespace, digest).set(1)
        _hashes[namespace] = digest


_serving: set[tuple[str, int]] = set()


def serve(port: int, addr: str) -> None:
    """Expose /metrics on ``addr:port`` from a daemon thread (0 turns it off).

    Once per process: an operator restarted in the same process (kopf's KopfRunner in
    tests) keeps the server it already has.
    """
    if port and (addr, port) not in _serving:
        start_http_server(port, addr=addr, registry=REGISTRY)
        _serving.add((addr, port))


ROLLOUT_PODS = Gauge(
    "hourglass_rollout_pods",
    "Agent pods (label hourglass.dev/config=hourglass-config) by whether they run the "
    "namespace's current config hash: updated, pending, rejected.",
    ["namespace", "state"],
    registry=REGISTRY,
)


def set_rollout_pods(namespace: str, counts: dict[str, int] | None) -> None:
    """The namespace's pods per state; None removes its series (its config is gone)."""
    for state in ("updated", "pending", "rejected"):
        if counts is None:
            with contextlib.suppress(KeyError):
                ROLLOUT_PODS.remove(namespace, state)
        else:
            ROLLOUT_PODS.labels(namespace, state).set(counts.get(state, 0))
