"""Where a namespace's rollout stands, from one snapshot of the cluster (pure).

`hourglass rollout status` takes a snapshot (the namespace's TimeoutProfiles and
SessionPolicies, the hash on ConfigMap hourglass-config, the agent pods) every
interval and prints what changed; which pods count and their states come from the
operator's own `hourglass_operator.rollout`, so the CLI and status.rollout agree.
A resource that is invalid or whose write the API server refused (``Valid`` or
``Ready`` False) fails the rollout at once, with the operator's reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hourglass_operator.rollout import PodReport, PodState, aggregate, counts


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

    @classmethod
    def of(
        cls,
        namespace: str,
        resources: Sequence[Mapping[str, Any]],
        config_hash: str | None,
        pods: Sequence[Mapping[str, Any]],
    ) -> Snapshot:
        """A snapshot from raw Pod objects: only the pods that count (`counts`) are kept."""
        reports = [PodReport.from_pod(pod) for pod in pods if counts(pod)]
        return cls(namespace, resources, config_hash, [r for r in reports if r is not None])


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
    refused = [
        f"{_name(r)} is not ready ({ready.get('reason', '')}): {ready.get('message', '')}"
        for r in sorted(snapshot.resources, key=_name)
        if (ready := _condition(r, "Ready")).get("status") == "False"
    ]
    if refused:
        return Progress(Verdict.FAILED, "the new config was not written", errors=refused)
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
