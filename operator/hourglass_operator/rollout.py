"""Which agent pods run the namespace's config: the pure aggregation behind status.rollout.

Agent pods carry the label ``hourglass.dev/config=hourglass-config`` and keep on their
own Pod what they run (``hourglass.dev/applied-hash``, ``applied-profile``) and, after a
rejected reload, why (``hourglass.dev/config-error``) and which hash they refused
(``hourglass.dev/rejected-hash``). From those annotations and the hash written to the
ConfigMap come the counts in ``status.rollout``, the ``Applied`` condition, and the
kstatus conditions ``Reconciling`` and ``Stalled`` that Flux, Argo CD and ``kubectl wait``
read. `hourglass rollout status` uses the same functions (`counts`, `PodReport`,
`aggregate`), so the CLI and the operator never disagree about a pod.

A pod rejects the target only when its ``rejected-hash`` is the target: an error about
an older hash is history (the pod is pending for the new one until it reports on it),
and a pod of an agent that predates ``rejected-hash`` is pending, never rejecting.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_lib.config.bundle import CONFIGMAP_NAME
from hourglass_operator.status import (
    READY,
    ROLLOUT_CONDITIONS,
    VALID,
    Condition,
    merge_conditions,
)

CONFIG_LABEL = "hourglass.dev/config"
SELECTOR = f"{CONFIG_LABEL}={CONFIGMAP_NAME}"
"""The label selector of agent pods (server-side, on the operator's watch and the CLI's list)."""
APPLIED_HASH = "hourglass.dev/applied-hash"
APPLIED_PROFILE = "hourglass.dev/applied-profile"
CONFIG_ERROR = "hourglass.dev/config-error"
REJECTED_HASH = "hourglass.dev/rejected-hash"

APPLIED = "Applied"
RECONCILING = "Reconciling"
STALLED = "Stalled"
OWNED = ROLLOUT_CONDITIONS
"""Conditions this module owns; the reconcile keeps them as they are."""
MAX_REASON = 300
"""A pod's config-error is shown up to this length (the agent keeps it short anyway)."""
_FINISHED_PHASES = ("Succeeded", "Failed")


class PodState(enum.StrEnum):
    UPDATED = "updated"
    PENDING = "pending"
    REJECTED = "rejected"


@dataclass(frozen=True, order=True)
class PodReport:
    """What one agent pod says it runs."""

    name: str
    applied_hash: str | None = None
    profile: str | None = None
    error: str | None = None
    rejected_hash: str | None = None

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> PodReport | None:
        """The pod's report, or None for a pod that does not count (see `counts`)."""
        if not counts(pod):
            return None
        meta = pod.get("metadata") or {}
        notes = meta.get("annotations") or {}
        return cls(
            name=str(meta.get("name", "")),
            applied_hash=_text(notes.get(APPLIED_HASH)),
            profile=_text(notes.get(APPLIED_PROFILE)),
            error=_text(notes.get(CONFIG_ERROR)),
            rejected_hash=_text(notes.get(REJECTED_HASH)),
        )

    def state(self, target: str) -> PodState:
        """Updated when it runs ``target``; rejected only when it says it refused ``target``.

        An error about another hash (or from an agent that does not name the hash) leaves
        the pod pending: it has not judged ``target`` yet.
        """
        if self.applied_hash == target:
            return PodState.UPDATED
        if self.error and self.rejected_hash == target:
            return PodState.REJECTED
        return PodState.PENDING

    def describe(self, target: str) -> str:
        """One line about this pod, for conditions, Events and `hourglass rollout status`."""
        state = self.state(target)
        if state is PodState.UPDATED:
            profile = f" (profile {self.profile})" if self.profile else ""
            return f"pod {self.name} runs hash {target}{profile}"
        if state is PodState.REJECTED:
            return f"pod {self.name} rejected the config: {_cut(self.error or '')}"
        running = (
            f"still runs hash {self.applied_hash}" if self.applied_hash else "has not reported yet"
        )
        return f"pod {self.name} {running}{self._history()}"

    def _history(self) -> str:
        """A pending pod's last error, about an earlier hash (or an unnamed one)."""
        if not self.error:
            return ""
        refused = f"hash {self.rejected_hash}" if self.rejected_hash else "an earlier config"
        return f" (it rejected {refused}: {_cut(self.error)})"


