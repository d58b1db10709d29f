"""Resolving ``extends``: each profile's timeouts and polling merged over its ancestors'."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic_core import PydanticCustomError

from agent_lib.config.problems import Problem
from agent_lib.config.suggest import did_you_mean
from agent_lib.config.timeout_profiles import PollingSpec, TimeoutProfile, check_polling_order

MAX_INHERITANCE_DEPTH = 16

DEFAULT_POLLING: dict[str, float] = {
    "interval": 1.0,
    "maxInterval": 30.0,
    "multiplier": 2.0,
    "jitter": 0.1,
    "maxDuration": 300.0,
}
"""Polling for a root profile that says nothing about it."""


@dataclass(frozen=True)
class ResolvedProfile:
    name: str
    timeouts: dict[str, float]
    polling: dict[str, float]
    chain: tuple[str, ...]
    """The profile and its ancestors, nearest first."""
    default: bool = False


@dataclass
class Resolution:
    profiles: dict[str, ResolvedProfile] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def resolve_profiles(
    namespace: str,
    profiles: Iterable[TimeoutProfile],
    invalid: Mapping[str, Problem] | None = None,
) -> Resolution:
    """Resolve every profile of one namespace; broken chains become problems, not errors.

    ``invalid`` names the profiles of the namespace that failed validation, each with its
    first problem: a child of one is told that its parent is invalid and where, rather
    than that its parent does not exist.
    """
    by_name = {p.name: p for p in profiles}
    result = Resolution()
    for name in sorted(by_name):
        chain, problem = _chain(namespace, name, by_name, invalid or {})
        if problem is not None:
            result.problems.append(problem)
            continue
        resolved, problem = _merge(namespace, [by_name[n] for n in chain])
        if problem is not None:
            result.problems.append(problem)
            continue
        result.profiles[name] = resolved
    return result


def _chain(
    namespace: str,
    name: str,
    by_name: dict[str, TimeoutProfile],
    invalid: Mapping[str, Problem],
) -> tuple[tuple[str, ...], Problem | None]:
    chain = [name]
    current = by_name[name]
    while current.spec.extends is not None:
        parent = current.spec.extends
        if parent in chain:
            cycle = " -> ".join([*chain[chain.index(parent) :], parent])
            return (), _problem(namespace, name, f"inheritance cycle: {cycle}")
        if parent not in by_name and parent in invalid:
            which = (
                f"parent TimeoutProfile {parent!r}"
                if current.name == name
                else f"ancestor {current.name!r} extends {parent!r}, which"
            )
            reason = f"{which} is invalid: fix its own error first ({_where(invalid[parent])})"
            return (), _problem(namespace, name, reason)
        if parent not in by_name:
            reason = (
                f"parent TimeoutProfile {parent!r} does not exist in namespace {namespace!r}"
                if current.name == name
                else f"ancestor {current.name!r} extends {parent!r}, "
                f"which does not exist in namespace {namespace!r}"
            )
            reason += did_you_mean(parent, [*by_name, *invalid], list_all=True)
            return (), _problem(namespace, name, reason)
        if len(chain) >= MAX_INHERITANCE_DEPTH:
            reason = f"inheritance deeper than {MAX_INHERITANCE_DEPTH} levels"
            return (), _problem(namespace, name, reason)
        chain.append(parent)
        current = by_name[parent]
    return tuple(chain), None


def _merge(namespace: str, chain: list[TimeoutProfile]) -> tuple[ResolvedProfile, Problem | None]:
    timeouts: dict[str, float] = {}
    polling = dict(DEFAULT_POLLING)
    for profile in reversed(chain):
        timeouts.update(profile.spec.timeouts)
        polling.update(_given(profile.spec.polling))
    resolved = ResolvedProfile(
        name=chain[0].name,
        timeouts=dict(sorted(timeouts.items())),
        polling=polling,
        chain=tuple(p.name for p in chain),
        default=chain[0].spec.default,
    )
    try:
        check_polling_order(polling["interval"], polling["maxInterval"], polling["maxDuration"])
    except PydanticCustomError as error:
        source = f"inherited from {chain[1].name!r}" if len(chain) > 1 else "with default polling"
        reason = f"{error.message()} ({source})"
        return resolved, Problem(reason, "spec.polling", "TimeoutProfile", chain[0].name, namespace)
    return resolved, None


def _given(polling: PollingSpec | None) -> dict[str, float]:
    if polling is None:
        return {}
    values = polling.model_dump(by_alias=True, exclude_none=True)
    return {key: float(value) for key, value in values.items()}


def _where(problem: Problem) -> str:
    """Where a problem is: ``file:line: field`` when located, else ``kind/name: field``."""
    place = f"{problem.file}:{problem.line}" if problem.file else f"{problem.kind}/{problem.name}"
    return f"{place}: {problem.field}" if problem.field else place


def _problem(namespace: str, name: str, reason: str) -> Problem:
    return Problem(reason, "spec.extends", "TimeoutProfile", name, namespace)
