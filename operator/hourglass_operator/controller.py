"""The imperative shell around `reconcile.plan_namespace`: read, decide, write what differs.

One lock per namespace serialises renders, so a burst of changes in one namespace
ends in one consistent ConfigMap; namespaces proceed in parallel.

``status.configHash`` and ``status.rollout.hash`` are the hash on the ConfigMap as written
(or read), never one that is only planned: a refused ConfigMap write leaves them where
they were and says in ``Ready=False`` which hash was refused.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from agent_lib.config.bundle import CONFIGMAP_NAME, HASH_ANNOTATION
from agent_lib.config.revision import revision_to_write
from hourglass_operator import metrics, resync, tuning
from hourglass_operator.cronjob import (
    CRONJOB_NAME,
    POLICY_LABEL,
    SPEC_HASH_ANNOTATION,
    policy_label,
)
from hourglass_operator.errors import ApiRequestError
from hourglass_operator.k8s import (
    Kube,
    configmap_path,
    cronjob_path,
    jobs_path,
    pods_path,
    status_path,
)
from hourglass_operator.reconcile import NamespacePlan, ResourceKey, key_of, plan_namespace
from hourglass_operator.resync import Observed
from hourglass_operator.rollout import PodReport, PodState
from hourglass_operator.rollout_tracker import Resource, RolloutTracker
from hourglass_operator.settings import OperatorSettings
from hourglass_operator.status import READY, Condition, merge_patch, with_condition

PLURALS = {"TimeoutProfile": "timeoutprofiles", "SessionPolicy": "sessionpolicies"}
MANAGED_BY = ("app.kubernetes.io/managed-by", "hourglass-operator")
_log = logging.getLogger("hourglass_operator")
_RECENT_WRITES = 8

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]
"""(body, type, reason, message): kopf.event in production."""


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Controller:
    def __init__(self, kube: Kube, settings: OperatorSettings, post_event: EventPoster) -> None:
        self._kube = kube
        self._settings = settings
        self._post_event = post_event
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._statuses: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._written: defaultdict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=_RECENT_WRITES)
        )
        self._failures: dict[str, int] = {}
        """Failed reconciles in a row, per namespace: the retry delay grows with them."""
        self._known: dict[str, dict[str, Any]] = {}
        """The ConfigMap each namespace has, as last written or read, until an edit is seen."""
        self._config_hashes: dict[str, str] = {}
        """The hash on each namespace's ConfigMap, as last written or read: what agents get."""
        self._wrote_at: dict[str, float] = {}
        """When (monotonic) the operator last wrote each namespace's ConfigMap or CronJob."""
        self.rollouts = RolloutTracker()

    async def reconcile(
        self,
        namespace: str,
        bodies: Iterable[Mapping[str, Any]],
        trigger: str = "",
        pods: Iterable[PodReport] | None = None,
        observed: Observed | None = None,
    ) -> NamespacePlan:
        """Render ``namespace`` from ``bodies`` (all its resources) and write what changed.

        ``pods`` (the namespace's agent pods) replace the ones known, when given.
        ``observed`` (a resync round's lists) stands for the reads of the ConfigMap and
        the CronJob, unless the namespace was written to since.

        A write the API server refuses raises `WriteRefused` with the delay before the next
        try (growing to minutes); a refusal that retrying cannot fix (422, 403, 409 again
        and again, a ConfigMap over 1 MiB) first sets Ready=False with the server's reason
        on the resources concerned and posts a Warning Event.
        """
        live = [b for b in bodies if not b.get("metadata", {}).get("deletionTimestamp")]
        async with self._locks[namespace]:
            if pods is not None:
                self.rollouts.set_pods(namespace, pods)
            started = time.perf_counter()
            plan = plan_namespace(
                namespace,
                tuning.with_applied(live, self._status_of),
                image=self._settings.image,
                now=utcnow(),
                statuses=self._statuses[namespace],
                pull_secrets=self._settings.image_pull_secrets,
            )
            metrics.RENDER_SECONDS.labels(namespace).observe(time.perf_counter() - started)
            try:
                listed = observed if self._still_true(observed, namespace) else None
                wrote = await self._apply_configmap(plan, listed)
                await self._apply_cronjob(plan, listed)
            except ApiRequestError as error:
                raise await self._refused(plan, live, error, trigger) from error
            await self._apply_statuses(plan, live)
            self._failures.pop(namespace, None)
            self._post_events(plan, live)
            self._count(plan, live, trigger, wrote)
            return plan

    async def _refused(
        self,
        plan: NamespacePlan,
        live: Sequence[Mapping[str, Any]],
        error: ApiRequestError,
        trigger: str,
    ) -> WriteRefused:
        namespace = plan.namespace
        self.distrust(namespace)
        failures = self._failures[namespace] = self._failures.get(namespace, 0) + 1
        metrics.FAILURES.labels(namespace, trigger, "api_error").inc()
        metrics.RECONCILES.labels(namespace, trigger, "error").inc()
        permanent = is_permanent(error, failures)
        delay = retry_delay(failures, permanent)
        _log.error(
            "reconcile of %s failed (%s; next try in %.0fs): %s",
            namespace,
            "refused" if permanent else "transient",
            delay,
            error,
        )
        if permanent:
            await self._report_refusal(plan, live, error)
        return WriteRefused(error, delay, permanent)

    async def _report_refusal(
        self, plan: NamespacePlan, live: Sequence[Mapping[str, Any]], error: ApiRequestError
    ) -> None:
        """Ready=False with the server's words on what the refused write concerns, and an Event.

        A refused CronJob concerns its SessionPolicy (the plan's other statuses are written
        as planned); a refused ConfigMap, every resource (and nothing else is written).
        """
        cronjob = "/cronjobs" in error.what
        what = "CronJob " + CRONJOB_NAME if cronjob else "ConfigMap " + CONFIGMAP_NAME
        written = self._config_hashes.get(plan.namespace)
        if not cronjob and plan.rendered is not None:
            kept = f"; it keeps hash {written}" if written else ""
            what = f"{what} with hash {plan.rendered.hash}{kept}"
        message = f"the API server refused to write {what}: HTTP {error.status}: {error.reason}"
        concerned = {
            key_of(b)
            for b in live
            if not cronjob or (plan.cronjob is not None and b.get("kind") == "SessionPolicy")
        }
        reason = refusal_reason(error)
        condition = Condition(READY, False, reason, message)
        now = utcnow()
        planned: dict[ResourceKey, dict[str, Any]] = dict(plan.statuses) if cronjob else {}
        for body in live:
            key = key_of(body)
            if key in concerned:
                base = plan.statuses.get(key) or self._status_of(body)
                if not cronjob:
                    base = _with_hash_of(base, self._status_of(body))
                generation = int(body.get("metadata", {}).get("generation") or 1)
                planned[key] = with_condition(base, condition, generation, now)
        try:
            await self._write_statuses(plan.namespace, live, planned)
        except Exception as status_error:  # the reconcile's retry reports it again
            _log.error("could not report the refusal on %s: %s", plan.namespace, status_error)
        for body in live:
            if key_of(body) in concerned:
                self._post_event(body, "Warning", reason, message)

    def matches_last_write(self, namespace: str, configmap: Mapping[str, Any]) -> bool:
        """Whether a ConfigMap seen on the watch is one of our recent writes (nothing to do).

        The watch may deliver our own earlier write after a later one: that is not an edit.
        """
        return any(_same_configmap(configmap, ours) for ours in self._written.get(namespace, ()))

    def _still_true(self, observed: Observed | None, namespace: str) -> bool:
        return observed is not None and observed.fresh(self._wrote_at.get(namespace))

    async def observe(self, namespaces: Iterable[str] | None) -> Observed:
        """A resync round's lists (`resync.observe`)."""
        return await resync.observe(self._kube, namespaces)

    async def _apply_configmap(self, plan: NamespacePlan, observed: Observed | None) -> bool:
        namespace = plan.namespace
        path = configmap_path(namespace, CONFIGMAP_NAME)
        if plan.remove_configmap:
            # The last resource is gone: its ownerReferences let the garbage collector
            # remove the ConfigMap; the operator needs no delete permission.
            self._forget(namespace)
            self.rollouts.forget(namespace)
            metrics.set_config_hash(namespace, None)
            return False
        if plan.rendered is None:
            return False
        known = self._known.get(namespace)
        if known is not None:
            current: Mapping[str, Any] | None = known
        elif observed is not None:
            current = observed.configmaps.get(namespace)
        else:
            current = await self._kube.get(path)
        self._note_hash(namespace, current)
        # A revision orders versions for the agents (a revert is a new version too);
        # unchanged content keeps the revision it has, so nothing is rewritten.
        revision = revision_to_write(
            (current or {}).get("data"), plan.rendered.content, time.time()
        )
        desired = plan.rendered.configmap_at(revision)
        size = configmap_size(desired)
        if size > MAX_CONFIGMAP_BYTES:
            raise ApiRequestError(
                "WRITE",
                path,
                413,
                f"the rendered ConfigMap is {size} bytes, over the API server's limit of "
                f"{MAX_CONFIGMAP_BYTES} (1 MiB): split the profiles across namespaces",
            )
        wrote = True
        if current is None or not _same_configmap(current, desired):
            self._wrote_at[namespace] = time.monotonic()
        if current is None:
            await self._kube.create(configmap_path(namespace), desired)
        elif not _same_configmap(current, desired):
            patched = await self._kube.merge_patch(path, _configmap_patch(current, desired))
            if patched is None:
                await self._kube.create(configmap_path(namespace), desired)
        else:
            wrote = False
        self._known[namespace] = desired
        self._note_hash(namespace, desired)
        self._written[namespace].append(desired)
        metrics.set_config_hash(namespace, plan.rendered.hash)
        if wrote:
            _log.info("wrote %s/%s hash %s", namespace, CONFIGMAP_NAME, plan.rendered.hash)
        return wrote

    async def _apply_cronjob(self, plan: NamespacePlan, observed: Observed | None) -> None:
        """Create or update the CronJob; a removed policy's goes with it (ownerReference)."""
        path = cronjob_path(plan.namespace, CRONJOB_NAME)
        if plan.cronjob is None:
            if plan.cleanup_blocked is not None:
                await self._suspend_cronjob(path)
            return
        if observed is not None:
            current = observed.cronjobs.get(plan.namespace)
        else:
            current = await self._kube.get(path)
        if current is None or _annotation(current, SPEC_HASH_ANNOTATION) != _annotation(
            plan.cronjob, SPEC_HASH_ANNOTATION
        ):
            self._wrote_at[plan.namespace] = time.monotonic()
        if current is None:
            await self._kube.create(cronjob_path(plan.namespace), plan.cronjob)
        elif _annotation(current, SPEC_HASH_ANNOTATION) != _annotation(
            plan.cronjob, SPEC_HASH_ANNOTATION
        ):
            await self._kube.merge_patch(path, plan.cronjob)

    async def _suspend_cronjob(self, path: str) -> None:
        """A policy that lost its store Secret: its CronJob (if any) stops starting pods."""
        current = await self._kube.get(path)
        if current is not None and not (current.get("spec") or {}).get("suspend"):
            await self._kube.merge_patch(path, {"spec": {"suspend": True}})

    def _note_hash(self, namespace: str, configmap: Mapping[str, Any] | None) -> None:
        digest = _annotation(configmap, HASH_ANNOTATION) if configmap is not None else None
        if digest:
            self._config_hashes[namespace] = digest
        else:
            self._config_hashes.pop(namespace, None)

    async def _apply_statuses(
        self, plan: NamespacePlan, bodies: Sequence[Mapping[str, Any]]
    ) -> None:
        await self._write_statuses(plan.namespace, bodies, plan.statuses)

    async def refresh_rollout(
        self, namespace: str, bodies: Iterable[Mapping[str, Any]], pods: Iterable[PodReport]
    ) -> None:
        """The agent pods changed: bring status.rollout and Applied up to date, nothing else.

        The statuses stay what the last reconcile made them apart from the rollout, so a
        spec change the reconcile has not handled yet shows nowhere before its ConfigMap.
        Unchanged pods still write what differs: a retry after a failed write lands it.
        """
        live = [b for b in bodies if not b.get("metadata", {}).get("deletionTimestamp")]
        async with self._locks[namespace]:
            self.rollouts.set_pods(namespace, pods)
            if live:
                await self._write_statuses(namespace, live, {})

    def rollout_settled(self, namespace: str, pods: Iterable[PodReport]) -> bool:
        """Whether no pod is still pending on the hash the namespace's ConfigMap carries
        (each runs it or rejected it), or there is no such hash yet."""
        target = self._config_hashes.get(namespace)
        return target is None or all(pod.state(target) is not PodState.PENDING for pod in pods)

    async def _write_statuses(
        self,
        namespace: str,
        bodies: Sequence[Mapping[str, Any]],
        planned: Mapping[ResourceKey, dict[str, Any]],
    ) -> None:
        """Write each status that differs: the render's (``planned``) plus the rollout.

        Each status that lands is remembered; if any failed, the first error is raised
        once the others are done (the caller tries again, and only what differs is sent).
        """
        by_key = {key_of(b): b for b in bodies}
        cache = self._statuses[namespace]
        live_uids = {str(b.get("metadata", {}).get("uid")) for b in bodies}
        for uid in set(cache) - live_uids:
            del cache[uid]
        resources = [
            Resource(key, body, self._status_of(body), planned.get(key) or self._status_of(body))
            for key, body in sorted(by_key.items())
        ]
        written = self._config_hashes.get(namespace)
        target = self.rollouts.target(namespace, written, [r.base for r in resources])
        update = self.rollouts.update(namespace, target, resources, utcnow())
        changes = sorted(update.statuses.items())
        results = await asyncio.gather(
            *(
                self._patch_status(namespace, key, self._status_of(by_key[key]), status)
                for key, status in changes
            ),
            return_exceptions=True,
        )
        failed: set[ResourceKey] = set()
        for (key, status), result in zip(changes, results, strict=True):
            if isinstance(result, BaseException):
                failed.add(key)
            else:
                cache[str(by_key[key]["metadata"].get("uid"))] = status
        for event in update.events:
            # A completion is announced once its status has landed (the retry announces it).
            if event.key not in failed or event.reason == "ConfigRejected":
                self._post_event(by_key[event.key], event.type, event.reason, event.message)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def update_status(
        self,
        namespace: str,
        body: Mapping[str, Any],
        change: Callable[[Mapping[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Write ``change(status)`` over a resource's status as last written (spec.tuning)."""
        async with self._locks[namespace]:
            old = self._status_of(body)
            new = change(old)
            if new != old:
                await self._patch_status(namespace, key_of(body), old, new)
                self._statuses[namespace][str(body.get("metadata", {}).get("uid"))] = new
            return new

    def _status_of(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The status a resource has now: ours if written since the body was seen."""
        namespace = str(body.get("metadata", {}).get("namespace", ""))
        uid = str(body.get("metadata", {}).get("uid"))
        return self._statuses[namespace].get(uid) or body.get("status") or {}

    async def _patch_status(
        self,
        namespace: str,
        key: ResourceKey,
        old: Mapping[str, Any],
        status: dict[str, Any],
    ) -> None:
        path = status_path(PLURALS[key.kind], namespace, key.name)
        await self._kube.merge_patch(path, {"status": merge_patch(old, status)})

    def _post_events(self, plan: NamespacePlan, bodies: Sequence[Mapping[str, Any]]) -> None:
        by_key = {key_of(b): b for b in bodies}
        for event in plan.events:
            body = by_key.get(event.key)
            if body is not None:
                self._post_event(body, event.type, event.reason, event.message)

    def _count(
        self, plan: NamespacePlan, bodies: Sequence[Mapping[str, Any]], trigger: str, wrote: bool
    ) -> None:
        namespace = plan.namespace
        result = "invalid" if plan.problems else "rendered" if wrote else "unchanged"
        metrics.RECONCILES.labels(namespace, trigger, result).inc()
        invalid: dict[str, int] = {kind: 0 for kind in PLURALS}
        for problem in plan.problems:
            metrics.FAILURES.labels(namespace, problem.kind, _failure_reason(problem.field)).inc()
        for key in {ResourceKey(p.kind, p.name) for p in plan.problems}:
            if key.kind in invalid:
                invalid[key.kind] += 1
        for kind, count in invalid.items():
            metrics.INVALID.labels(namespace, kind).set(count)

    def distrust(self, namespace: str) -> None:
        """Someone else changed the ConfigMap: read it again before the next write."""
        self._known.pop(namespace, None)

    def _forget(self, namespace: str) -> None:
        self._known.pop(namespace, None)
        self._config_hashes.pop(namespace, None)
        self._written.pop(namespace, None)
        self._statuses.pop(namespace, None)

    async def record_cleanup(
        self, job: Mapping[str, Any], policies: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any] | None:
        """Copy a finished cleanup Job's summary into its SessionPolicy's status.lastCleanup."""
        meta = job.get("metadata", {})
        namespace = str(meta.get("namespace", ""))
        outcome = _job_outcome(job)
        policy_name = (meta.get("labels") or {}).get(POLICY_LABEL)
        if outcome is None or not policy_name:
            return None
        policy = next(
            (
                p
                for p in policies
                if policy_label(p.get("metadata", {}).get("name", "")) == policy_name
            ),
            None,
        )
        if policy is None:
            return None
        async with self._locks[namespace]:
            uid = str(policy["metadata"].get("uid"))
            old = self._status_of(policy)
            status = dict(old)
            succeeded, finished = outcome
            recorded = status.get("lastCleanup") or {}
            if recorded.get("job") == meta.get("name"):
                return None
            if str(recorded.get("completionTime") or "") > finished:
                return None  # an older run finishing late does not replace a newer one
            summary = await self._summary(namespace, job)
            last = {
                "job": str(meta.get("name")),
                "succeeded": succeeded,
                "completionTime": finished,
                "summary": summary,
            }
            status["lastCleanup"] = last
            key = ResourceKey("SessionPolicy", str(policy["metadata"]["name"]))
            await self._patch_status(namespace, key, old, status)
            self._statuses[namespace][uid] = status
        metrics.CLEANUP_RUNS.labels(namespace, "succeeded" if succeeded else "failed").inc()
        if succeeded:
            metrics.LAST_CLEANUP.labels(namespace).set(time.time())
        self._post_event(
            policy,
            "Normal" if succeeded else "Warning",
            "CleanupSucceeded" if succeeded else "CleanupFailed",
            f"Job {meta.get('name')}: {json.dumps(summary, sort_keys=True)[:400]}",
        )
        return last

    async def resync_cleanups(
        self,
        namespace: str,
        policies: Iterable[Mapping[str, Any]],
        observed: Observed | None = None,
    ) -> dict[str, Any] | None:
        """Record the newest finished cleanup Job, in case its watch event was missed
        (from ``observed``, a resync round's lists, when given)."""
        policies = list(policies)
        if not policies:
            return None
        if observed is not None:
            jobs: list[dict[str, Any]] = observed.jobs.get(namespace, [])
        else:
            listed = await self._kube.get(jobs_path(namespace), {"labelSelector": POLICY_LABEL})
            jobs = (listed or {}).get("items", [])
        finished = [(outcome[1], job) for job in jobs if (outcome := _job_outcome(job)) is not None]
        if not finished:
            return None
        _, newest = max(finished, key=lambda pair: pair[0])
        return await self.record_cleanup(newest, policies)

    async def _summary(self, namespace: str, job: Mapping[str, Any]) -> dict[str, Any] | None:
        """The JSON summary the cleanup container left as its termination message."""
        name = str(job["metadata"].get("name"))
        uid = job["metadata"].get("uid")
        pods = await self._kube.get(
            pods_path(namespace), query={"labelSelector": f"job-name={name}"}
        )
        items = [
            pod
            for pod in (pods or {}).get("items", [])
            if any(
                ref.get("uid") == uid
                for ref in pod.get("metadata", {}).get("ownerReferences") or []
            )
        ]
        items.sort(key=lambda pod: str(pod.get("metadata", {}).get("creationTimestamp", "")))
        for pod in reversed(items):
            for container in (pod.get("status") or {}).get("containerStatuses") or []:
                message = ((container.get("state") or {}).get("terminated") or {}).get("message")
                parsed = _parse_summary(message)
                if parsed is not None:
                    return parsed
        return None


MAX_CONFIGMAP_BYTES = 1024 * 1024
"""kube-apiserver refuses a ConfigMap whose data and binaryData add up to more."""
PERMANENT_STATUSES = frozenset({400, 403, 413, 422})
"""Refusals a retry of the same write cannot fix (409 too, once it keeps coming back)."""
CONFLICTS_BEFORE_PERMANENT = 3
FIRST_RETRY_S = 5.0
FIRST_RETRY_REFUSED_S = 15.0
MAX_RETRY_S = 300.0


class WriteRefused(ApiRequestError):
    """A reconcile's write failed; ``delay`` is how long to wait before the next try."""

    def __init__(self, error: ApiRequestError, delay: float, permanent: bool) -> None:
        super().__init__(error.verb, error.what, error.status, error.reason)
        self.delay = delay
        self.permanent = permanent


SESSION_STORE_LABEL = "hourglass.dev/session-store"
"""The opt-in label a Secret needs before a SessionPolicy may name it (checked by the
API server: manifests/operator/session-store-policy.yaml; the operator reads no Secret)."""


def refusal_reason(error: ApiRequestError) -> str:
    """``SecretNotOptedIn`` when the session-store policy refused it, else ``WriteRefused``."""
    return "SecretNotOptedIn" if SESSION_STORE_LABEL in error.reason else "WriteRefused"


def is_permanent(error: ApiRequestError, failures: int) -> bool:
    if error.status == 409:
        return failures >= CONFLICTS_BEFORE_PERMANENT
    return error.status in PERMANENT_STATUSES


def retry_delay(failures: int, permanent: bool) -> float:
    """Exponential, from 5 s (15 s for a refusal) up to 5 minutes."""
    first = FIRST_RETRY_REFUSED_S if permanent else FIRST_RETRY_S
    return float(min(MAX_RETRY_S, first * 2 ** min(failures - 1, 16)))


def configmap_size(configmap: Mapping[str, Any]) -> int:
    """Bytes of data and binaryData, as the API server counts them against 1 MiB."""
    data = configmap.get("data") or {}
    binary = configmap.get("binaryData") or {}
    return sum(len(k) + len(str(v).encode()) for k, v in data.items()) + sum(
        len(k) + len(str(v)) * 3 // 4 for k, v in binary.items()
    )


def _parse_summary(message: object) -> dict[str, Any] | None:
    if not isinstance(message, str) or not message.strip():
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return {"message": message[:1024]}
    return data if isinstance(data, dict) else {"message": message[:1024]}


def _job_outcome(job: Mapping[str, Any]) -> tuple[bool, str] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            finished = condition.get("lastTransitionTime") or (job.get("status") or {}).get(
                "completionTime", ""
            )
            return condition["type"] == "Complete", str(finished)
    return None


def _failure_reason(field: str) -> str:
    if field.startswith("spec.extends"):
        return "inheritance_error"
    if field == "spec.default":
        return "multiple_defaults"
    return "invalid_spec"


def _with_hash_of(planned: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """``planned`` with the configHash the resource has now: its ConfigMap was not written."""
    status = dict(planned)
    status.pop("configHash", None)
    if current.get("configHash"):
        status["configHash"] = current["configHash"]
    return status


def _annotation(obj: Mapping[str, Any], name: str) -> str | None:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(name)
    return None if value is None else str(value)


def _same_configmap(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    cur_meta, want_meta = current.get("metadata", {}), desired["metadata"]
    labels = cur_meta.get("labels") or {}
    annotations = cur_meta.get("annotations") or {}
    return (
        (current.get("data") or {}) == desired["data"]
        and not current.get("binaryData")
        and all(labels.get(k) == v for k, v in want_meta["labels"].items())
        and all(annotations.get(k) == v for k, v in want_meta["annotations"].items())
        and (cur_meta.get("ownerReferences") or []) == want_meta.get("ownerReferences", [])
    )


def _configmap_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that makes ``current`` carry exactly the rendered data and our metadata."""
    data: dict[str, Any] = {k: None for k in current.get("data") or {}}
    data.update(desired["data"])
    meta = desired["metadata"]
    patch: dict[str, Any] = {
        "metadata": {
            "labels": meta["labels"],
            "annotations": meta["annotations"],
            "ownerReferences": meta.get("ownerReferences"),
        },
        "data": data,
    }
    if current.get("binaryData"):
        patch["binaryData"] = None
    return patch
