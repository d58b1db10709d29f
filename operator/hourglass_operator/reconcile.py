"""The reconcile decision for one namespace, as a pure function.

Every TimeoutProfile and SessionPolicy of a namespace goes in; out comes what the
cluster should look like: the `hourglass-config` ConfigMap exactly as
`agent_lib.config.bundle.render_config` returns it (or nothing, which keeps the last
good one), the cleanup CronJob, each resource's status, and the Events to post.
An invalid resource never changes what the ConfigMap says about it: it alone is marked
Valid=False; if it was rendered before, the whole ConfigMap stays as it is, and if it
is new (never rendered), the others are rendered without it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_lib.config.bundle import CONFIGMAP_NAME, RenderedConfig, RenderError, render_config
from agent_lib.config.problems import Problem
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.specs import parse_resource
from agent_lib.config.timeout_profiles import TimeoutProfile
from hourglass_operator.cronjob import build_cronjob
from hourglass_operator.status import CLEANUP_SCHEDULED, READY, VALID, Condition, build_status

API_VERSION = "hourglass.dev/v1alpha1"
KEPT = f"ConfigMap {CONFIGMAP_NAME} keeps its last good content"


@dataclass(frozen=True, order=True)
class ResourceKey:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PlannedEvent:
    key: ResourceKey
    type: str
    reason: str
    message: str


@dataclass
class NamespacePlan:
    namespace: str
    rendered: RenderedConfig | None = None
    problems: list[Problem] = field(default_factory=list)
    statuses: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)
    """Only the statuses that differ from what the resources carry now."""
    events: list[PlannedEvent] = field(default_factory=list)
    cronjob: dict[str, Any] | None = None
    remove_cronjob: bool = False
    """No SessionPolicy left: the CronJob goes with its owner (garbage collection)."""
    remove_configmap: bool = False
    """No resource left: the ConfigMap goes with its owners (garbage collection)."""
    cleanup_blocked: str | None = None
    """Why the SessionPolicy gets no CronJob (an existing one is suspended), if so."""

    @property
    def valid(self) -> bool:
        return self.rendered is not None


@dataclass(frozen=True)
class _Item:
    key: ResourceKey
    body: Mapping[str, Any]
    uid: str
    generation: int
    status: Mapping[str, Any]


def key_of(body: Mapping[str, Any]) -> ResourceKey:
    return ResourceKey(str(body.get("kind", "")), str(body.get("metadata", {}).get("name", "")))


def owner_of(body: Mapping[str, Any]) -> dict[str, str]:
    meta = body.get("metadata", {})
    return {
        "apiVersion": str(body.get("apiVersion", API_VERSION)),
        "kind": str(body.get("kind", "")),
        "name": str(meta.get("name", "")),
        "uid": str(meta.get("uid", "")),
    }


def plan_namespace(
    namespace: str,
    bodies: Sequence[Mapping[str, Any]],
    *,
    image: str,
    now: str,
    statuses: Mapping[str, Mapping[str, Any]] | None = None,
    pull_secrets: Sequence[str] = (),
) -> NamespacePlan:
    """Decide everything for ``namespace`` from its resources' raw bodies.

    ``statuses`` (by uid) overrides the statuses in ``bodies`` with ones written since
    the bodies were seen, so that a lagging watch never moves a lastTransitionTime.
    """
    plan = NamespacePlan(namespace)
    if not bodies:
        plan.remove_configmap = plan.remove_cronjob = True
        return plan
    items = [_item(body, statuses or {}) for body in bodies]
    models: dict[ResourceKey, TimeoutProfile | SessionPolicy] = {}
    for item in items:
        model, problems = parse_resource(item.body)
        plan.problems.extend(_in(namespace, item.key, p) for p in problems)
        if model is not None:
            models[item.key] = model
    if not plan.problems:
        plan.rendered, problems = _render(namespace, items, models)
        plan.problems.extend(problems)
    offenders = _offenders(plan.problems, items)
    if plan.rendered is None and offenders:
        plan.rendered = _render_without(namespace, items, models, offenders)
    for item in items:
        extra = _cleanup_condition(models.get(item.key))
        status, event = _resource_status(
            plan, item, offenders.get(item.key, []), offenders, now, extra
        )
        if status != dict(item.status):
            plan.statuses[item.key] = status
            if event is not None:
                plan.events.append(event)
    if plan.rendered is not None:
        _plan_cronjob(plan, namespace, items, models, image, pull_secrets)
    return plan


def _render(
    namespace: str,
    items: Sequence[_Item],
    models: Mapping[ResourceKey, TimeoutProfile | SessionPolicy],
) -> tuple[RenderedConfig | None, list[Problem]]:
    owners = [owner_of(item.body) for item in items]
    fingerprint = _fingerprint(namespace, models, owners)
    cached = _RENDERS.get(fingerprint)
    if cached is not None:
        _RENDERS.move_to_end(fingerprint)
        return cached, []
    profiles = [m for m in models.values() if isinstance(m, TimeoutProfile)]
    policies = [m for m in models.values() if isinstance(m, SessionPolicy)]
    try:
        rendered = render_config(namespace, profiles, policies, owners=owners)
    except RenderError as error:
        return None, [_in(namespace, None, p) for p in error.problems]
    _RENDERS[fingerprint] = rendered
    while len(_RENDERS) > _RENDER_CACHE_SIZE:
        _RENDERS.popitem(last=False)
    return rendered, []


def _render_without(
    namespace: str,
    items: Sequence[_Item],
    models: Mapping[ResourceKey, TimeoutProfile | SessionPolicy],
    offenders: Mapping[ResourceKey, Sequence[Problem]],
) -> RenderedConfig | None:
    """Render the others when every offender is new (never part of the ConfigMap).

    Leaving out what was never rendered changes nothing agents rely on, so a bad new
    resource does not hold up its namespace. An offender that was rendered before
    keeps the whole ConfigMap as it is (None).
    """
    by_key = {item.key: item for item in items}
    if any("configHash" in by_key[key].status for key in offenders):
        return None
    kept = [item for item in items if item.key not in offenders]
    if not kept:
        return None
    rendered, _ = _render(namespace, kept, {k: m for k, m in models.items() if k not in offenders})
    return rendered


_RENDER_CACHE_SIZE = 256
_RENDERS: OrderedDict[str, RenderedConfig] = OrderedDict()
"""render_config is pure: the namespace's resources re-reconciled unchanged (each of them
triggers a reconcile at start-up) reuse its result instead of dumping the YAML again."""


def _fingerprint(
    namespace: str,
    models: Mapping[ResourceKey, TimeoutProfile | SessionPolicy],
    owners: Sequence[Mapping[str, str]],
) -> str:
    documents = sorted(
        (m.kind, m.name, m.metadata.creation_timestamp or "", m.spec.model_dump_json())
        for m in models.values()
    )
    refs = sorted(json.dumps(o, sort_keys=True) for o in owners)
    return json.dumps([namespace, documents, refs])


def _plan_cronjob(
    plan: NamespacePlan,
    namespace: str,
    items: Sequence[_Item],
    models: Mapping[ResourceKey, TimeoutProfile | SessionPolicy],
    image: str,
    pull_secrets: Sequence[str] = (),
) -> None:
    assert plan.rendered is not None
    rendered = plan.rendered.config.session_policy
    key = ResourceKey("SessionPolicy", rendered.name) if rendered is not None else None
    policy = models.get(key) if key is not None else None
    if key is None or not isinstance(policy, SessionPolicy):
        plan.remove_cronjob = True
        return
    blocked = _cleanup_condition(policy)
    if blocked is not None:
        plan.cleanup_blocked = blocked.message
        return
    body = next(item.body for item in items if item.key == key)
    plan.cronjob = build_cronjob(
        policy, namespace, owner_of(body), image, pull_secrets=pull_secrets
    )


NO_STORE = (
    "spec.store.urlSecretRef is not set: no cleanup CronJob (its pods need the Redis URL "
    "from a Secret); set it to schedule the cleanup"
)


def _cleanup_condition(model: TimeoutProfile | SessionPolicy | None) -> Condition | None:
    """A SessionPolicy without a store Secret gets no CronJob, and its status says why."""
    if isinstance(model, SessionPolicy) and model.spec.store.url_secret_ref is None:
        return Condition(CLEANUP_SCHEDULED, False, "NoStoreSecret", NO_STORE)
    return None


def _resource_status(
    plan: NamespacePlan,
    item: _Item,
    problems: Sequence[Problem],
    offenders: Mapping[ResourceKey, Sequence[Problem]],
    now: str,
    extra: Condition | None = None,
) -> tuple[dict[str, Any], PlannedEvent | None]:
    previous = item.status
    seen = previous.get("observedGeneration") == item.generation and previous.get("conditions")
    if problems:
        text = "; ".join(_describe(p) for p in problems)
        left_out = f"not included in ConfigMap {CONFIGMAP_NAME}"
        status = build_status(
            previous,
            generation=item.generation,
            conditions=[
                Condition(VALID, False, reason_for(problems[0]), text),
                Condition(
                    READY,
                    False,
                    "NotRendered",
                    left_out if plan.rendered is not None else f"not rendered: {KEPT}",
                ),
            ],
            config_hash=None,
            now=now,
        )
        return status, PlannedEvent(item.key, "Warning", reason_for(problems[0]), text)
    if plan.rendered is not None:
        digest = plan.rendered.hash
        message = f"rendered into ConfigMap {CONFIGMAP_NAME} (hash {digest})"
        status = build_status(
            previous,
            generation=item.generation,
            conditions=[
                Condition(VALID, True, "SpecValid", "spec is valid"),
                Condition(READY, True, "Rendered", message),
                *([extra] if extra is not None else []),
            ],
            config_hash=digest,
            now=now,
        )
        was_ready = _is_true(previous, READY)
        event = (
            None if seen and was_ready else PlannedEvent(item.key, "Normal", "Rendered", message)
        )
        return status, event
    if seen:
        return dict(previous), None
    blockers = ", ".join(str(k) for k in sorted(offenders)) or "another resource"
    status = build_status(
        previous,
        generation=item.generation,
        conditions=[
            Condition(VALID, True, "SpecValid", "spec is valid"),
            Condition(READY, False, "Blocked", f"not rendered while {blockers} is invalid; {KEPT}"),
        ],
        config_hash=None,
        now=now,
    )
    return status, PlannedEvent(item.key, "Warning", "Blocked", f"{blockers} is invalid; {KEPT}")


def reason_for(problem: Problem) -> str:
    """A CamelCase condition reason for a problem, by the field it concerns."""
    if problem.field.startswith("spec.extends") or "inherited" in problem.reason:
        return "InheritanceError"
    if problem.field == "spec.default":
        return "MultipleDefaults"
    if problem.kind == "SessionPolicy" and problem.field == "metadata.name":
        return "MultipleSessionPolicies"
    return "InvalidSpec"


def _describe(problem: Problem) -> str:
    return f"{problem.field}: {problem.reason}" if problem.field else problem.reason


def _offenders(
    problems: Sequence[Problem], items: Sequence[_Item]
) -> dict[ResourceKey, list[Problem]]:
    """The resources at fault, by key.

    A conflict between resources (two defaults) names all of them; when some of them
    were already rendered as they are, only the ones changed since are at fault.
    """
    by_key = {item.key: item for item in items}
    found: dict[ResourceKey, list[Problem]] = {}
    for problem in problems:
        key = ResourceKey(problem.kind, problem.name)
        if key in by_key:
            found.setdefault(key, []).append(problem)
    conflicting = [k for k, ps in found.items() if all(p.field == "spec.default" for p in ps)]
    changed = [k for k in conflicting if not _rendered_as_is(by_key[k])]
    if changed and len(changed) < len(conflicting):
        for key in set(conflicting) - set(changed):
            del found[key]
    return found


def _rendered_as_is(item: _Item) -> bool:
    return item.status.get("observedGeneration") == item.generation and _is_true(item.status, READY)


def _in(namespace: str, key: ResourceKey | None, problem: Problem) -> Problem:
    """The problem with its namespace and, when the parser left them out, kind and name."""
    kind = problem.kind or (key.kind if key else "")
    name = problem.name if problem.name not in ("", "?") else (key.name if key else "")
    return Problem(problem.reason, problem.field, kind, name, namespace)


def _item(body: Mapping[str, Any], statuses: Mapping[str, Mapping[str, Any]]) -> _Item:
    meta = body.get("metadata", {})
    uid = str(meta.get("uid", ""))
    status = statuses.get(uid, body.get("status") or {})
    return _Item(key_of(body), body, uid, int(meta.get("generation") or 1), status)


def _is_true(status: Mapping[str, Any], type_: str) -> bool:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == type_:
            return condition.get("status") == "True"
    return False
