"""Where a namespace's rollout stands, from one snapshot of the cluster (pure).

`hourglass rollout status` takes a snapshot (the namespace's TimeoutProfiles and
SessionPolicies, the hash on ConfigMap hourglass-config, the agent pods) every
interval and prints what changed; the pod states come from the operator's own
`hourglass_operator.rollout`, so the CLI and status.rollout agree.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hourglass_operator.rollout import PodReport, PodState, aggregate


class Verdict(enum.Enum):
    WAITING = "waiting"
    APPLIED = "applied"
    FAILED = "failed"


@dataclass(frozen=True)
class Snapshot:
    namespace: str
    resources: Sequence[Mapping[str, Any]]
    config_hash: str | None
    pods: Sequence[PodReport]


@dataclass(frozen=True)
class Progress:
    verdict: Verdict
    summary: str
    """One line: what we wait for, or the outcome."""
    pods: dict[str, str] = field(default_factory=dict)
    """Pod name -> one line about it (empty until the target hash is known)."""
    errors: list[str] = field(default_factory=list)


def judge(snapshot: Snapshot) -> Progress:
    """The rollout's state: waiting (and on what), applied everywhere, or failed (why)."""
    ns = snapshot.namespace
    if not snapshot.resources:
        return Progress(Verdict.FAILED, f"no TimeoutProfile or SessionPolicy in namespace {ns}")
    for resource in sorted(snapshot.resources, key=_name):
        status = resource.get("status") or {}
        generation = int(resource.get("metadata", {}).get("generation") or 1)
        if int(status.get("observedGeneration") or 0) < generation:
            return Progress(
                Verdict.WAITING,
                f"waiting for the operator to observe {_name(resource)} generation {generation}",
            )
    invalid = [
        f"{_name(r)} is invalid: {_condition(r, 'Valid').get('message', '')}"
        for r in sorted(snapshot.resources, key=_name)
        if _condition(r, "Valid").get("status") == "False"
    ]
    if invalid:
        return Progress(Verdict.FAILED, "the new config was not rendered", errors=invalid)
    target = snapshot.config_hash
    if target is None:
        return Progress(Verdict.WAITING, f"waiting for ConfigMap hourglass-config in {ns}")
    rendered = {str((r.get("status") or {}).get("configHash") or "") for r in snapshot.resources}
    if rendered != {target}:
        return Progress(Verdict.WAITING, f"waiting for the operator to write hash {target}")
    rollout = aggregate(ns, target, snapshot.pods)
    pods = {pod.name: pod.describe(target) for pod in rollout.pods}
    share = f"{rollout.updated} of {rollout.total} pods updated"
    rejected = rollout.in_state(PodState.REJECTED)
    if rejected:
        errors = [pod.describe(target) for pod in rejected]
        return Progress(Verdict.FAILED, f"rollout of hash {target} rejected; {share}", pods, errors)
    if not rollout.pods:
        message = f"no agent pods in {ns} (label hourglass.dev/config=hourglass-config)"
        return Progress(Verdict.APPLIED, f"hash {target} rendered; {message}", pods)
    if rollout.complete:
        return Progress(Verdict.APPLIED, f"rollout of hash {target} complete: {share}", pods)
    return Progress(Verdict.WAITING, f"waiting for rollout of hash {target}: {share}", pods)


def _name(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('kind', '')}/{resource.get('metadata', {}).get('name', '')}"


def _condition(resource: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for condition in (resource.get("status") or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == type_:
            return condition
    return {}
