"""Status conditions per the Kubernetes API conventions.

`lastTransitionTime` moves only when a condition's status flips, so that re-syncs
and resumes write nothing; every condition carries the generation it describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VALID = "Valid"
READY = "Ready"
CLEANUP_SCHEDULED = "CleanupScheduled"
"""False (only) when a SessionPolicy gets no cleanup CronJob, with the reason."""
ROLLOUT_CONDITIONS = ("Applied", "Reconciling", "Stalled")
"""Written by `hourglass_operator.rollout` from the agent pods; a render keeps them."""
KEPT_CONDITIONS = (*ROLLOUT_CONDITIONS, "Tuned")
"""Conditions a render keeps: the rollout's and spec.tuning's (`hourglass_operator.tuning`)."""
MAX_MESSAGE = 4096
"""Condition messages are cut here (the CRD allows 32768; Events show 1024)."""


@dataclass(frozen=True)
class Condition:
    type: str
    ok: bool
    reason: str
    message: str


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    desired: Sequence[Condition],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The desired conditions, keeping each one's lastTransitionTime unless its status flips."""
    before = {str(c.get("type")): c for c in previous or () if isinstance(c, Mapping)}
    merged: list[dict[str, Any]] = []
    for condition in desired:
        status = "True" if condition.ok else "False"
        old = before.get(condition.type)
        since = now
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            since = str(old["lastTransitionTime"])
        merged.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": _cut(condition.message),
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return merged


def build_status(
    previous: Mapping[str, Any] | None,
    *,
    generation: int,
    conditions: Sequence[Condition],
    config_hash: str | None,
    now: str,
) -> dict[str, Any]:
    """A whole status: ours replaced, other keys (such as ``lastCleanup``) kept."""
    status = dict(previous or {})
    status["observedGeneration"] = generation
    previous_conditions = status.get("conditions") or []
    status["conditions"] = merge_conditions(previous_conditions, conditions, generation, now) + [
        dict(c)
        for c in previous_conditions
        if isinstance(c, Mapping) and c.get("type") in KEPT_CONDITIONS
    ]
    if config_hash is not None:
        status["configHash"] = config_hash
    return status


def condition_of(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    for condition in (status or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == type_:
            return condition
    return None


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``.

    A merge patch merges nested objects, so keys that ``new`` drops are sent as null.
    """
    patch: dict[str, Any] = {key: None for key in (old or {}) if key not in new}
    for key, value in new.items():
        before = (old or {}).get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def with_condition(
    status: Mapping[str, Any] | None, condition: Condition, generation: int, now: str
) -> dict[str, Any]:
    """``status`` with one condition set (the others kept as they are)."""
    result = dict(status or {})
    others = [
        dict(c)
        for c in result.get("conditions") or ()
        if isinstance(c, Mapping) and c.get("type") != condition.type
    ]
    merged = merge_conditions(result.get("conditions"), [condition], generation, now)
    result["conditions"] = [*others, *merged]
    return result
