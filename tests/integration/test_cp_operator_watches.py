"""The operator watches only what it owns (issue 15, item 4), read from the real audit log.

Its ConfigMap watch and list carry a field selector (hourglass-config by name: an edit
that strips our labels is still seen), its Job watch and list a label selector, and the
initial lists are paged (``limit``). 10,000 unrelated ConfigMaps then never reach it:
`python -m bench` measures its memory with and without them
(``operator_rss_ratio_10k_foreign_configmaps``).
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.fixtures.controlplane import RealCluster
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _configmap, _profile, _yaml

pytestmark = pytest.mark.timeout(120)


def _requests(cluster: RealCluster, since: int, resource: str) -> list[tuple[str, dict[str, str]]]:
    found = []
    for event in cluster.audited(since=since):
        ref = event.get("objectRef") or {}
        if ref.get("resource") == resource and event["verb"] in ("list", "watch"):
            query = urllib.parse.urlsplit(event["requestURI"]).query
            found.append((event["verb"], dict(urllib.parse.parse_qsl(query))))
    return found


def test_configmap_and_job_watches_are_filtered_by_the_server_and_lists_paged(
    real_cluster: RealCluster,
) -> None:
    mark = real_cluster.audit_mark()
    operator = OperatorProcess(real_cluster, name="watches").start(timeout=60)
    try:
        ns = real_cluster.namespace()
        real_cluster.apply(_yaml(_profile(ns, "base", {"default": True})))
        real_cluster.wait_for(lambda: _configmap(real_cluster, ns), what="the ConfigMap")
    finally:
        operator.stop()
    # A watch is audited when it ends: the operator's stop ends them.
    for resource in ("configmaps", "jobs"):
        real_cluster.wait_for(
            lambda r=resource: (
                {v for v, _ in _requests(real_cluster, mark, r)} == {"list", "watch"}
            ),
            what=f"the {resource} list and watch in the audit log",
        )
    configmaps = _requests(real_cluster, mark, "configmaps")
    jobs = _requests(real_cluster, mark, "jobs")
    assert {verb for verb, _ in configmaps} == {"list", "watch"}
    for verb, query in configmaps:
        assert query.get("fieldSelector") == "metadata.name=hourglass-config", (verb, query)
    for verb, query in jobs:
        assert query.get("labelSelector") == "hourglass.dev/policy", (verb, query)
    for verb, query in [*configmaps, *jobs]:
        if verb == "list":
            assert int(query.get("limit", "0")) > 0, f"an unpaged list: {query}"
