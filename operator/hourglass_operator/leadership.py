"""Whether this replica leads: kopf's peering rule, read back for the operator's own loops.

kopf pauses a replica's watches while a live peer of higher or equal priority shares its
peering object. The resync and tuning loops run beside kopf and do not see that pause;
reconciling from a paused replica's indices, frozen when it paused, wrote a stale config
every round and the leader wrote it back: a ConfigMap flapping for as long as both ran.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from hourglass_operator.ha import PEERING_GROUP

ANSWER_TTL_S = 5.0
"""One peering read serves every namespace of a resync round (cluster-wide: one object)."""


class _Reader(Protocol):
    async def get(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None: ...


def leads(
    peers: Mapping[str, Mapping[str, Any]], identity: str, priority: int, now: datetime
) -> bool:
    """kopf's rule (``kopf._core.engines.peering``): paused while any other live peer has a
    priority at least ours; equal priorities pause everyone."""
    for peer, info in peers.items():
        if peer == identity or _is_dead(info, now):
            continue
        if int(info.get("priority", 0)) >= priority:
            return False
    return True


def _is_dead(info: Mapping[str, Any], now: datetime) -> bool:
    seen = info.get("lastseen")
    if not isinstance(seen, str):
        return False  # kopf reads a peer without lastseen as seen now
    lastseen = datetime.fromisoformat(seen)
    if lastseen.tzinfo is None:
        lastseen = lastseen.replace(tzinfo=UTC)
    return lastseen + timedelta(seconds=int(info.get("lifetime", 60))) <= now


@dataclass(frozen=True)
class Peering:
    """This replica in kopf's peering: the object's name, its id there and its priority.

    ``identity`` None (kopf chose it) or ``standalone``: the replica always leads, as
    before this check existed.
    """

    name: str
    identity: str | None
    priority: int
    clusterwide: bool
    standalone: bool


class Leadership:
    def __init__(self, kube: _Reader, peering: Peering) -> None:
        self._kube = kube
        self._peering = peering
        self._answers: dict[str, tuple[float, bool]] = {}

    async def leads_in(self, namespace: str) -> bool:
        """True when this replica's kopf is not paused for ``namespace``; a missing peering
        object means kopf runs this replica alone."""
        peering = self._peering
        if peering.standalone or peering.identity is None:
            return True
        path = (
            f"{PEERING_GROUP}/clusterkopfpeerings"
            if peering.clusterwide
            else f"{PEERING_GROUP}/namespaces/{namespace}/kopfpeerings"
        )
        cached = self._answers.get(path)
        if cached is not None and time.monotonic() - cached[0] < ANSWER_TTL_S:
            return cached[1]
        found = await self._kube.get(path, query={"fieldSelector": f"metadata.name={peering.name}"})
        items = (found or {}).get("items") or []
        answer = not items or leads(
            items[0].get("status") or {}, peering.identity, peering.priority, datetime.now(UTC)
        )
        self._answers[path] = (time.monotonic(), answer)
        return answer
