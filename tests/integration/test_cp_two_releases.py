"""Two chart releases on one control plane, each owning its own namespaces (issue 21, item 4).

One operator release per group of environment namespaces is the documented way to split
a very large cluster (docs/architecture.md, "Splitting a very large cluster"). Both releases
here are named ``hourglass`` (Helm allows one name in two namespaces): release A in
``a1`` watches ``a1`` and ``a2`` (``watch.scope: namespaces``), release B in ``b1`` watches
its own namespace, without the session-store opt-in. The real Helm engine renders them,
real kubectl applies them, and each operator runs locally with its release's arguments,
environment, ServiceAccount token, TLS Secret and webhook.

Proven on the real kube-apiserver:
- Helm's ownership check passes for the second install: no object of B exists already
  under A's ownership (cluster-scoped names carry the release namespace);
- a third release listing one of A's namespaces is refused by that check (A's peering
  and agents' objects there): a namespace belongs to one release;
- each operator lists, watches and writes only its own namespaces (ConfigMaps, statuses),
  and once settled nothing is rewritten (no fight);
- the agents of every owned namespace get their RBAC from the release (A's second
  namespace included), for their namespace's ConfigMap only;
- kopf's peering objects are per namespace, and each names only its own release's operator;
- each release's webhook and admission-policy bindings judge only its namespaces: a bad
  profile in B's namespace is refused by B, B's namespaces accept resources while A's
  operator is down (A's webhook fails closed on A's namespaces only), and A's session-store
  opt-in does not reach B's namespaces.

On the chart before this test, the two releases rendered the same ClusterRole, webhook
configuration and policy names (so Helm refused the second install), A's session-store
binding refused B's SessionPolicy, and the agents of a2 had no ServiceAccount.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.agent_pods import AGENT_SA
from tests.fixtures.controlplane import ApiError, RealCluster
from tests.fixtures.operator_process import OperatorProcess, free_port
from tests.integration._helm_release import UNSERVED_KINDS, chart_crds, operator_env, render
from tests.integration._resources import _condition, _config, _policy, _profile, _yaml

pytestmark = pytest.mark.timeout(240)

RELEASE = "hourglass"
CONFIG = "hourglass-config"
HANDLED = "hourglass.dev/last-handled-configuration"
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
BINDINGS = "validatingadmissionpolicybindings"
PLAIN_STORE_BINDING = "hourglass-session-store"
OWNED = frozenset({"configmaps", "timeoutprofiles", "sessionpolicies", "cronjobs"})
"""What the operators write and could fight over (kopf's peering heartbeats are not that)."""
WRITES = frozenset({"create", "update", "patch", "delete"})
SETTLE_WINDOW_S = 5.0
"""How long the settled state is watched for a rewrite (a fight rewrites within a second)."""


@dataclass
class _Release:
    namespace: str
    watched: tuple[str, ...]
    values: dict[str, Any]
    workdir: Path
    name: str = RELEASE
    port: int = field(default_factory=free_port)
    docs: list[dict[str, Any]] = field(default_factory=list)
    operator: OperatorProcess | None = None

    @property
    def pod_id(self) -> str:
        return f"{self.name}-{self.namespace}-pod"

    @property
    def account(self) -> str:
        (deployment,) = self.of_kind("Deployment")
        return str(deployment["spec"]["template"]["spec"]["serviceAccountName"])

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"

    @property
    def manifest(self) -> Path:
        return self.workdir / f"release-{self.namespace}.yaml"

    def cluster_name(self, suffix: str) -> str:
        (role,) = self.of_kind("ClusterRole")
        return f"{role['metadata']['name']}{suffix}"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def cluster_scoped(self) -> set[tuple[str, str]]:
        return {(d["kind"], d["metadata"]["name"]) for d in self.docs if d["kind"] in CLUSTER_KINDS}


def _values(watched: tuple[str, ...], port: int) -> dict[str, Any]:
    scope = {"scope": "namespaces", "namespaces": list(watched)} if len(watched) > 1 else {}
    return {
        "operator": {
            "replicas": 2,  # peering is mandatory: the peering objects must exist and work
            "watch": {"scope": "namespace", **scope},
            "webhook": {"enabled": True, "url": f"https://127.0.0.1:{port}"},
        },
        "timeoutProfiles": {"base": {"default": True, "timeouts": {"request": "30s"}}},
        "agents": {"rbac": {"create": True}, "admissionPolicy": {"create": True}},
    }


def _prepare(release: _Release) -> None:
    """Render as ``helm install`` does, with the ownership annotations Helm adds."""
    release.values = _values(release.watched, release.port) | release.values
    rendered = render(release.values, release.namespace, release.name)
    release.docs = [
        d for docs in rendered.values() for d in docs if d["kind"] not in UNSERVED_KINDS
    ]
    for doc in release.docs:
        doc["metadata"].setdefault("annotations", {}).update(
            {
                "meta.helm.sh/release-name": release.name,
                "meta.helm.sh/release-namespace": release.namespace,
            }
        )
    release.manifest.write_text(yaml.safe_dump_all(release.docs), encoding="utf-8")


def _owned_elsewhere(cluster: RealCluster, release: _Release) -> list[str]:
    """Helm's check before an install: objects of the release that exist already and
    belong to another release ("invalid ownership metadata")."""
    found = json.loads(
        cluster.kubectl("get", "--ignore-not-found", "-o", "json", "-f", str(release.manifest))
        or '{"items": []}'
    )
    items = found.get("items", [found] if found.get("kind") else [])
    return [
        f"{item['kind']}/{item['metadata']['name']}"
        for item in items
        if (item["metadata"].get("annotations") or {}).get("meta.helm.sh/release-namespace")
        != release.namespace
    ]


def _start(cluster: RealCluster, release: _Release) -> OperatorProcess:
    (secret,) = [d for d in release.of_kind("Secret") if d["type"] == "kubernetes.io/tls"]
    files = {}
    for key, data in secret["data"].items():
        files[key] = release.workdir / f"{release.namespace}-{key}"
        files[key].write_bytes(base64.b64decode(data))
    (deployment,) = release.of_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = [a for a in container["args"] if a != "operator" and not a.startswith("--liveness")]
    operator = OperatorProcess(
        cluster,
        *args,
        name=f"release-{release.namespace}",
        service_account=f"{release.namespace}/{release.account}",
    )
    # POD_ID comes from the Downward API in the pod: kopf's identity among the peers.
    env = operator_env(container, files, release.port) | {"POD_ID": release.pod_id}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        operator.start(timeout=60)
    release.operator = operator
    return operator


def _settled(cluster: RealCluster, namespace: str, profiles: set[str]) -> bool:
    """Every profile rendered into the namespace's ConfigMap, its status observed, and
    kopf done with it."""
    if cluster.get("configmaps", namespace, "hourglass-config") is None:
        return False
    if set(_config(cluster, namespace)["profiles"]) != profiles:
        return False
    for name in profiles:
        profile = cluster.get("timeoutprofiles", namespace, name) or {}
        status = profile.get("status", {})
        if status.get("observedGeneration") != profile["metadata"]["generation"]:
            return False
        if _condition(profile, "Valid").get("status") != "True":
            return False
        # kopf's last patch of a handled object: the spec it handled, as an annotation.
        handled = profile["metadata"].get("annotations", {}).get(HANDLED)
        if handled is None or json.loads(handled).get("spec") != profile["spec"]:
            return False
    return True


def _peers(cluster: RealCluster, namespace: str) -> set[str]:
    """The operator ids in kopf's peering object of the namespace (its status keys)."""
    return set((cluster.get("kopfpeerings", namespace, "hourglass") or {}).get("status") or {})


def _versions(cluster: RealCluster, namespaces: list[str]) -> dict[str, str]:
    versions = {}
    for ns in namespaces:
        for plural in ("configmaps", "timeoutprofiles"):
            for item in cluster.list(plural, ns):
                versions[f"{plural}/{ns}/{item['metadata']['name']}"] = item["metadata"][
                    "resourceVersion"
                ]
    return versions


def _written_namespaces(cluster: RealCluster, release: _Release, since: int) -> set[str]:
    return {
        e["objectRef"]["namespace"]
        for e in cluster.audited(release.user, since=since)
        if e["verb"] in WRITES and (e.get("objectRef") or {}).get("namespace")
    }


def _watched_namespaces(cluster: RealCluster, release: _Release, since: int) -> set[str]:
    """Namespaces the release's operator lists (a watch starts with a list; the audit log
    has a watch only when it ends). Cluster-wide lists are the CRDs and the namespaces
    only, which carry nothing of another release."""
    lists = [e for e in cluster.audited(release.user, since=since) if e["verb"] == "list"]
    everywhere = {e["objectRef"]["resource"] for e in lists if not e["objectRef"].get("namespace")}
    assert everywhere <= {"customresourcedefinitions", "namespaces"}, everywhere
    return {e["objectRef"]["namespace"] for e in lists if e["objectRef"].get("namespace")}


def _webhook_namespaces(cluster: RealCluster, release: _Release) -> list[set[str]]:
    (configuration,) = release.of_kind("ValidatingWebhookConfiguration")
    live = cluster.get("validatingwebhookconfigurations", None, configuration["metadata"]["name"])
    return [
        set(hook["namespaceSelector"]["matchExpressions"][0]["values"])
        for hook in (live or {}).get("webhooks", [])
    ]


@contextlib.contextmanager
def _plain_install_policy_kept_out(cluster: RealCluster, namespaces: list[str]) -> Iterator[None]:
    """The session's cluster also holds the plain manifests' install (tests/fixtures), whose
    session-store binding covers every namespace by design; keep it out of ours meanwhile."""
    path = f"/apis/admissionregistration.k8s.io/v1/{BINDINGS}/{PLAIN_STORE_BINDING}"
    scope = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": namespaces}
    cluster.request(
        "PATCH",
        path,
        {"spec": {"matchResources": {"namespaceSelector": {"matchExpressions": [scope]}}}},
        content_type="application/merge-patch+json",
    )
    try:
        yield
    finally:
        cluster.request(
            "PATCH",
            path,
            [{"op": "remove", "path": "/spec/matchResources"}],
            content_type="application/json-patch+json",
        )


def _refused_by(cluster: RealCluster, doc: dict[str, Any]) -> set[str]:
    """The session-store bindings that refuse ``doc`` (a server-side dry run)."""
    output = _apply(cluster, doc, dry_run=True)
    if "created (server dry run)" in output:
        return set()
    assert 'does not carry the label hourglass.dev/session-store: "true"' in output, output
    return set(re.findall(r"with binding '([^']+)' denied", output))


def _apply(cluster: RealCluster, *docs: dict[str, Any], dry_run: bool = False) -> str:
    args = ["apply", "-f", "-", *(["--dry-run=server"] if dry_run else [])]
    return cluster.kubectl(*args, stdin=_yaml(*docs), check=False)


def test_two_releases_each_own_their_namespaces(real_cluster: RealCluster, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    a1, a2, b1 = (real_cluster.namespace(f"two-{n}-{tag}") for n in ("a1", "a2", "b1"))
    a = _Release(a1, (a1, a2), {}, tmp_path)
    b = _Release(b1, (b1,), {"rbac": {"sessionStoreOptIn": False}}, tmp_path)
    _prepare(a)
    _prepare(b)

    # A second install must not meet an object of the first: cluster-scoped names are
    # per release, namespaced ones live in the release's own namespaces.
    assert a.cluster_scoped() and b.cluster_scoped()
    assert not a.cluster_scoped() & b.cluster_scoped(), sorted(a.cluster_scoped())
    assert all(d["metadata"].get("namespace") for r in (a, b) for d in r.docs if
               d["kind"] not in CLUSTER_KINDS)  # fmt: skip

    (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all(chart_crds()), encoding="utf-8")
    real_cluster.kubectl("apply", "-f", str(tmp_path / "crds.yaml"))
    mark = real_cluster.audit_mark()
    try:
        for release in (a, b):
            assert _owned_elsewhere(real_cluster, release) == []
            real_cluster.kubectl("apply", "-f", str(release.manifest))
        # A namespace belongs to one release: a third one that also lists a2 is refused
        # by Helm, on A's peering object and agents' objects there.
        c = _Release(f"two-c-{tag}", (f"two-c-{tag}", a2), {}, tmp_path, name="other")
        _prepare(c)
        agents = {f"{kind}/{AGENT_SA}" for kind in ("ServiceAccount", "Role", "RoleBinding")}
        assert set(_owned_elsewhere(real_cluster, c)) == {"KopfPeering/hourglass"} | agents

        _start(real_cluster, a)
        _start(real_cluster, b)
        _apply(real_cluster, _profile(a2, "team", {"default": True}))
        _apply(real_cluster, _profile(b1, "extra", {"extends": "base"}))
        expected = {a1: {"base"}, a2: {"team"}, b1: {"base", "extra"}}
        for ns, profiles in expected.items():
            real_cluster.wait_for(
                functools.partial(_settled, real_cluster, ns, profiles),
                timeout=60,
                what=f"{ns}: profiles {sorted(profiles)} rendered and their status observed",
            )

        # No fight: once settled, neither operator rewrites a ConfigMap, a profile or a status.
        before = _versions(real_cluster, [a1, a2, b1])
        quiet = real_cluster.audit_mark()
        time.sleep(SETTLE_WINDOW_S)
        assert _versions(real_cluster, [a1, a2, b1]) == before
        for release in (a, b):
            rewrites = [
                f"{e['verb']} {e['requestURI']}"
                for e in real_cluster.audited(release.user, since=quiet)
                if e["verb"] in WRITES and e["objectRef"].get("resource") in OWNED
            ]
            assert rewrites == [], rewrites
        # Each watched and wrote only its own namespaces, and was refused nothing.
        for release in (a, b):
            assert _watched_namespaces(real_cluster, release, mark) == set(release.watched)
            assert _written_namespaces(real_cluster, release, mark) == set(release.watched)
            assert real_cluster.forbidden(since=mark, user=release.user) == []

        # The agents of A's second namespace get their RBAC from release A: their
        # namespace's hourglass-config, and not B's.
        agent = real_cluster.token(AGENT_SA, a2)
        own = real_cluster.request("GET", real_cluster.path("configmaps", a2, CONFIG), token=agent)
        assert own["metadata"]["name"] == CONFIG
        with pytest.raises(ApiError) as caught:
            real_cluster.request("GET", real_cluster.path("configmaps", b1, CONFIG), token=agent)
        assert caught.value.status == 403, caught.value

        # One peering object per watched namespace, naming only its own release's operator.
        for release in (a, b):
            for ns in release.watched:
                names = [p["metadata"]["name"] for p in real_cluster.list("kopfpeerings", ns)]
                assert names == ["hourglass"], (ns, names)
                peers = real_cluster.wait_for(
                    functools.partial(_peers, real_cluster, ns),
                    what=f"kopf's peering status in {ns}",
                )
                assert peers == {release.pod_id}, (ns, peers)

        # Each webhook configuration selects its own release's namespaces only.
        for release in (a, b):
            owned = set(release.watched)
            real_cluster.wait_for(
                lambda release=release, owned=owned: (
                    _webhook_namespaces(real_cluster, release) == [owned, owned]
                ),
                what=f"{release.namespace}'s webhooks registered for {sorted(owned)}",
            )

        # A's session-store opt-in binds A's namespaces; B turned it off for its own.
        real_cluster.kubectl("create", "secret", "generic", "plain", "-n", a2,
                             "--from-literal=url=redis://127.0.0.1:1")  # fmt: skip
        real_cluster.kubectl("create", "secret", "generic", "plain", "-n", b1,
                             "--from-literal=url=redis://127.0.0.1:1")  # fmt: skip
        spec = {"store": {"urlSecretRef": {"name": "plain", "key": "url"}}, "ttl": "30m"}
        with _plain_install_policy_kept_out(real_cluster, [a1, a2, b1]):
            # Admission reads bindings from an informer: wait for the patch to arrive.
            a_store = {a.cluster_name("-session-store")}
            real_cluster.wait_for(
                lambda: _refused_by(real_cluster, _policy(a2, "sessions", spec)) == a_store,
                timeout=15,
                what=f"a SessionPolicy naming an unlabelled Secret refused in {a2} by {a_store}",
            )
            real_cluster.wait_for(
                lambda: not _refused_by(real_cluster, _policy(b1, "sessions", spec)),
                timeout=15,
                what=f"a SessionPolicy naming an unlabelled Secret admitted in {b1}",
            )

        # A bad profile in B's namespace is refused by B's webhook.
        second_default = _profile(b1, "second-default", {"default": True})
        refused = _apply(real_cluster, second_default)
        assert 'admission webhook "validate-timeoutprofile.hourglass.dev" denied' in refused
        assert "spec.default" in refused, refused

        # A's operator down: its webhook fails closed on A's namespaces only.
        assert a.operator is not None
        a.operator.stop()
        refused = _apply(real_cluster, _profile(a2, "later", {"extends": "team"}))
        assert "failed calling webhook" in refused, refused
        late = _profile(b1, "late", {"extends": "base", "timeouts": {"request": "5s"}})
        assert "created" in _apply(real_cluster, late)
        assert "denied" in _apply(real_cluster, second_default)
        real_cluster.wait_for(
            lambda: _settled(real_cluster, b1, {"base", "extra", "late"}),
            timeout=60,
            what=f"{b1}: profile late rendered by B with A's operator down",
        )
    finally:
        for release in (a, b):
            if release.operator is not None:
                release.operator.stop()
        for release in (a, b):
            real_cluster.kubectl("delete", "--ignore-not-found", "--wait=false",
                                 "-f", str(release.manifest), check=False)  # fmt: skip
