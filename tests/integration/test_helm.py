"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk).

Every document rendered for every values file is checked against the real
Kubernetes schemas (kubernetes-validate), TimeoutProfiles and SessionPolicies
against the generated CRD and its CEL rules (cel-python) and the agent_lib models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from agent_lib.config import SourceDocument, parse_documents, render_config
from tests.fixtures.k8s_schemas import CHART, MANIFESTS, assert_valid, doc_id, load_all
from tests.integration.test_manifests import assert_hardened

VALUES_FILES = ("values.yaml", "values-dev.yaml", "values-staging.yaml", "values-prod.yaml")
SCOPES: dict[str, dict[str, Any]] = {
    "namespace": {},
    "namespaces": {"operator": {"watch": {"scope": "namespaces", "namespaces": ["a", "b"]}}},
    "cluster": {"operator": {"watch": {"scope": "cluster"}}},
    "webhook": {
        "operator": {
            "webhook": {"enabled": True, "tlsSecretName": "hourglass-tls", "caBundle": "QUJD"}
        }
    },
    "webhook+generated-tls": {
        "operator": {"webhook": {"enabled": True, "url": "https://hourglass.example:9443"}}
    },
    "cluster+webhook": {
        "operator": {
            "watch": {"scope": "cluster"},
            "webhook": {
                "enabled": True,
                "tlsSecretName": "hourglass-tls",
                "certManagerCertificate": "agents-prod/hourglass-webhook",
            },
        }
    },
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _values(name: str) -> dict[str, Any]:
    if name == "values.yaml":
        return {}
    return yaml.safe_load((CHART / name).read_text(encoding="utf-8")) or {}


def _render(
    chart: helm.Chart,
    values: dict[str, Any],
    namespace: str = "agents-prod",
    release: str = "hourglass-test",
) -> dict[str, list[dict[str, Any]]]:
    rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    return {
        path: load_all(text) for path, text in rendered.items() if path.endswith((".yaml", ".yml"))
    }


def _docs(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc for docs in _render(chart, values).values() for doc in docs]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_chart_lints_clean(values_file: str) -> None:
    report = helm.lint(CHART, _values(values_file), strict=True, namespace="agents-prod")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values_file", VALUES_FILES)
@pytest.mark.parametrize("scope", list(SCOPES))
def test_every_rendered_document_is_valid(chart: helm.Chart, values_file: str, scope: str) -> None:
    values = helm.Chart.merge_values(chart, {**_values(values_file), **SCOPES[scope]})
    docs = _docs(chart, values)
    assert docs
    for doc in docs:
        assert_valid(doc, f"{values_file} ({scope})")


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_operator_deployment_is_hardened(chart: helm.Chart, values_file: str) -> None:
    (deployment,) = [d for d in _docs(chart, _values(values_file)) if d["kind"] == "Deployment"]
    assert_hardened(deployment)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=agents-prod" in args


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_environment_values_set_up_one_environment(chart: helm.Chart, env: str) -> None:
    docs = _docs(chart, _values(f"values-{env}.yaml"))
    profiles = [d for d in docs if d["kind"] == "TimeoutProfile"]
    policies = [d for d in docs if d["kind"] == "SessionPolicy"]
    assert len(policies) == 1 and len(profiles) >= 2
    names = {p["metadata"]["name"] for p in profiles}
    assert any(p["spec"].get("extends") in names for p in profiles)
    assert {d["metadata"]["namespace"] for d in profiles + policies} == {"agents-prod"}
    parsed = parse_documents(SourceDocument(d) for d in profiles + policies)
    assert parsed.problems == []
    rendered = render_config("agents-prod", *_split(parsed.by_namespace["agents-prod"]))
    assert rendered.hash


def _split(resources: list[Any]) -> tuple[list[Any], list[Any]]:
    profiles = [r for r in resources if r.kind == "TimeoutProfile"]
    policies = [r for r in resources if r.kind == "SessionPolicy"]
    return profiles, policies


def test_chart_profiles_match_the_manifest_samples(chart: helm.Chart) -> None:
    """values-prod.yaml and manifests/samples/prod describe the same environment."""
    docs = _docs(chart, _values("values-prod.yaml"))
    chart_specs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "TimeoutProfile"}
    sample = load_all((MANIFESTS / "samples" / "prod" / "timeoutprofiles.yaml").read_text())
    sample_specs = {d["metadata"]["name"]: d["spec"] for d in sample}
    assert chart_specs == sample_specs


