"""kopf's peering rule as the operator's own loops read it (`hourglass_operator.leadership`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hourglass_operator.leadership import Leadership, Peering, leads

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _peer(priority: int, seen_ago_s: float = 1, lifetime: int = 60) -> dict[str, Any]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago_s)).isoformat(),
    }


def test_the_highest_live_priority_leads_and_the_other_pauses() -> None:
    peers = {"a": _peer(10), "b": _peer(20)}
    assert leads(peers, "b", 20, NOW)
    assert not leads(peers, "a", 10, NOW)


def test_equal_priorities_pause_everyone_as_kopf_does() -> None:
    peers = {"a": _peer(10), "b": _peer(10)}
    assert not leads(peers, "a", 10, NOW)
    assert not leads(peers, "b", 10, NOW)


def test_a_dead_peer_no_longer_outranks() -> None:
    peers = {"a": _peer(10), "b": _peer(20, seen_ago_s=61, lifetime=60)}
    assert leads(peers, "a", 10, NOW)


def test_alone_in_the_peering_object_or_not_yet_in_it_leads() -> None:
    assert leads({"a": _peer(10)}, "a", 10, NOW)
    assert leads({}, "a", 10, NOW)


class _Peerings:
    """Stands in for the API's list of peering objects (kopf's own object, as listed)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.paths: list[str] = []

    async def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        self.paths.append(path)
        return {"items": self.items}


def test_a_missing_peering_object_means_kopf_runs_alone() -> None:
    kube = _Peerings([])
    leadership = Leadership(kube, Peering("hourglass", "a", 10, True, False))
    assert asyncio.run(leadership.leads_in("ns"))


def test_one_cluster_wide_read_answers_a_whole_round() -> None:
    now = datetime.now(UTC).isoformat()
    kube = _Peerings(
        [
            {
                "status": {
                    "a": {"priority": 10, "lastseen": now},
                    "b": {"priority": 20, "lastseen": now},
                }
            }
        ]
    )
    leadership = Leadership(kube, Peering("hourglass", "a", 10, True, False))

    async def round_() -> list[bool]:
        return [await leadership.leads_in(f"ns-{i}") for i in range(50)]

    assert asyncio.run(round_()) == [False] * 50
    assert kube.paths == ["/apis/kopf.dev/v1/clusterkopfpeerings"]


def test_namespaced_replicas_read_each_namespace_peering() -> None:
    kube = _Peerings([])
    leadership = Leadership(kube, Peering("hourglass", "a", 10, False, False))
    asyncio.run(leadership.leads_in("team-a"))
    assert kube.paths == ["/apis/kopf.dev/v1/namespaces/team-a/kopfpeerings"]


def test_standalone_or_an_unknown_identity_always_leads_without_a_read() -> None:
    kube = _Peerings([{"status": {"b": {"priority": 99}}}])
    for peering in (Peering("p", "a", 1, True, True), Peering("p", None, 1, True, False)):
        assert asyncio.run(Leadership(kube, peering).leads_in("ns"))
    assert kube.paths == []
