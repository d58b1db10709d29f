"""The operator never prints its own token, even a corrupt one (issue 27, item 1: the
operator's part of "feed a known secret through every error path").

A real TokenRequest token of the operator's ServiceAccount with a CR LF inside, in the
kubeconfig `hourglass operator` runs with: every client the operator has (kopf's, the
Kubernetes client behind hourglass_operator.k8s) fails, and all its output is searched
for any piece of the token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hourglass_cli.valkey_server import free_port
from tests.fixtures.controlplane import OPERATOR_NS, OPERATOR_SA, RealCluster

pytestmark = pytest.mark.timeout(120)


def test_a_corrupt_operator_token_never_reaches_the_output(real_cluster: RealCluster) -> None:
    good = real_cluster.token(OPERATOR_SA, OPERATOR_NS)
    config = real_cluster.kubeconfig_for(good[:40] + "\r\n" + good[40:], "corrupt-operator")
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "HOURGLASS_METRICS_PORT": str(free_port()),
        "HOURGLASS_METRICS_ADDR": "127.0.0.1",
        "HOURGLASS_LOG_FORMAT": "json",
    }
    command = [
        str(Path(sys.executable).with_name("hourglass")),
        "operator",
        "--all-namespaces",
        "--standalone",
        "--verbose",
        f"--liveness=http://127.0.0.1:{free_port()}/healthz",
    ]
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=20, check=False
        )
        said = result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:  # still retrying: what it said so far
        said = (expired.stdout or b"").decode(errors="replace") + (expired.stderr or b"").decode(
            errors="replace"
        )
    # The token was used and refused by the client (aiohttp: "Forbidden control character").
    assert "control character" in said, said[-3000:]
    for piece in (good[:40], good[40:80], good[-24:]):
        assert piece not in said, said[-3000:]
