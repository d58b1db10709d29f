"""kopf handlers for the rollout: watch the agent pods, refresh the statuses, debounced.

The pods are selected on the server (``labelSelector``), so the operator never receives
any other pod. They are kept in a kopf index: kopf starts no reconcile before every
index has had its initial listing, so a restarted operator never reports a rollout
from half a list. Many pods reporting at once (a rollout) end in one status write per
resource per ``DEBOUNCE_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from agent_lib.config.bundle import CONFIGMAP_NAME
from hourglass_operator.errors import ApiRequestError
from hourglass_operator.rollout import CONFIG_LABEL, SELECTOR, PodReport

POD_INDEX = "hourglass_pods"
DEBOUNCE_S = 0.2
"""Pod reports within this window are written together."""
RETRY_S = 5.0
_log = logging.getLogger("hourglass_operator")

Refresh = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""(namespace, indices): write the namespace's rollout from the indices as they are now."""


def pods_in(indices: Mapping[str, Any], namespace: str) -> list[PodReport]:
    """The agent pods of ``namespace`` from kopf's pod index."""
    index = indices[POD_INDEX]
    return list(index[namespace]) if namespace in index else []


def register(registry: kopf.OperatorRegistry, refresh: Refresh) -> None:
    """The pod index, the pod event handler, and the server-side label selector."""
    debouncer = _Debouncer(refresh)

    @kopf.on.startup(registry=registry)
    def rollout_pod_selector(**kwargs: Any) -> None:
        # kopf's `labels=` filters on the client; this makes the watch itself selective.
        kwargs["settings"].watching.label_selectors["v1", "pods"] = SELECTOR

    @kopf.index(
        "v1", "pods", labels={CONFIG_LABEL: CONFIGMAP_NAME}, id=POD_INDEX, registry=registry
    )
    def hourglass_pods(**kwargs: Any) -> dict[str, PodReport] | None:
        report = PodReport.from_pod(kwargs["body"])
        return {kwargs["namespace"]: report} if report is not None else None

    @kopf.on.event("v1", "pods", labels={CONFIG_LABEL: CONFIGMAP_NAME}, registry=registry)
    async def agent_pod_changed(**kwargs: Any) -> None:
        debouncer.poke(kwargs["namespace"], kwargs)


class _Debouncer:
    """One pending refresh per namespace; reports arriving meanwhile join it."""

    def __init__(self, refresh: Refresh) -> None:
        self._refresh = refresh
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._indices: dict[str, Mapping[str, Any]] = {}

    def poke(self, namespace: str, indices: Mapping[str, Any], delay: float = DEBOUNCE_S) -> None:
        self._indices[namespace] = indices
        if namespace not in self._pending:
            self._pending[namespace] = asyncio.create_task(self._run(namespace, delay))

    async def _run(self, namespace: str, delay: float) -> None:
        await asyncio.sleep(delay)
        del self._pending[namespace]
        try:
            await self._refresh(namespace, self._indices[namespace])
        except ApiRequestError as error:
            _log.warning("rollout status of %s not written (%s); retrying", namespace, error)
            self.poke(namespace, self._indices[namespace], RETRY_S)
        except Exception:
            _log.exception("rollout status of %s failed", namespace)
