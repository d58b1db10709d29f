"""The operator's RBAC: allows every API call the operator made in its e2e run, and
nothing beyond the set it needs.

The RBAC comes from every place we ship it: manifests/rbac (cluster-wide and
namespaced) and the chart rendered for each watch scope. Rules are evaluated the way
the API server's RBAC authorizer does (ClusterRole via ClusterRoleBinding applies
everywhere, Role via RoleBinding only in its namespace; `resource/subresource` must
be named explicitly).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import helm_python as helm
import pytest

from tests.fixtures.k8s_schemas import CHART, MANIFESTS, load_all
from tests.fixtures.operator_process import API_CALLS_FILE

RECORDING = API_CALLS_FILE
"""Written by the operator's e2e tests (HOURGLASS_RECORD_API_CALLS=1, see check_api_calls)."""

WATCHED = "agents-prod"
OPERATOR_NS = "hourglass-system"
CLUSTER_SCOPED = {
    ("", "namespaces"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("kopf.dev", "clusterkopfpeerings"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
}

CLUSTER, NAMESPACED = "cluster-wide", "namespaced"
BOTH = frozenset({CLUSTER, NAMESPACED})
WEBHOOK = "webhook"
"""Not a watch mode: the chart's RBAC with operator.webhook.enabled (either mode)."""


def _need(
    group: str,
    resources: Iterable[str],
    verbs: Iterable[str],
    why: str,
    modes: frozenset[str] = BOTH,
) -> dict[tuple[str, str, str], tuple[frozenset[str], str]]:
    return {(group, r, v): (modes, why) for r in resources for v in verbs}


# (apiGroup, resource, verb) -> (operator modes that need it, why). This is the whole
# allowance: the shipped RBAC must grant exactly this, and each entry is either seen in
# the e2e recording or listed in NOT_RECORDED with the reason.
REQUIRED: dict[tuple[str, str, str], tuple[frozenset[str], str]] = {
    **_need(
        "hourglass.dev",
        ("timeoutprofiles", "sessionpolicies"),
        ("list", "watch", "patch"),
        "kopf watches the specs and keeps its progress in their annotations",
    ),
    **_need(
        "hourglass.dev",
        ("timeoutprofiles/status", "sessionpolicies/status"),
        ("patch",),
        "status.conditions, configHash, lastCleanup",
    ),
    **_need(
        "",
        ("configmaps",),
        ("get", "list", "watch", "create", "patch"),
        "hourglass-config: written when the hash changes, repaired when edited by hand",
    ),
    **_need(
        "",
        ("configmaps",),
        ("delete",),
        "OwnerReferencesPermissionEnforcement: changing hourglass-config's owners",
    ),
    **_need(
        "hourglass.dev",
        ("timeoutprofiles/finalizers", "sessionpolicies/finalizers"),
        ("update",),
        "OwnerReferencesPermissionEnforcement: blockOwnerDeletion on what they own",
    ),
    **_need("batch", ("cronjobs",), ("get", "create", "patch"), "hourglass-cleanup per policy"),
    **_need("batch", ("cronjobs",), ("list",), "the resync lists hourglass-cleanup (issue 21)"),
    **_need("batch", ("jobs",), ("list", "watch"), "finished cleanup runs -> lastCleanup"),
    **_need(
        "",
        ("pods",),
        ("list", "watch"),
        "agent pods (labelSelector hourglass.dev/config) -> status.rollout and Applied; "
        "the termination message of a cleanup pod",
    ),
    **_need("", ("events",), ("create",), "Normal and Warning Events (kopf posts core v1)"),
    **_need(
        "",
        ("namespaces",),
        ("list", "watch"),
        "kopf resolves --namespace against the namespaces that exist",
        frozenset({NAMESPACED}),
    ),
    **_need(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("list", "watch"),
        "kopf's resource scanning",
    ),
    **_need(
        "kopf.dev",
        ("clusterkopfpeerings",),
        ("list", "watch", "patch"),
        "peering: one replica reconciles",
        frozenset({CLUSTER}),
    ),
    **_need(
        "kopf.dev",
        ("kopfpeerings",),
        ("list", "watch", "patch"),
        "peering per watched namespace",
        frozenset({NAMESPACED}),
    ),
    **_need(
        "admissionregistration.k8s.io",
        ("validatingwebhookconfigurations",),
        ("patch",),
        "the operator fills in the chart's empty webhook configuration once it serves",
        frozenset({WEBHOOK}),
    ),
}
NAMED: dict[tuple[str, str, str], str] = {
    **{("", "configmaps", verb): "hourglass-config" for verb in ("get", "list", "watch")},
    ("", "configmaps", "patch"): "hourglass-config",
    ("", "configmaps", "delete"): "hourglass-config",
    ("batch", "cronjobs", "get"): "hourglass-cleanup",
    ("batch", "cronjobs", "list"): "hourglass-cleanup",
    ("batch", "cronjobs", "patch"): "hourglass-cleanup",
    # The chart's release `hourglass` in WATCHED: cluster-scoped names carry the namespace.
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"): (
        f"{WATCHED}.hourglass"
    ),
}
"""Grants limited by ``resourceNames`` to the one object the operator needs them on: every
get/list/watch/patch/update/delete of the objects it owns (issue 27; list and watch of
hourglass-config carry ``fieldSelector=metadata.name=...``, which RBAC matches by name).
``create`` cannot be named: the operator's admission policy limits it."""
_CHECKED_ONLY = "a permission kube-apiserver checks (OwnerReferencesPermissionEnforcement), "
NOT_RECORDED: dict[tuple[str, str, str], str] = {
    ("hourglass.dev", "timeoutprofiles/finalizers", "update"): _CHECKED_ONLY + "no request",
    ("hourglass.dev", "sessionpolicies/finalizers", "update"): _CHECKED_ONLY + "no request",
    ("", "configmaps", "delete"): _CHECKED_ONLY + "no request: the garbage collector deletes",
}
"""(apiGroup, resource, verb) granted although the e2e runs never call it, and why."""
NEVER = {("", "secrets"), ("", "serviceaccounts/token"), ("", "pods/exec")}
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None = None

    @property
    def cluster_scoped(self) -> bool:
        return (self.group, self.resource.split("/")[0]) in CLUSTER_SCOPED


@dataclass(frozen=True)
class Grant:
    """One rule as bound: ``namespace`` None means everywhere (ClusterRoleBinding)."""

    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    namespace: str | None
    names: frozenset[str]

    def allows(self, call: Call) -> bool:
        if self.namespace is not None and (call.cluster_scoped or call.namespace != self.namespace):
            return False
        return (
            (call.group in self.groups or "*" in self.groups)
            and (call.resource in self.resources or "*" in self.resources)
            and (call.verb in self.verbs or "*" in self.verbs)
            and (not self.names or call.name in self.names)
        )


def grants(docs: Iterable[dict[str, Any]], subject: tuple[str, str]) -> list[Grant]:
    """The rules bound to the ServiceAccount ``subject`` (namespace, name)."""
    docs = list(docs)
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    out = []
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        sa = {"kind": "ServiceAccount", "namespace": subject[0], "name": subject[1]}
        if sa not in binding["subjects"]:
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_ns = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        for rule in role.get("rules", []):
            out.append(
                Grant(
                    frozenset(rule.get("apiGroups", [])),
                    frozenset(rule.get("resources", [])),
                    frozenset(rule.get("verbs", [])),
                    scope,
                    frozenset(rule.get("resourceNames", [])),
                )
            )
    return out


def _manifest_docs(*folders: str) -> list[dict[str, Any]]:
    return [
        doc
        for folder in folders
        for path in sorted((MANIFESTS / folder).glob("*.yaml"))
        for doc in load_all(path.read_text(encoding="utf-8"))
    ]


def _chart_docs(scope: str, webhook: bool = False) -> list[dict[str, Any]]:
    values: dict[str, Any] = {"operator": {"watch": {"scope": scope}}}
    if webhook:
        values["operator"]["webhook"] = {"enabled": True}
    if scope == "namespaces":
        values["operator"]["watch"]["namespaces"] = [WATCHED, "agents-staging"]
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="hourglass", namespace=WATCHED)
    return [d for path, text in rendered.items() if path.endswith(".yaml") for d in load_all(text)]


