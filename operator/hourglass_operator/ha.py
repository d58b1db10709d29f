"""Refuse to run several replicas without kopf's peering object.

Without it kopf cannot tell replicas apart and every one of them reconciles: two writers
per namespace, racing. The Deployment says how many replicas it runs
(``HOURGLASS_REPLICAS``); above one, the peering object must exist before we start,
unless ``--standalone`` says on purpose that this replica acts alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from hourglass_operator.errors import OperatorConfigError
from hourglass_operator.k8s import Kube

PEERING_GROUP = "/apis/kopf.dev/v1"


def peering_paths(namespaces: Sequence[str], clusterwide: bool) -> list[str]:
    """Lists, not gets: kopf's RBAC grants list/watch/patch on peerings, not get."""
    if clusterwide:
        return [f"{PEERING_GROUP}/clusterkopfpeerings"]
    return [f"{PEERING_GROUP}/namespaces/{ns}/kopfpeerings" for ns in namespaces]


async def require_peering(
    kube: Kube,
    *,
    name: str,
    namespaces: Sequence[str],
    clusterwide: bool,
    replicas: int,
    standalone: bool,
) -> None:
    """Raise OperatorConfigError naming the missing peering object(s), if it matters."""
    if replicas <= 1 or standalone:
        return
    globbed = [ns for ns in namespaces if any(c in ns for c in "*?[")]
    paths = peering_paths([ns for ns in namespaces if ns not in globbed], clusterwide)
    query = {"fieldSelector": f"metadata.name={name}"}
    missing = [
        path for path in paths if not ((await kube.get(path, query=query)) or {}).get("items")
    ]
    if missing:
        kind = "ClusterKopfPeering" if clusterwide else "KopfPeering"
        raise OperatorConfigError(
            "HOURGLASS_REPLICAS",
            f"{replicas} replicas need the {kind} {name!r} (missing: {', '.join(missing)}); "
            "apply manifests/ (or the chart) to create it, or pass --standalone for one replica",
        )
