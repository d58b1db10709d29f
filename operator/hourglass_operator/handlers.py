"""kopf handlers: thin adapters from watch events to `Controller` calls.

Both kinds are indexed by namespace (kopf's in-memory indices fed by the watches),
so a reconcile reads the namespace's resources without an extra API call. Any change
of either kind, a hand-edited or deleted ConfigMap, and a finished cleanup Job each
trigger a reconcile of the one namespace concerned.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import kopf

from agent_lib.config.bundle import CONFIGMAP_NAME
from hourglass_operator import kopf_settings as hourglass_kopf_settings
from hourglass_operator import metrics, resync, rollout_handlers, tuning_handlers, webhook
from hourglass_operator.controller import Controller, WriteRefused
from hourglass_operator.cronjob import POLICY_LABEL
from hourglass_operator.k8s import Kube
from hourglass_operator.leadership import Leadership, Peering
from hourglass_operator.retry import Retrier
from hourglass_operator.settings import OperatorSettings

GROUP = "hourglass.dev"
VERSION = "v1alpha1"
PROFILES = "timeoutprofiles"
POLICIES = "sessionpolicies"
INDICES = ("hourglass_profiles", "hourglass_policies")
RETRY_BACKOFF_S = 5.0
"""A reconcile that failed on an API error is retried this soon (kopf's default: 60 s)."""
_log = logging.getLogger("hourglass_operator")


def _post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    raw = cast(kopf.RawBody, dict(body))
    kopf.event(kopf.Body(raw), type=type_, reason=reason, message=message)


def _raw(body: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(body))


def build_registry(
    settings: OperatorSettings,
    controller: Controller | None = None,
    registry: kopf.OperatorRegistry | None = None,
    identity: str | None = None,
) -> kopf.OperatorRegistry:
    """Every handler of the operator, in a fresh registry unless one is given.

    The webhook handlers are added only when enabled. ``identity`` is this replica's id in
    kopf's peering (given to ``kopf.operator`` too): with it, the resync and tuning loops
    run only where this replica leads.
    """
    registry = registry if registry is not None else kopf.OperatorRegistry()
    state: dict[str, Controller] = {}
    leadership: list[Leadership] = []

    async def leads_in(namespace: str) -> bool:
        return not leadership or await leadership[0].leads_in(namespace)

    if controller is not None:
        state["controller"] = controller

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A fresh registry has none of kopf's default login handlers. The `kubernetes`
        # client knows every way of logging in (in-cluster, kubeconfig, exec plugins);
        # kopf's own readers are the fallback (they read $KUBECONFIG at call time).
        try:
            return kopf.login_via_client(**kwargs)
        except kopf.LoginError:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(**kwargs: Any) -> None:
        hourglass_kopf_settings.apply(kwargs["settings"], settings)
        if "controller" not in state:
            state["controller"] = Controller(Kube(), settings, _post_event)
        peering = kwargs["settings"].peering
        if identity is not None and not leadership:
            leadership.append(
                Leadership(
                    Kube(),
                    Peering(
                        peering.name,
                        identity,
                        peering.priority,
                        peering.clusterwide,
                        peering.standalone,
                    ),
                )
            )
        metrics.serve(settings.metrics_port, settings.metrics_addr)

    @kopf.index(GROUP, VERSION, PROFILES, id="hourglass_profiles", registry=registry)
    def hourglass_profiles(**kwargs: Any) -> dict[str, Any]:
        return {kwargs["namespace"]: _raw(kwargs["body"])}

    @kopf.index(GROUP, VERSION, POLICIES, id="hourglass_policies", registry=registry)
    def hourglass_policies(**kwargs: Any) -> dict[str, Any]:
        return {kwargs["namespace"]: _raw(kwargs["body"])}

    retrier = Retrier()
    indices_seen: dict[str, Any] = {}
    resync_task: list[asyncio.Task[None]] = []

    def bodies_of(namespace: str, indices: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        # kopf's indices are live views: the latest seen are good for later retries too.
        for name in (*INDICES, rollout_handlers.POD_INDEX):
            indices_seen[name] = indices.get(name, indices_seen.get(name, {}))
        bodies: list[Mapping[str, Any]] = []
        for name in INDICES:
            index = indices_seen[name]
            if namespace in index:
                bodies.extend(index[namespace])
        return bodies

    async def reconcile(
        namespace: str,
        trigger: str,
        indices: Mapping[str, Any],
        observed: resync.Observed | None = None,
    ) -> None:
        pods = rollout_handlers.pods_in(indices, namespace)
        try:
            await state["controller"].reconcile(
                namespace,
                bodies_of(namespace, indices),
                trigger=trigger,
                pods=pods,
                observed=observed,
            )
        except WriteRefused as error:
            raise kopf.TemporaryError(str(error), delay=error.delay) from error

    def reconcile_until_done(namespace: str, trigger: str, indices: Mapping[str, Any]) -> None:
        """From an on.event handler (never retried by kopf): retried here until it succeeds."""
        bodies_of(namespace, indices)

        async def job() -> None:
            bodies = bodies_of(namespace, {})
            pods = rollout_handlers.pods_in(indices_seen, namespace)
            await state["controller"].reconcile(namespace, bodies, trigger, pods=pods)

        retrier.submit(f"reconcile {namespace}", job)

    async def refresh_rollout(namespace: str, indices: Mapping[str, Any]) -> None:
        if "controller" in state:
            pods = rollout_handlers.pods_in(indices, namespace)
            await state["controller"].refresh_rollout(
                namespace, bodies_of(namespace, indices), pods
            )

    def rollout_settled(namespace: str, indices: Mapping[str, Any]) -> bool:
        pods = rollout_handlers.pods_in(indices, namespace)
        return "controller" not in state or state["controller"].rollout_settled(namespace, pods)

    rollout_handlers.register(registry, refresh_rollout, rollout_settled)

    for plural, kind in ((PROFILES, "TimeoutProfile"), (POLICIES, "SessionPolicy")):
        changed = _changed_handler(reconcile, kind)

        for decorator in (kopf.on.resume, kopf.on.create, kopf.on.update):
            decorator(
                GROUP,
                VERSION,
                plural,
                id=f"reconcile-{plural}",
                backoff=RETRY_BACKOFF_S,
                registry=registry,
            )(changed)

        kopf.on.event(
            GROUP, VERSION, plural, id=f"deleted-{plural}", when=_is_deletion, registry=registry
        )(_deleted_handler(reconcile_until_done, kind))

    async def resync_forever() -> None:
        """Every ``resync_seconds``, re-read each namespace that has our resources: the
        ConfigMap (an edit whose event was missed), the CronJob, the finished Jobs.

        One loop for the operator rather than a kopf timer per resource: kopf puts its
        finalizer on every resource with a timer, and that finalizer would block deleting
        a profile whenever the operator is not running.
        """
        while True:
            await asyncio.sleep(settings.resync_seconds)
            namespaces = {ns for name in INDICES for ns in indices_seen.get(name, {})}
            # Where kopf paused this replica its indices are frozen: the leader resyncs.
            try:
                leading = {ns for ns in namespaces if await leads_in(ns)}
            except Exception:
                _log.exception("reading kopf's peering object failed; the next round retries")
                continue
            if not leading:
                continue
            observed = await _observe(state["controller"], settings, leading)
            for namespace in sorted(leading):
                try:
                    state["controller"].distrust(namespace)
                    await reconcile(namespace, "Resync", indices_seen, observed)
                    policies = indices_seen.get("hourglass_policies", {})
                    await state["controller"].resync_cleanups(
                        namespace,
                        list(policies[namespace]) if namespace in policies else [],
                        observed,
                    )
                except Exception:
                    _log.exception("resync of %s failed; the next round retries it", namespace)

    async def rerender(namespace: str) -> None:
        await reconcile(namespace, "Tuning", indices_seen)

    tuning_handlers.register(
        registry, settings, lambda: state["controller"], indices_seen, rerender, leads_in
    )

    @kopf.on.startup(registry=registry)
    async def start_resync(**_: Any) -> None:
        resync_task.append(asyncio.create_task(resync_forever()))

    @kopf.on.cleanup(registry=registry)
    async def stop_resync(**_: Any) -> None:
        while resync_task:
            task = resync_task.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Selected by name, not by our labels: an edit that strips the labels is an edit too.
    @kopf.on.event("v1", "configmaps", when=_is_our_configmap, registry=registry)
    async def configmap_changed(**kwargs: Any) -> None:
        event, body, namespace, name = (kwargs[k] for k in ("event", "body", "namespace", "name"))
        if name != CONFIGMAP_NAME or "controller" not in state:
            return
        deleted = event.get("type") == "DELETED"
        if not deleted and state["controller"].matches_last_write(namespace, body):
            return
        if event.get("type") in ("MODIFIED", "DELETED"):
            _log.info("ConfigMap %s/%s changed by someone else; checking it", namespace, name)
        state["controller"].distrust(namespace)
        reconcile_until_done(namespace, "ConfigMap", kwargs)

    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        labels={POLICY_LABEL: kopf.PRESENT},
        when=_is_finished_job,
        registry=registry,
    )
    async def cleanup_job_changed(**kwargs: Any) -> None:
        job, namespace = _raw(kwargs["body"]), kwargs["namespace"]
        bodies_of(namespace, kwargs)

        async def record() -> None:
            index = indices_seen["hourglass_policies"]
            policies = list(index[namespace]) if namespace in index else []
            await state["controller"].record_cleanup(job, policies)

        retrier.submit(f"lastCleanup {namespace}/{kwargs['name']}", record)

    if settings.webhook:
        kubes: list[Kube] = []

        async def siblings(namespace: str) -> list[Mapping[str, Any]]:
            if not kubes:
                kubes.append(Kube())
            return await webhook.read_siblings(kubes[0], namespace)

        webhook.register(registry, siblings)
    return registry


async def _observe(
    controller: Controller, settings: OperatorSettings, namespaces: set[str]
) -> resync.Observed | None:
    """A resync round's lists: cluster-wide, or per namespace for a namespaced operator;
    None (one read per namespace, as before) when the lists fail."""
    try:
        return await controller.observe(namespaces if settings.namespaces else None)
    except Exception as error:
        _log.warning("resync lists failed (%s); reading each namespace instead", error)
        return None


def _is_deletion(**kwargs: Any) -> bool:
    """Only the watch's DELETED events matter to the deletion handlers (cheap pre-filter)."""
    return bool(kwargs.get("type") == "DELETED")


def _is_our_configmap(**kwargs: Any) -> bool:
    return bool(kwargs.get("name") == CONFIGMAP_NAME)


def _is_finished_job(**kwargs: Any) -> bool:
    conditions = (kwargs.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


_Reconcile = Callable[[str, str, Mapping[str, Any]], Awaitable[None]]


def _changed_handler(reconcile: _Reconcile, kind: str) -> Callable[..., Awaitable[None]]:
    async def changed(**kwargs: Any) -> None:
        await reconcile(kwargs["namespace"], kind, kwargs)

    return changed


def _deleted_handler(
    reconcile: Callable[[str, str, Mapping[str, Any]], None], kind: str
) -> Callable[..., Awaitable[None]]:
    async def deleted(**kwargs: Any) -> None:
        # No finalizer: deletion must never wait for the operator. The watch's DELETED
        # event re-renders the namespace (kopf's index has already dropped the object),
        # retried until it succeeds.
        if kwargs["event"].get("type") == "DELETED":
            reconcile(kwargs["namespace"], kind, kwargs)

    return deleted


# `kopf run -m hourglass_operator.handlers` and kopf's KopfRunner load this module and use
# kopf's default registry; `hourglass operator` builds its own registry instead.
build_registry(OperatorSettings.from_env(), registry=kopf.get_default_registry())