def _variants() -> Iterator[tuple[str, list[Grant]]]:
    subject = (OPERATOR_NS, "hourglass-operator")
    yield "manifests cluster-wide", grants(_manifest_docs("rbac/cluster-wide"), subject)
    yield "manifests namespaced", grants(_manifest_docs("rbac/namespaced"), subject)
    for scope in ("namespace", "namespaces", "cluster"):
        yield f"chart {scope}", grants(_chart_docs(scope), (WATCHED, "hourglass"))
    for scope in ("namespace", "cluster"):
        docs = _chart_docs(scope, webhook=True)
        yield f"chart {scope} {WEBHOOK}", grants(docs, (WATCHED, "hourglass"))


VARIANTS = dict(_variants())


def _mode(variant: str) -> str:
    return (
        CLUSTER
        if variant.removesuffix(f" {WEBHOOK}").endswith(("-wide", "cluster"))
        else NAMESPACED
    )


def _modes(variant: str) -> frozenset[str]:
    """The modes whose REQUIRED entries ``variant`` must grant (and may grant)."""
    return frozenset({_mode(variant)} | ({WEBHOOK} if variant.endswith(WEBHOOK) else set()))


def _allowed(variant: list[Grant], call: Call) -> bool:
    return any(g.allows(call) for g in variant)


