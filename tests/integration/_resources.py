"""Resource builders and readers shared by the operator's end-to-end modules.

They take any cluster with ``get`` and ``wait_for``: the real control plane's
``RealCluster`` or the emulator's ``Cluster``.
"""

from __future__ import annotations

from typing import Any

import yaml

from agent_lib.config.bundle import CONFIG_KEY, CONFIGMAP_NAME


def _profile(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "SessionPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _yaml(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def _configmap(cluster: Any, ns: str) -> dict[str, Any] | None:
    return cluster.get("configmaps", ns, CONFIGMAP_NAME)


def _config(cluster: Any, ns: str) -> dict[str, Any]:
    cm = _configmap(cluster, ns)
    assert cm is not None, f"no {CONFIGMAP_NAME} in {ns}"
    data: dict[str, Any] = yaml.safe_load(cm["data"][CONFIG_KEY])
    return data


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for condition in (obj or {}).get("status", {}).get("conditions", []):
        if condition["type"] == type_:
            return dict(condition)
    return {}


def _wait_timeout(cluster: Any, ns: str, profile: str, name: str, seconds: float) -> None:
    def rendered() -> bool:
        cm = _configmap(cluster, ns)
        if cm is None:
            return False
        data = yaml.safe_load(cm["data"][CONFIG_KEY])
        return data["profiles"].get(profile, {}).get("timeouts", {}).get(name) == seconds

    cluster.wait_for(rendered, what=f"{ns}: {profile}.{name} == {seconds}s in {CONFIGMAP_NAME}")
