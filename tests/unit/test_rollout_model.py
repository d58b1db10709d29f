"""A model-based test of the rollout aggregation (issue 24, item 6): hypothesis drives pod
reports, profile changes, ConfigMap refusals, evictions and terminations, operator
restarts and failing status writes through the operator's real `Controller`, its
`RolloutTracker`, the real pod-index entry (`index_entry`) in kopf's own `OperatorIndexer`,
the real debouncer with its retries and its progress hold (issue 21: the last write,
that leaves no pod pending, is never held back or lost), and `hourglass rollout
status`'s `judge`.

What stands in for what cannot run in a unit test: `_FakeApi` for kube-apiserver (only
the ConfigMap and the two status calls the controller makes, with refusals and outages
on demand); the rules below for kopf delivering events (index first, then the handler)
and for kopf retrying a failed reconcile. The same five repros run on the real control
plane in tests/integration/test_cp_rollout_truth.py.

Invariants, whenever the operator has settled (no retry pending):
- the operator's status and `hourglass rollout status` agree (verdict and counts);
- ``Applied=True`` exactly when every counting pod runs the written hash;
- ``configHash`` and ``rollout.hash`` are the hash on the ConfigMap;
and at every step:
- no pod is reported (status, condition, Event) as rejecting a hash it did not refuse;
- no status ever names a hash that was never written.

Run against the code before issue 24 (each fix reverted in turn), it fails within this
budget; the shrunk examples:
- ``add_pod(); pod_rejects(index=0, named=False)`` -> "pod p0 rejected hash H", though
  the agent never said which hash it refused;
- ``add_pod(); pod_stops(how='Failed', index=0)`` -> Applied=False "0/1" with no pod
  left that counts (the CLI: nothing to wait for);
- ``add_pod(); status_fault('outage'); pod_applies(0); status_fault(None)`` -> Applied
  stays False though every pod runs the hash (the failed write is never made again);
- ``refuse_configmap(on=True); change_profile()`` -> configHash holds a hash never written.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from typing import Any

from hourglass_operator import rollout_handlers
from hourglass_operator.controller import Controller, WriteRefused
from hourglass_operator.errors import ApiRequestError
from hourglass_operator.k8s import configmap_path
from hourglass_operator.rollout import (
    APPLIED_HASH,
    CONFIG_ERROR,
    REJECTED_HASH,
    counts,
)
from hourglass_operator.rollout_handlers import POD_INDEX, index_entry, pods_in
from hourglass_operator.settings import OperatorSettings
from hourglass_operator.status import condition_of
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from kopf._core.engines.indexing import OperatorIndexer

from agent_lib.config.bundle import CONFIGMAP_NAME, HASH_ANNOTATION
from hourglass_cli._rollout_progress import Snapshot, Verdict, judge

NS = "model"
PROFILE = "default"
UID = "uid-default"
STATUS_PATH = f"/apis/hourglass.dev/v1alpha1/namespaces/{NS}/timeoutprofiles/{PROFILE}/status"


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


class _Outage(OSError):
    """What the `kubernetes` client raises with the server unreachable (not an ApiException)."""


class _FakeApi:
    """Stands in for kube-apiserver: the ConfigMap and the profile's status, with faults."""

    def __init__(self) -> None:
        self.configmap: dict[str, Any] | None = None
        self.status: dict[str, Any] = {}
        self.refuse_configmap = False
        self.status_fault: str | None = None
        self.written: set[str] = set()
        """Every hash the ConfigMap ever carried."""

    @property
    def hash(self) -> str | None:
        if self.configmap is None:
            return None
        return str(self.configmap["metadata"]["annotations"][HASH_ANNOTATION])

    async def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        assert path == configmap_path(NS, CONFIGMAP_NAME), path
        return copy.deepcopy(self.configmap)

    async def create(self, path: str, body: Mapping[str, Any]) -> Any:
        assert path == configmap_path(NS), path
        return self._write_configmap(dict(body))

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> Any:
        if path == STATUS_PATH:
            if self.status_fault == "refuse":
                raise ApiRequestError("PATCH", path, 422, "denied by a policy (model)")
            if self.status_fault == "outage":
                raise _Outage("connection refused (model)")
            self.status = _merge(self.status, body["status"])
            return {"status": self.status}
        assert path == configmap_path(NS, CONFIGMAP_NAME), path
        return self._write_configmap(_merge(self.configmap, body))

    def _write_configmap(self, configmap: dict[str, Any]) -> dict[str, Any]:
        if self.refuse_configmap:
            raise ApiRequestError("PATCH", configmap_path(NS), 422, "denied by a policy (model)")
        self.configmap = configmap
        self.written.add(str(configmap["metadata"]["annotations"][HASH_ANNOTATION]))
        return copy.deepcopy(configmap)


class RolloutModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.api = _FakeApi()
        self.version = 1
        self.generation = 1
        self.pods: dict[str, dict[str, Any]] = {}
        self.refused: set[tuple[str, str]] = set()
        """(pod, hash) for every refusal a pod really made."""
        self.events: list[tuple[str, str, str]] = []
        self.reconcile_due = False
        self._retry_delay = rollout_handlers.retry_delay
        rollout_handlers.retry_delay = lambda failures: 0.001
        logging.getLogger("hourglass_operator").setLevel(logging.CRITICAL)
        self._start_operator()
        self._reconcile()

    def teardown(self) -> None:
        rollout_handlers.retry_delay = self._retry_delay
        self.loop.run_until_complete(self._cancel_all())
        self.loop.close()

    # --- the operator as kopf runs it -----------------------------------------------------

    def _start_operator(self) -> None:
        self.controller = Controller(self.api, OperatorSettings(), self._post_event)
        self.indexer = OperatorIndexer()
        for pod in self.pods.values():  # kopf's initial listing of the pod index
            self._index(pod)
        # The progress hold of issue 21 too, its interval shortened to fit the settling.
        self.debouncer = rollout_handlers._Debouncer(
            self._refresh, self._rollout_settled, debounce=0.001, interval=0.01
        )

    def _rollout_settled(self, namespace: str, indices: Mapping[str, Any]) -> bool:
        return self.controller.rollout_settled(namespace, pods_in(indices, namespace))

    def _post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def _body(self) -> dict[str, Any]:
        return {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "TimeoutProfile",
            "metadata": {
                "name": PROFILE,
                "namespace": NS,
                "uid": UID,
                "generation": self.generation,
            },
            "spec": {"default": True, "timeouts": {"request": f"{self.version}s"}},
            "status": copy.deepcopy(self.api.status),
        }

    def _indices(self) -> dict[str, Any]:
        return {POD_INDEX: self.indexer.index}

    async def _refresh(self, namespace: str, indices: Mapping[str, Any]) -> None:
        pods = pods_in(indices, namespace)
        await self.controller.refresh_rollout(namespace, [self._body()], pods)

    def _index(self, pod: Mapping[str, Any]) -> None:
        """kopf's indexing: the handler's result replaces the entry; None keeps the old one."""
        meta = pod["metadata"]
        result = index_entry(NS, pod)
        if result is not None:
            self.indexer.replace((NS, meta["name"], meta["uid"]), result)

    def _pod_event(self, pod: Mapping[str, Any]) -> None:
        self._index(pod)
        self.loop.run_until_complete(self._poke())

    async def _poke(self) -> None:
        self.debouncer.poke(NS, self._indices(), 0)

    def _reconcile(self) -> None:
        async def run() -> None:
            pods = pods_in(self._indices(), NS)
            await self.controller.reconcile(NS, [self._body()], "model", pods=pods)

        try:
            self.loop.run_until_complete(run())
        except (WriteRefused, ApiRequestError, OSError):
            self.reconcile_due = True  # kopf retries the handler after a delay
        else:
            self.reconcile_due = False
        self._settle()

    def _settle(self) -> None:
        async def run() -> None:
            for _ in range(20):
                await asyncio.sleep(0.002)
                if all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task()):
                    return

        self.loop.run_until_complete(run())

    async def _cancel_all(self) -> None:
        """The operator process ends: its pending refreshes and retries with it."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def settled(self) -> bool:
        return (
            all(task.done() for task in asyncio.all_tasks(self.loop))
            and not self.reconcile_due
            and self.api.status_fault is None
            and self.api.hash is not None
        )

    # --- rules ---------------------------------------------------------------------------

    @rule()
    def add_pod(self) -> None:
        name = f"p{len(self.pods)}"
        pod = {"metadata": {"name": name, "uid": f"uid-{name}", "annotations": {}}, "status": {}}
        self.pods[name] = pod
        self._pod_event(pod)
        self._settle()

    def _pick(self, index: int) -> dict[str, Any] | None:
        live = [p for name, p in sorted(self.pods.items()) if counts(p)]
        return live[index % len(live)] if live else None

    def _annotate(self, pod: dict[str, Any], notes: Mapping[str, str | None]) -> None:
        pod["metadata"]["annotations"] = _merge(pod["metadata"]["annotations"], notes)
        self._pod_event(pod)
        self._settle()

    @rule(index=st.integers(0, 7))
    def pod_applies(self, index: int) -> None:
        pod, digest = self._pick(index), self.api.hash
        if pod is not None and digest is not None:
            notes = {APPLIED_HASH: digest, CONFIG_ERROR: None, REJECTED_HASH: None}
            self._annotate(pod, notes)

    @rule(index=st.integers(0, 7), named=st.booleans())
    def pod_rejects(self, index: int, named: bool) -> None:
        """The agent refuses the hash on the ConfigMap (an older agent does not name it)."""
        pod, digest = self._pick(index), self.api.hash
        if pod is None or digest is None:
            return
        if pod["metadata"]["annotations"].get(APPLIED_HASH) == digest:
            return
        if named:
            self.refused.add((pod["metadata"]["name"], digest))
        notes = {CONFIG_ERROR: "timeouts.fooBar: unknown", REJECTED_HASH: digest if named else None}
        self._annotate(pod, notes)

    @rule(index=st.integers(0, 7), how=st.sampled_from(["Failed", "Succeeded", "deleting"]))
    def pod_stops(self, index: int, how: str) -> None:
        """Evicted (Failed), finished (Succeeded), or held terminating by a finalizer."""
        pod = self._pick(index)
        if pod is None:
            return
        if how == "deleting":
            pod["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
        else:
            pod["status"]["phase"] = how
        self._pod_event(pod)
        self._settle()

    @rule()
    def change_profile(self) -> None:
        self.version += 1
        self.generation += 1
        self._reconcile()

    @rule(on=st.booleans())
    def refuse_configmap(self, on: bool) -> None:
        self.api.refuse_configmap = on
        if self.reconcile_due or not on:
            self._reconcile()

    @rule(fault=st.sampled_from([None, "refuse", "outage"]))
    def status_fault(self, fault: str | None) -> None:
        self.api.status_fault = fault
        if self.reconcile_due:
            self._reconcile()
        self._settle()

    @rule()
    def restart_operator(self) -> None:
        self.loop.run_until_complete(self._cancel_all())
        self._start_operator()
        self._reconcile()

    @precondition(lambda self: self.reconcile_due)
    @rule()
    def kopf_retries_the_reconcile(self) -> None:
        self._reconcile()

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def no_pod_is_blamed_for_a_hash_it_did_not_refuse(self) -> None:
        for type_, reason, message in self.events:
            if reason == "ConfigRejected":
                words = message.split()
                assert (words[1], words[4].rstrip(":")) in self.refused, message
        applied = condition_of(self.api.status, "Applied") or {}
        digest = (self.api.status.get("rollout") or {}).get("hash")
        if applied.get("reason") == "Rejected":
            pod = str(applied["message"]).split()[1]
            assert (pod, digest) in self.refused, applied

    @invariant()
    def no_status_names_a_hash_never_written(self) -> None:
        for digest in (
            self.api.status.get("configHash"),
            (self.api.status.get("rollout") or {}).get("hash"),
        ):
            assert digest is None or digest in self.api.written, (digest, self.api.written)

    @invariant()
    def settled_status_tells_the_truth_and_the_cli_agrees(self) -> None:
        if not self.settled:
            return
        status, digest = self.api.status, self.api.hash
        assert status.get("configHash") == digest
        assert status["rollout"]["hash"] == digest
        counting = [p for p in self.pods.values() if counts(p)]
        everywhere = all(p["metadata"]["annotations"].get(APPLIED_HASH) == digest for p in counting)
        applied = condition_of(status, "Applied") or {}
        assert (applied.get("status") == "True") == everywhere, (applied, counting)
        assert status["rollout"]["total"] == len(counting)

        progress = judge(Snapshot.of(NS, [self._body()], digest, list(self.pods.values())))
        ready = condition_of(status, "Ready") or {}
        stalled = condition_of(status, "Stalled") is not None
        if ready.get("status") == "False" or stalled:
            expected = Verdict.FAILED
        elif applied.get("status") == "True":
            expected = Verdict.APPLIED
        else:
            expected = Verdict.WAITING
        assert progress.verdict is expected, (progress, status)
        assert len(progress.pods) == status["rollout"]["total"]


RolloutModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None, derandomize=True
)
test_rollout_model = RolloutModel.TestCase
