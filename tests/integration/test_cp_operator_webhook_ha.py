"""The admission webhook under HA, on the real control plane (issue 15, item 5).

Two operator replicas share the shipped peering object; the one with the lower priority
is paused by kopf peering, and it alone is registered as the webhook, so the real
kube-apiserver sends every review to it, over TLS, trusting it through the caBundle.
A paused replica's kopf indices are stale or empty; the webhook reads the namespace from
the API server instead, so a second default profile is refused every time.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.controlplane import ApiError, RealCluster
from tests.fixtures.operator_process import OperatorProcess, free_port
from tests.integration._resources import _profile

pytestmark = pytest.mark.timeout(150)


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "webhook.crt", folder / "webhook.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def paused_webhook(real_cluster: RealCluster) -> Iterator[tuple[str, OperatorProcess]]:
    cert, key = _certificate(real_cluster.workdir)
    port = free_port()
    name = f"hourglass-ha-{uuid.uuid4().hex[:6]}"
    peering = ("--all-namespaces", "--peering", "hourglass")
    leader = OperatorProcess(real_cluster, *peering, "--priority", "1000", name="leader")
    paused = OperatorProcess(real_cluster, *peering, "--priority", "1", name="paused")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOURGLASS_REPLICAS", "2")
        leader.start(timeout=60)
        patch.setenv("HOURGLASS_WEBHOOK", "true")
        patch.setenv("HOURGLASS_WEBHOOK_PORT", str(port))
        patch.setenv("HOURGLASS_WEBHOOK_ADDR", "127.0.0.1")
        patch.setenv("HOURGLASS_WEBHOOK_CERT", str(cert))
        patch.setenv("HOURGLASS_WEBHOOK_KEY", str(key))
        paused.start(timeout=60)
    ca = base64.b64encode(cert.read_bytes()).decode()
    webhooks = []
    for plural, kind in (
        ("timeoutprofiles", "timeoutprofile"),
        ("sessionpolicies", "sessionpolicy"),
    ):
        webhooks.append(
            {
                "name": f"{kind}.hourglass.dev",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/validate-{kind}",
                    "caBundle": ca,
                },
                "rules": [
                    {
                        "apiGroups": ["hourglass.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [plural],
                    }
                ],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "namespaceSelector": {"matchLabels": {"hourglass-test/webhook": name}},
            }
        )
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks,
    }
    real_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(config))
    try:
        # The replica that joins second with the lower priority starts paused, silently.
        real_cluster.wait_for(
            lambda: (
                {1, 1000}
                <= {
                    peer.get("priority")
                    for peer in (real_cluster.get("clusterkopfpeerings", None, "hourglass") or {})
                    .get("status", {})
                    .values()
                }
            ),
            timeout=60,
            what="both replicas in the peering object",
        )
        yield name, paused
    finally:
        real_cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        paused.stop()
        leader.stop()


def test_a_paused_replica_refuses_a_second_default_profile(
    real_cluster: RealCluster, paused_webhook: tuple[str, OperatorProcess]
) -> None:
    label, paused = paused_webhook
    for attempt in range(5):
        ns = real_cluster.namespace()
        real_cluster.kubectl("label", "namespace", ns, f"hourglass-test/webhook={label}")
        path = f"/apis/hourglass.dev/v1alpha1/namespaces/{ns}/timeoutprofiles"
        real_cluster.request("POST", path, _profile(ns, "first", {"default": True}))
        with pytest.raises(ApiError) as refused:
            real_cluster.request("POST", path, _profile(ns, "second", {"default": True}))
        assert refused.value.status == 422, (attempt, refused.value)
        assert "spec.default" in str(refused.value), refused.value
    # The paused replica reconciled nothing: the leader did (its log names the namespace).
    assert not any("wrote " in line for line in paused.log_lines())
