"""kopf handlers for the rollout: watch the agent pods, refresh the statuses, debounced.

The pods are selected on the server (``labelSelector``), so the operator never receives
any other pod. They are kept in a kopf index: kopf starts no reconcile before every
index has had its initial listing, so a restarted operator never reports a rollout
from half a list. Many pods reporting at once (a rollout) end in one status write per
resource per ``DEBOUNCE_S``. A write that fails, for whatever reason (a refusal, a 5xx or
429, an unreachable server), is tried again with growing delays until it lands.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from agent_lib.config.bundle import CONFIGMAP_NAME
from hourglass_operator.rollout import CONFIG_LABEL, SELECTOR, PodReport

POD_INDEX = "hourglass_pods"
DEBOUNCE_S = 0.2
"""Pod reports within this window are written together."""
PROGRESS_INTERVAL_S = 3.0
"""While pods are pending, a namespace's rollout is written at most this often."""
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
"""A failed rollout write is tried again after 0.5 s, 1 s, 2 s, ... up to 30 s (with jitter)."""
_log = logging.getLogger("hourglass_operator")

Refresh = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""(namespace, indices): write the namespace's rollout from the indices as they are now."""
Settled = Callable[[str, Mapping[str, Any]], bool]
"""(namespace, indices): whether no pod is pending any more (the rollout's last write)."""


def pods_in(indices: Mapping[str, Any], namespace: str) -> list[PodReport]:
    """The agent pods of ``namespace`` from kopf's pod index."""
    index = indices[POD_INDEX]
    return list(index[namespace]) if namespace in index else []


def index_entry(namespace: str, pod: Mapping[str, Any]) -> dict[str, PodReport]:
    """The pod's entry in the index: its report, or nothing once it no longer counts.

    An empty mapping makes kopf drop the pod's earlier entry; None would keep it, and an
    evicted or terminating pod would count with its last report for ever.
    """
    report = PodReport.from_pod(pod)
    return {namespace: report} if report is not None else {}


def register(
    registry: kopf.OperatorRegistry, refresh: Refresh, settled: Settled | None = None
) -> None:
    """The pod index, the pod event handler, and the server-side label selector.

    With ``settled``, progress writes are held to one per `PROGRESS_INTERVAL_S`.
    """
    debouncer = _Debouncer(refresh, settled)

    @kopf.on.startup(registry=registry)
    def rollout_pod_selector(**kwargs: Any) -> None:
        # kopf's `labels=` filters on the client; this makes the watch itself selective.
        kwargs["settings"].watching.label_selectors["v1", "pods"] = SELECTOR

    @kopf.index(
        "v1", "pods", labels={CONFIG_LABEL: CONFIGMAP_NAME}, id=POD_INDEX, registry=registry
    )
    def hourglass_pods(**kwargs: Any) -> dict[str, PodReport]:
        return index_entry(kwargs["namespace"], kwargs["body"])

    @kopf.on.event("v1", "pods", labels={CONFIG_LABEL: CONFIGMAP_NAME}, registry=registry)
    async def agent_pod_changed(**kwargs: Any) -> None:
        debouncer.poke(kwargs["namespace"], kwargs)


def retry_delay(failures: int) -> float:
    """The wait before try ``failures + 1``: doubling from `RETRY_FIRST_S` to `RETRY_MAX_S`,
    with up to 20 % jitter so that many namespaces do not retry in step."""
    base = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(failures - 1, 16))
    return float(base * (1 - 0.2 * random.random()))  # noqa: S311 - jitter, not security


class _Debouncer:
    """One pending refresh per namespace; reports arriving meanwhile join it.

    With ``settled``, a refresh within ``interval`` of the namespace's previous one waits
    for the rest of the interval, unless the rollout settles meanwhile (checked every
    ``debounce``, not on each report: that check reads every pod of the namespace).
    """

    def __init__(
        self,
        refresh: Refresh,
        settled: Settled | None = None,
        *,
        debounce: float = DEBOUNCE_S,
        interval: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self._refresh = refresh
        self._settled = settled
        self._debounce = debounce
        self._interval = interval
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._indices: dict[str, Mapping[str, Any]] = {}
        self._failures: dict[str, int] = {}
        self._last: dict[str, float] = {}
        """The event loop's time of each namespace's latest refresh."""

    def poke(self, namespace: str, indices: Mapping[str, Any], delay: float | None = None) -> None:
        self._indices[namespace] = indices
        if namespace not in self._pending:
            wait = self._debounce if delay is None else delay
            self._pending[namespace] = asyncio.create_task(self._run(namespace, wait))

    async def _hold(self, namespace: str) -> None:
        """Wait out the progress interval, unless no pod is pending any more."""
        last = self._last.get(namespace)
        if self._settled is None or last is None:
            return
        loop = asyncio.get_running_loop()
        while (left := last + self._interval - loop.time()) > 0:
            if self._settled(namespace, self._indices[namespace]):
                return
            await asyncio.sleep(min(max(self._debounce, 0.01), left))

    async def _run(self, namespace: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._hold(namespace)
        del self._pending[namespace]
        self._last[namespace] = asyncio.get_running_loop().time()
        try:
            await self._refresh(namespace, self._indices[namespace])
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures = self._failures[namespace] = self._failures.get(namespace, 0) + 1
            delay = retry_delay(failures)
            _log.warning(
                "rollout status of %s not written (try %d, again in %.1fs): %s",
                namespace,
                failures,
                delay,
                error or type(error).__name__,
            )
            self.poke(namespace, self._indices[namespace], delay)
        else:
            if self._failures.pop(namespace, None):
                _log.info("rollout status of %s written again", namespace)
