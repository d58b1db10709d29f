"""A chart release rendered by the real Helm engine, for the control-plane tests that
apply it with kubectl and run its operator locally (there is no kubelet to run the pod).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm

from tests.fixtures.k8s_schemas import CHART, load_all

UNSERVED_KINDS = frozenset({"ServiceMonitor", "PrometheusRule", "PodMonitor"})
"""Kinds of the Prometheus Operator, whose CRDs the control plane does not have."""


def render(values: dict[str, Any], namespace: str, release: str) -> dict[str, list[Any]]:
    """``helm install``'s rendering: template path -> its documents."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    return {p: load_all(t) for p, t in rendered.items() if p.endswith((".yaml", ".yml"))}


def chart_crds() -> list[dict[str, Any]]:
    """The chart's crds/ as they are (Helm never templates them, and installs them first)."""
    return [d for p in sorted((CHART / "crds").rglob("*.yaml")) for d in load_all(p.read_text())]


def operator_env(container: dict[str, Any], files: dict[str, Path], port: int) -> dict[str, str]:
    """The chart's literal env for the operator container, with the Secret's files local."""
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    for name in ("HOURGLASS_WEBHOOK_CERT", "HOURGLASS_WEBHOOK_KEY", "HOURGLASS_WEBHOOK_CA"):
        env[name] = str(files[Path(env[name]).name])
    # OperatorProcess chooses its own metrics port and image; the webhook listens on loopback.
    del env["HOURGLASS_METRICS_PORT"], env["HOURGLASS_OPERATOR_IMAGE"]
    return env | {"HOURGLASS_WEBHOOK_PORT": str(port), "HOURGLASS_WEBHOOK_ADDR": "127.0.0.1"}
