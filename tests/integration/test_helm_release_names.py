"""Two releases of the chart never render the same cluster-scoped object (issue 21, item 4).

Helm refuses to install an object that another release owns, and a cluster-scoped object
is shared by every namespace. The chart names them ``<release namespace>.<fullname>...``;
a namespace has no dot, so two releases in two namespaces differ whatever their names.
The examples are the collisions of the earlier schemes: ``<fullname>`` (one release name
in two namespaces) and ``<fullname>-<namespace>`` (release ``a`` in ``b-c`` against release
``a-hourglass-b`` in ``c``). The real Helm engine renders every example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.fixtures.k8s_schemas import CHART, load_all

CLUSTER_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
VALUES: dict[str, Any] = {
    "operator": {"webhook": {"enabled": True}},
    "agents": {"rbac": {"create": True}, "admissionPolicy": {"create": True}},
}
_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?\Z")
_NAME = st.one_of(_LABEL, _LABEL.map(lambda n: f"{n}-hourglass"), st.just("hourglass"))


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _cluster_scoped(chart: helm.Chart, release: str, namespace: str) -> set[tuple[str, str]]:
    rendered = chart.render(VALUES, name=release, namespace=namespace, is_install=True)
    docs = [d for path, text in rendered.items() if path.endswith(".yaml") for d in load_all(text)]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in CLUSTER_KINDS}
    assert {kind for kind, _ in names} >= {"ClusterRole", "ValidatingWebhookConfiguration"}
    return names


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(first=st.tuples(_NAME, _LABEL), second=st.tuples(_NAME, _LABEL))
@example(first=("hourglass", "agents-a"), second=("hourglass", "agents-b"))
@example(first=("a", "b-c"), second=("a-hourglass-b", "c"))
def test_two_releases_share_no_cluster_scoped_name(
    chart: helm.Chart, first: tuple[str, str], second: tuple[str, str]
) -> None:
    assume(first[1] != second[1])  # in one namespace, release names are Helm's to keep apart
    shared = _cluster_scoped(chart, *first) & _cluster_scoped(chart, *second)
    assert not shared, (first, second, sorted(shared))