def test_chart_crds_are_the_manifest_crds(chart: helm.Chart) -> None:
    shipped = {c["filename"].removeprefix("hourglass/crds/"): c["data"] for c in chart.crds}
    expected = {p.name: p for p in (MANIFESTS / "crds").glob("*.hourglass.dev.yaml")}
    expected["kopf/peering-crds.yaml"] = MANIFESTS / "crds" / "kopf" / "peering-crds.yaml"
    assert shipped.keys() == expected.keys()
    for name, path in expected.items():
        assert shipped[name] == path.read_text(encoding="utf-8"), name


def test_prometheus_rule_carries_the_monitoring_config(chart: helm.Chart) -> None:
    docs = _docs(chart, _values("values-prod.yaml"))
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    config = yaml.safe_load((CHART.parents[1] / "config" / "monitoring_config.yaml").read_text())
    assert rule["spec"]["groups"] == config["groups"]
    assert [d for d in docs if d["kind"] == "ServiceMonitor"]


def test_monitoring_objects_are_optional(chart: helm.Chart) -> None:
    kinds = {d["kind"] for d in _docs(chart, {})}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "TimeoutProfile", "SessionPolicy"}
    extra = {
        "metrics": {
            "prometheusRule": {
                "enabled": True,
                "additionalRules": [
                    {"alert": "X", "expr": "vector(1)", "labels": {"severity": "warning"}}
                ],
            }
        }
    }
    (rule,) = [d for d in _docs(chart, extra) if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"][-1]["rules"][0]["alert"] == "X"


def test_watch_scopes_choose_args_and_rbac(chart: helm.Chart) -> None:
    cluster = _docs(chart, SCOPES["cluster"])
    (deployment,) = [d for d in cluster if d["kind"] == "Deployment"]
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [d for d in cluster if d["kind"] == "Role"]
    several = _docs(chart, SCOPES["namespaces"])
    roles = sorted(d["metadata"]["namespace"] for d in several if d["kind"] == "Role")
    assert roles == ["a", "b"]
    (deployment,) = [d for d in several if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=a", "--namespace=b"]


def test_two_releases_do_not_collide_on_cluster_scoped_names(chart: helm.Chart) -> None:
    names = []
    for release in ("hourglass-dev", "hourglass-prod"):
        namespace = release.replace("hourglass", "agents")
        names += [
            doc_id(d)
            for docs in _render(chart, {}, namespace=namespace, release=release).values()
            for d in docs
            if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}
        ]
    assert len(names) == len(set(names)) == 4


def test_notes_explain_the_volume_mount(chart: helm.Chart) -> None:
    notes = chart.render(
        _values("values-prod.yaml"), name="hourglass-prod", namespace="agents-prod"
    )
    text = next(v for k, v in notes.items() if k.endswith("NOTES.txt"))
    assert "mountPath: /etc/hourglass" in text
    assert "subPath" in text and "NOT with subPath" in text
    assert "secretKeyRef" in text and "hourglass-config" in text


BROKEN_VALUES = [
    ("operator:\n  replicas: -1\n", "/operator/replicas"),
    ("operator:\n  watch:\n    scope: everywhere\n", "/operator/watch/scope"),
    ("operator:\n  watch:\n    scope: namespaces\n", "/operator/watch/namespaces"),
    ("operator:\n  logLevel: chatty\n", "/operator/logLevel"),
    ("operator:\n  resources:\n    limits: {cpu: one core}\n", "/operator/resources/limits/cpu"),
    ("image:\n  pullPolicy: Sometimes\n", "/image/pullPolicy"),
    ("replicas: 3\n", "'replicas' not allowed"),
    ("timeoutProfiles:\n  Base_Profile: {}\n", "Base_Profile"),
    (
        "timeoutProfiles:\n  base:\n    timeouts:\n      llmCall: 5 minutes\n",
        "/timeoutProfiles/base/timeouts/llmCall",
    ),
    (
        "timeoutProfiles:\n  base:\n    polling:\n      jitter: 2\n",
        "/timeoutProfiles/base/polling/jitter",
    ),
    ("timeoutProfiles:\n  base:\n    timeoutz: {}\n", "'timeoutz' not allowed"),
    ("sessionPolicy:\n  create: true\n  spec:\n    ttl: forever\n", "/sessionPolicy/spec/ttl"),
    (
        "sessionPolicy:\n  create: true\n  spec:\n    store:\n      url: redis://x\n",
        "'url' not allowed",
    ),
    ("sessionPolicy:\n  spec:\n    maxSessions: 0\n", "/sessionPolicy/spec/maxSessions"),
    ("metrics:\n  serviceMonitor:\n    interval: soon\n", "/metrics/serviceMonitor/interval"),
    (
        "operator:\n  webhook:\n    enabled: true\n    url: http://10.0.0.1:9443\n",
        "/operator/webhook/url",
    ),
    (
        "operator:\n  webhook:\n    enabled: true\n    tlsSecretName: tls\n",
        "/operator/webhook/caBundle",
    ),
    ("operator:\n  webhook:\n    failurePolicy: Maybe\n", "/operator/webhook/failurePolicy"),
]


@pytest.mark.parametrize(("text", "where"), BROKEN_VALUES, ids=[w for _, w in BROKEN_VALUES])
def test_values_schema_rejects_broken_values_files(
    chart: helm.Chart, tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "values-broken.yaml"
    path.write_text(text, encoding="utf-8")
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    with pytest.raises(helm.HelmValuesError, match="at '") as raised:
        chart.render(values, name="hourglass-test", namespace="agents-prod", is_install=True)
    assert where in str(raised.value)
    report = helm.lint(CHART, values, strict=True)
    assert any(where in error for error in report["errors"]), report


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_values_files_pass_the_schema(chart: helm.Chart, values_file: str) -> None:
    chart.validate_schema(chart.merge_values(_values(values_file)))


def test_values_schema_definitions_are_generated_from_the_models() -> None:
    import json

    from hourglass_operator.crds import values_schema_definitions

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    for name, definition in values_schema_definitions().items():
        assert schema["definitions"][name] == definition, (
            f"{name} drifted from the models; regenerate with "
            "hourglass_operator.crds.sync_values_schema(Path('helm/hourglass/values.schema.json'))"
        )


@pytest.mark.timeout(180)
def test_chart_install_reconciles_on_the_control_plane(
    chart: helm.Chart, real_cluster: Any, tmp_path: Path
) -> None:
    """The kind workflow's `helm install -f values-prod.yaml`, on a real kube-apiserver.

    The Helm engine renders the chart; every document it renders for a kind this cluster
    serves is applied with the real kubectl (server-side validation on). The Deployment
    cannot run (no kubelet), so the operator runs as a local process with exactly the
    arguments the Deployment gives it, authenticated as the chart's own ServiceAccount:
    the chart's RBAC is what allows or refuses each call.
    """
    from tests.fixtures.operator_process import OperatorProcess
    from tests.integration.test_manifests import check_environment

    namespace = "helm-prod"
    docs = [
        d
        for path, rendered in _render(chart, _values("values-prod.yaml"), namespace).items()
        if "/crds/" not in path
        for d in rendered
    ]
    real_cluster.namespace(namespace)
    unserved = {"ServiceMonitor", "PrometheusRule"}  # no Prometheus operator CRDs here
    applied = [d for d in docs if d["kind"] not in unserved]
    assert {"TimeoutProfile", "SessionPolicy", "KopfPeering", "Role", "Deployment"} <= {
        d["kind"] for d in applied
    }
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(applied), encoding="utf-8")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    passed = [a for a in args if a != "operator" and not a.startswith("--liveness")]
    assert passed == [f"--namespace={namespace}"]
    real_cluster.kubectl("apply", "-f", str(manifest))
    service_account = f"{namespace}/{pod['serviceAccountName']}"
    mark = real_cluster.audit_mark()
    operator = OperatorProcess(
        real_cluster, *passed, name="chart", service_account=service_account
    ).start(timeout=60)
    try:
        check_environment(real_cluster, namespace, [manifest])
        real_cluster.wait_for(
            lambda: (real_cluster.get("kopfpeerings", namespace, "hourglass") or {}).get("status"),
            what="the operator to join the chart's KopfPeering",
        )
    finally:
        operator.stop()
    user = f"system:serviceaccount:{namespace}:{pod['serviceAccountName']}"
    assert real_cluster.audited(user, since=mark), "no request made as the chart's account"
    assert real_cluster.forbidden(since=mark, user=user) == []


def _webhook_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_webhook_paths_are_the_operators_handler_ids(chart: helm.Chart) -> None:
    """The chart ships the configuration empty; what the operator patches in, from the
    environment the chart gives it, calls the chart's Service at each handler's path."""
    import kopf
    from hourglass_operator import webhook
    from hourglass_operator.settings import OperatorSettings
    from hourglass_operator.webhook_config import webhooks

    async def no_siblings(namespace: str) -> list[dict[str, object]]:
        return []

    registry = kopf.OperatorRegistry()
    webhook.register(registry, no_siblings)
    ids = {str(h.id) for h in registry._webhooks.get_all_handlers()}
    docs = _docs(chart, SCOPES["webhook"])
    (config,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    assert "webhooks" not in config, "a webhook nobody serves yet would refuse the release"
    env = _webhook_env(docs)
    assert env["HOURGLASS_WEBHOOK_CONFIGURATION"] == config["metadata"]["name"]
    settings = OperatorSettings.from_env(env)
    settings = dataclasses.replace(settings, namespaces=("agents-prod",)).check()
    hooks = webhooks({"caBundle": "QUJD"}, settings)
    assert {w["clientConfig"]["service"]["path"].lstrip("/") for w in hooks} == ids
    (service,) = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("webhook")
    ]
    assert {
        (s["namespace"], s["name"], s["port"])
        for s in (w["clientConfig"]["service"] for w in hooks)
    } == {(service["metadata"]["namespace"], service["metadata"]["name"], 443)}
    assert {w["clientConfig"]["caBundle"] for w in hooks} == {"QUJD"}
    assert env["HOURGLASS_WEBHOOK_CA_BUNDLE"] == "QUJD"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["HOURGLASS_WEBHOOK_CERT"].rsplit("/", 1)[0] in mounts


def test_webhook_may_patch_only_its_own_configuration(chart: helm.Chart) -> None:
    docs = _docs(chart, SCOPES["webhook"])
    (config,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    (rule,) = [r for r in role["rules"] if "admissionregistration.k8s.io" in r["apiGroups"]]
    assert rule["resourceNames"] == [config["metadata"]["name"]]
    assert rule["verbs"] == ["patch"]
    assert not any(
        "admissionregistration.k8s.io" in r["apiGroups"]
        for d in _docs(chart, {})
        if d["kind"] == "ClusterRole"
        for r in d["rules"]
    )


def test_generated_webhook_certificate_is_signed_for_the_service(
    chart: helm.Chart, tmp_path: Path
) -> None:
    import base64
    import subprocess

    values = {"operator": {"webhook": {"enabled": True}}}
    docs = _docs(chart, values)
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    for key, data in secret["data"].items():
        (tmp_path / key).write_bytes(base64.b64decode(data))
    env = _webhook_env(docs)
    assert env["HOURGLASS_WEBHOOK_CA"] == "/etc/hourglass-webhook/ca.crt"
    service = env["HOURGLASS_WEBHOOK_SERVICE"].split(":")[0]
    namespace, name = service.split("/")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": secret["metadata"]["name"]} in [v.get("secret") for v in volumes]

    def verify(*check: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(tmp_path / "ca.crt"),
                *check,
                str(tmp_path / "tls.crt"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    assert verify("-verify_hostname", f"{name}.{namespace}.svc").returncode == 0
    assert verify("-verify_hostname", "elsewhere.example").returncode != 0
    assert verify("-verify_ip", "127.0.0.1").returncode != 0
    docs = _docs(
        chart, {"operator": {"webhook": {"enabled": True, "url": "https://127.0.0.1:9443"}}}
    )
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    (tmp_path / "tls.crt").write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
    assert verify("-verify_ip", "127.0.0.1").returncode == 0
    assert _webhook_env(docs)["HOURGLASS_WEBHOOK_URL"] == "https://127.0.0.1:9443"


@pytest.mark.parametrize(("replicas", "expected"), [(1, 0), (2, 1)])
def test_disruption_budget_only_with_several_replicas(
    chart: helm.Chart, replicas: int, expected: int
) -> None:
    docs = _docs(chart, {"operator": {"replicas": replicas}})
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert len(budgets) == expected
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector == deployment["spec"]["selector"]["matchLabels"]


def test_tuning_values_reach_the_operator_and_the_pod_monitor(chart: helm.Chart) -> None:
    """tuning.prometheus.url becomes HOURGLASS_PROMETHEUS_URL; the PodMonitor is optional."""
    plain = _docs(chart, {})
    assert not [d for d in plain if d["kind"] == "PodMonitor"]
    values = {
        "tuning": {
            "prometheus": {"url": "http://prometheus.monitoring:9090"},
            "podMonitor": {"enabled": True, "namespaces": ["agents-prod"]},
        }
    }
    docs = _docs(chart, values)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["HOURGLASS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["HOURGLASS_PROMETHEUS_SELECTOR"] == 'namespace="{namespace}"'
    (monitor,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "hourglass.dev/config": "hourglass-config"
    }
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["agents-prod"]}
    assert "HOURGLASS_PROMETHEUS_URL" not in {
        e["name"]
        for d in plain
        if d["kind"] == "Deployment"
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
