"""The Argo CD health check (manifests/argocd/health.lua), run with a real Lua (lupa) the
way Argo CD runs it: the resource as the global ``obj``, a table {status, message} back.

The statuses are the ones the operator writes, built with its own functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
from hourglass_operator.rollout import PodReport, aggregate, with_rollout
from hourglass_operator.status import Condition, build_status

LUA = Path(__file__).resolve().parents[2] / "manifests" / "argocd" / "health.lua"
CHART_README = Path(__file__).resolve().parents[2] / "helm" / "hourglass" / "README.md"
NEW, OLD = "1111111111111111", "2222222222222222"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(LUA.read_text(encoding="utf-8"))
    return str(result["status"]), str(result["message"])


def _resource(
    status: dict[str, Any] | None, generation: int = 1, kind: str = "TimeoutProfile"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "default", "namespace": "agents", "generation": generation},
        "spec": {},
    }
    if status is not None:
        body["status"] = status
    return body


def _status(pods: list[PodReport], valid: bool = True, generation: int = 1) -> dict[str, Any]:
    conditions = (
        [Condition("Valid", True, "SpecValid", "ok"), Condition("Ready", True, "Rendered", "ok")]
        if valid
        else [
            Condition("Valid", False, "InvalidSpec", "spec.timeouts.x: bad duration"),
            Condition("Ready", False, "NotRendered", "not rendered"),
        ]
    )
    base = build_status(
        {},
        generation=generation,
        conditions=conditions,
        config_hash=NEW,
        now="2026-01-01T00:00:00Z",
    )
    rollout = aggregate("agents", NEW, pods)
    return with_rollout(base, {}, rollout, generation=generation, now="2026-01-01T00:00:00Z")


@pytest.mark.parametrize("kind", ["TimeoutProfile", "SessionPolicy"])
def test_healthy_when_rendered_and_applied_everywhere(kind: str) -> None:
    status = _status([PodReport("a", NEW), PodReport("b", NEW)])
    state, message = health(_resource(status, kind=kind))
    assert state == "Healthy"
    assert "2/2" in message


def test_progressing_while_pods_catch_up() -> None:
    status = _status([PodReport("a", NEW), PodReport("b", OLD)])
    state, message = health(_resource(status))
    assert state == "Progressing"
    assert "pod b" in message


def test_progressing_until_the_operator_sees_the_generation() -> None:
    status = _status([PodReport("a", NEW)], generation=1)
    assert health(_resource(status, generation=2))[0] == "Progressing"
    assert health(_resource(None))[0] == "Progressing"


def test_degraded_when_a_pod_rejects() -> None:
    rejecting = PodReport("b", OLD, error="timeouts.fooBar: unknown", rejected_hash=NEW)
    status = _status([PodReport("a", NEW), rejecting])
    state, message = health(_resource(status))
    assert state == "Degraded"
    assert "pod b rejected the config: timeouts.fooBar: unknown" in message


def test_degraded_when_the_spec_is_invalid() -> None:
    state, message = health(_resource(_status([PodReport("a", NEW)], valid=False)))
    assert state == "Degraded"
    assert "spec.timeouts.x" in message


def test_chart_readme_documents_the_health_check() -> None:
    text = CHART_README.read_text(encoding="utf-8")
    assert "manifests/argocd/health.lua" in text
    for kind in ("TimeoutProfile", "SessionPolicy"):
        assert f"resource.customizations.health.hourglass.dev_{kind}" in text
