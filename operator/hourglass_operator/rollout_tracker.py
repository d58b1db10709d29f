"""The operator's memory of each namespace's rollout: its agent pods, the hash they
should run, and which rejections were already announced.

The Controller asks it for the statuses to write (only those that differ) and the
Events to post; it keeps `hourglass_rollout_pods` up to date on the way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hourglass_operator import metrics
from hourglass_operator.reconcile import ResourceKey
from hourglass_operator.rollout import (
    APPLIED,
    PodReport,
    PodState,
    Rollout,
    aggregate,
    with_rollout,
)
from hourglass_operator.status import condition_of


@dataclass(frozen=True)
class Resource:
    """One TimeoutProfile or SessionPolicy: its body, the status it has now, and the status
    the render wants (before the rollout is added)."""

    key: ResourceKey
    body: Mapping[str, Any]
    current: Mapping[str, Any]
    base: Mapping[str, Any]

    @property
    def generation(self) -> int:
        """The generation the status describes (a newer spec waits for its reconcile)."""
        observed = self.base.get("observedGeneration")
        return int(observed or self.body.get("metadata", {}).get("generation") or 1)


@dataclass(frozen=True)
class RolloutEvent:
    key: ResourceKey
    type: str
    reason: str
    message: str


@dataclass
class RolloutUpdate:
    statuses: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)
    """Only the statuses that differ from what the resources have now."""
    events: list[RolloutEvent] = field(default_factory=list)
    rollout: Rollout | None = None


class RolloutTracker:
    def __init__(self) -> None:
        self._pods: dict[str, dict[str, PodReport]] = {}
        self._targets: dict[str, str] = {}
        self._announced: defaultdict[str, set[tuple[str, str, str]]] = defaultdict(set)

    def set_pods(self, namespace: str, pods: Iterable[PodReport]) -> bool:
        """Record the namespace's agent pods; whether anything that counts changed."""
        reports = {pod.name: pod for pod in pods}
        changed = self._pods.get(namespace) != reports
        self._pods[namespace] = reports
        return changed

    def target(
        self, namespace: str, written: str | None, statuses: Iterable[Mapping[str, Any]]
    ) -> str | None:
        """The hash agents should run: the one on the ConfigMap (``written``, as the
        controller last wrote or read it), else the last one known, else the one the
        resources' ``configHash`` agree on (a restarted operator before its first read;
        ``configHash`` is only ever a hash that was written, so this is one too)."""
        if written is not None:
            self._targets[namespace] = written
            return written
        if namespace in self._targets:
            return self._targets[namespace]
        hashes = Counter(str(s["configHash"]) for s in statuses if s.get("configHash"))
        return hashes.most_common(1)[0][0] if hashes else None

    def update(
        self, namespace: str, target: str | None, resources: Iterable[Resource], now: str
    ) -> RolloutUpdate:
        """The statuses with the rollout of ``target`` added, and the Events it calls for."""
        resources = list(resources)
        update = RolloutUpdate()
        if target is not None:
            update.rollout = aggregate(namespace, target, self._pods.get(namespace, {}).values())
            self._count(update.rollout)
        for resource in resources:
            status = with_rollout(
                resource.base,
                resource.current,
                update.rollout,
                generation=resource.generation,
                now=now,
            )
            if status != dict(resource.current):
                update.statuses[resource.key] = status
            if update.rollout is not None:
                update.events.extend(_completion(resource, status, update.rollout))
        if update.rollout is not None:
            update.events.extend(self._rejections(update.rollout, [r.key for r in resources]))
        return update

    def forget(self, namespace: str) -> None:
        """The namespace has no config any more."""
        self._targets.pop(namespace, None)
        self._announced.pop(namespace, None)
        metrics.set_rollout_pods(namespace, None)

    def _count(self, rollout: Rollout) -> None:
        counts = rollout.counts()
        metrics.set_rollout_pods(rollout.namespace, {str(s): counts[s] for s in PodState})

    def _rejections(self, rollout: Rollout, keys: list[ResourceKey]) -> list[RolloutEvent]:
        """A Warning per resource for each pod that newly rejects the config."""
        now = {
            (pod.name, rollout.hash, pod.error or "") for pod in rollout.in_state(PodState.REJECTED)
        }
        announced = self._announced[rollout.namespace]
        fresh = sorted(now - announced)
        announced.intersection_update(now)
        announced.update(fresh)
        return [
            RolloutEvent(
                key, "Warning", "ConfigRejected", f"pod {pod} rejected hash {digest}: {error}"
            )
            for pod, digest, error in fresh
            for key in keys
        ]


def _completion(
    resource: Resource, status: Mapping[str, Any], rollout: Rollout
) -> list[RolloutEvent]:
    """A Normal Event when Applied turns True for a hash (not on a resync or restart)."""
    new = condition_of(status, APPLIED)
    old = condition_of(resource.current, APPLIED)
    if new is None or new.get("reason") != "Applied" or old is None:
        return []
    old_hash = (resource.current.get("rollout") or {}).get("hash")
    if old.get("status") == "True" and old.get("reason") == "Applied" and old_hash == rollout.hash:
        return []
    message = f"hash {rollout.hash} applied by {rollout.updated}/{rollout.total} pods"
    return [RolloutEvent(resource.key, "Normal", "RolloutComplete", message)]