def counts(pod: Mapping[str, Any]) -> bool:
    """Whether a pod counts in a rollout: one that can still run, so not ``Failed`` (evicted
    included) or ``Succeeded``, and not terminating (a deletionTimestamp, even one held by
    a finalizer). The operator's pod index and `hourglass rollout status` both ask this."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in _FINISHED_PHASES


@dataclass(frozen=True)
class Rollout:
    """The rollout of hash ``hash`` over a namespace's agent pods."""

    namespace: str
    hash: str
    pods: tuple[PodReport, ...]

    def in_state(self, state: PodState) -> list[PodReport]:
        return [pod for pod in self.pods if pod.state(self.hash) is state]

    @property
    def total(self) -> int:
        return len(self.pods)

    @property
    def updated(self) -> int:
        return len(self.in_state(PodState.UPDATED))

    @property
    def rejected(self) -> int:
        return len(self.in_state(PodState.REJECTED))

    @property
    def complete(self) -> bool:
        return self.updated == self.total

    def counts(self) -> dict[PodState, int]:
        return {state: len(self.in_state(state)) for state in PodState}

    def summary(self) -> dict[str, Any]:
        """``status.rollout``: the counts, and ``applied`` ("3/3") for the printer column."""
        return {
            "hash": self.hash,
            "updated": self.updated,
            "total": self.total,
            "rejected": self.rejected,
            "applied": f"{self.updated}/{self.total}",
        }

    def applied(self) -> Condition:
        """True when every selected pod runs the hash; else Rejected or Progressing."""
        share = f"{self.updated}/{self.total} pods run hash {self.hash}"
        if not self.pods:
            return Condition(APPLIED, True, "NoPods", f"no pods labelled {SELECTOR} yet")
        if self.complete:
            return Condition(APPLIED, True, "Applied", share)
        rejected = self.in_state(PodState.REJECTED)
        if rejected:
            others = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            message = f"{rejected[0].describe(self.hash)}{others}; {share}"
            return Condition(APPLIED, False, "Rejected", message)
        waiting = self.in_state(PodState.PENDING)[0]
        return Condition(APPLIED, False, "Progressing", f"{share}; {waiting.describe(self.hash)}")


def aggregate(namespace: str, target: str, pods: Iterable[PodReport]) -> Rollout:
    """The rollout of ``target``, pods sorted by name (one report per name)."""
    unique = {pod.name: pod for pod in pods}
    return Rollout(namespace, target, tuple(unique[name] for name in sorted(unique)))


def kstatus_conditions(
    conditions: Sequence[Mapping[str, Any]], rollout: Rollout | None
) -> list[Condition]:
    """``Applied``, ``Reconciling`` and ``Stalled`` for a status with ``conditions``.

    Flux's convention: Reconciling and Stalled are present only while true. Stalled
    means nothing will move without a change: an invalid spec or a rejecting pod.
    """
    by_type = {str(c.get("type")): c for c in conditions}
    out: list[Condition] = []
    applied = rollout.applied() if rollout is not None else None
    if applied is not None:
        out.append(applied)
    valid = by_type.get(VALID)
    ready = by_type.get(READY)
    if valid is not None and valid.get("status") == "False":
        out.append(
            Condition(STALLED, True, str(valid.get("reason")), str(valid.get("message", "")))
        )
    elif ready is not None and ready.get("status") == "False":
        out.append(
            Condition(STALLED, True, str(ready.get("reason")), str(ready.get("message", "")))
        )
    elif applied is not None and not applied.ok and applied.reason == "Rejected":
        out.append(Condition(STALLED, True, applied.reason, applied.message))
    elif applied is not None and not applied.ok:
        out.insert(1, Condition(RECONCILING, True, applied.reason, applied.message))
    return out


def with_rollout(
    status: Mapping[str, Any],
    previous: Mapping[str, Any],
    rollout: Rollout | None,
    *,
    generation: int,
    now: str,
) -> dict[str, Any]:
    """``status`` with ``rollout`` and the conditions this module owns brought up to date.

    ``previous`` is the status as last written: its conditions keep their
    lastTransitionTime while their status stays the same.
    """
    result = dict(status)
    theirs = [
        dict(c)
        for c in result.get("conditions") or ()
        if isinstance(c, Mapping) and c.get("type") not in OWNED
    ]
    ours = merge_conditions(
        previous.get("conditions"), kstatus_conditions(theirs, rollout), generation, now
    )
    result["conditions"] = theirs + ours
    if rollout is not None:
        result["rollout"] = rollout.summary()
    return result


def _text(value: object) -> str | None:
    return str(value).strip() or None if value is not None else None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