def _as_call(group: str, resource: str, verb: str) -> Call:
    cluster = (group, resource.split("/")[0]) in CLUSTER_SCOPED
    return Call(
        verb, group, resource, None if cluster else WATCHED, NAMED.get((group, resource, verb))
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_grants_are_within_the_required_set(variant: str) -> None:
    granted = set()
    for grant in VARIANTS[variant]:
        # Named grants only where NAMED says, limited to exactly that object.
        for verb in grant.verbs if grant.names else ():
            for group in grant.groups:
                for resource in grant.resources:
                    assert grant.names == {NAMED.get((group, resource, verb))}, grant
        assert "*" not in grant.groups | grant.resources | grant.verbs, grant
        assert not grant.verbs & DANGEROUS_VERBS, grant
        for group in grant.groups:
            for resource in grant.resources:
                assert (group, resource) not in NEVER, f"{variant} grants {resource}"
                granted |= {(group, resource, verb) for verb in grant.verbs}
    needed = {key for key, (modes, _) in REQUIRED.items() if modes & _modes(variant)}
    beyond = granted - needed
    assert not beyond, f"{variant} grants more than the operator needs: {sorted(beyond)}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_named_verbs_are_never_granted_for_every_object(variant: str) -> None:
    """Issue 27, finding 2: get/patch on every ConfigMap and CronJob made a leaked operator
    token able to patch kube-system/aws-auth-like objects."""
    for group, resource, verb in NAMED:
        for namespace in (WATCHED, "kube-system"):
            other = Call(verb, group, resource, namespace, "aws-auth")
            if other.cluster_scoped:
                other = Call(verb, group, resource, None, "some-other-release")
            assert not _allowed(VARIANTS[variant], other), f"{variant} allows {other}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_required_permission_is_granted(variant: str) -> None:
    for (group, resource, verb), (modes, _) in REQUIRED.items():
        if not modes & _modes(variant):
            continue
        call = _as_call(group, resource, verb)
        assert _allowed(VARIANTS[variant], call), f"{variant} does not allow {call}"


@pytest.mark.parametrize("variant", ["manifests namespaced", "chart namespace", "chart namespaces"])
def test_namespaced_variants_grant_nothing_outside_watched_namespaces(variant: str) -> None:
    elsewhere = Call("get", "", "configmaps", "kube-system", "hourglass-config")
    assert not _allowed(VARIANTS[variant], elsewhere)
    assert _allowed(VARIANTS[variant], Call("get", "", "configmaps", WATCHED, "hourglass-config"))


def test_no_variant_can_read_secrets() -> None:
    for variant, rules in VARIANTS.items():
        for verb in ("get", "list", "watch"):
            assert not _allowed(rules, Call(verb, "", "secrets", WATCHED)), variant


def _recorded_calls() -> list[Call]:
    data = json.loads(RECORDING.read_text(encoding="utf-8"))
    entries = data.get("calls", data) if isinstance(data, dict) else data
    calls = []
    for entry in entries:
        group = entry.get("apiGroup", entry.get("group", ""))
        resource = entry["resource"]
        namespaced = entry.get("scope", "namespace") == "namespace"
        # Named grants: the operator calls only that object (api_calls.json has no names).
        name = NAMED.get((group, resource, entry["verb"]))
        calls.append(Call(entry["verb"], group, resource, WATCHED if namespaced else None, name))
    return calls


def _for_variant(call: Call, variant: str) -> Call | None:
    """The call as the operator makes it in ``variant``'s mode (None: not made in that mode).

    A cluster-wide list/watch of a namespaced kind is made per namespace in namespaced
    mode; peering uses KopfPeering there and ClusterKopfPeering cluster-wide; namespaces
    are only listed in namespaced mode.
    """
    namespaced = _mode(variant) == NAMESPACED
    needs = REQUIRED.get((call.group, call.resource, call.verb))
    if needs is not None and not needs[0] & _modes(variant):
        return None  # e.g. the webhook's registration, where the webhook is off
    if call.group == "kopf.dev":
        return (
            Call(call.verb, call.group, "kopfpeerings", WATCHED)
            if namespaced
            else Call(call.verb, call.group, "clusterkopfpeerings", None)
        )
    if (call.group, call.resource) == ("", "namespaces"):
        return call if namespaced else None
    if call.namespace is None and not call.cluster_scoped and namespaced:
        return Call(call.verb, call.group, call.resource, WATCHED, call.name)
    return call


needs_recording = pytest.mark.skipif(
    not RECORDING.exists(),
    reason=f"the operator's e2e run has not recorded its API calls yet ({RECORDING.name})",
)


@needs_recording
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rbac_allows_every_recorded_operator_call(variant: str) -> None:
    calls = _recorded_calls()
    assert calls, "the recording is empty"
    made = {_for_variant(c, variant) for c in calls}
    denied = sorted(
        {c for c in made if c is not None and not _allowed(VARIANTS[variant], c)}, key=str
    )
    assert not denied, f"{variant} would deny: {denied}"


@needs_recording
def test_every_required_permission_was_used_or_is_explained() -> None:
    """Nothing is granted "just in case": each grant was seen in the e2e run, or explained."""
    seen = {(c.group, c.resource, c.verb) for c in _recorded_calls()}
    unused = {key for key in REQUIRED if key not in seen and key not in NOT_RECORDED}
    assert not unused, f"granted but never used in the e2e run: {sorted(unused)}"


@needs_recording
def test_every_recorded_call_is_in_the_required_set() -> None:
    unexpected = {
        (c.group, c.resource, c.verb)
        for c in _recorded_calls()
        if (c.group, c.resource, c.verb) not in REQUIRED
    }
    assert not unexpected, f"the operator made calls nobody accounted for: {sorted(unexpected)}"


def test_authorizer_model_denies_what_it_should() -> None:
    """The little RBAC evaluator above is itself checked on known cases."""
    role = {
        "kind": "Role",
        "metadata": {"name": "r", "namespace": "a"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    binding = {
        "kind": "RoleBinding",
        "metadata": {"name": "b", "namespace": "a"},
        "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "ServiceAccount", "namespace": "ops", "name": "sa"}],
    }
    rules = grants([role, binding], ("ops", "sa"))
    assert _allowed(rules, Call("get", "", "configmaps", "a"))
    assert not _allowed(rules, Call("get", "", "configmaps", "b"))
    assert not _allowed(rules, Call("patch", "", "configmaps", "a"))
    assert not _allowed(rules, Call("get", "", "configmaps/status", "a"))
    assert grants([role, binding], ("ops", "other")) == []
