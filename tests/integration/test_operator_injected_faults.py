"""An API error the operator must retry through, injected by the emulator.

A real kube-apiserver cannot be made to fail exactly one ConfigMap patch, so this
test alone stays on kmock's emulator (tests/fixtures/k8s_emulator.py, `fail_next`);
every other operator scenario runs on the real control plane (test_operator_e2e.py).
"""

from __future__ import annotations

import pytest

from tests.fixtures.k8s_emulator import Cluster, OperatorProcess
from tests.integration._resources import _profile, _wait_timeout, _yaml

pytestmark = pytest.mark.timeout(90)


def test_api_errors_are_retried_until_the_config_lands(
    k8s_cluster: Cluster, hourglass_operator: OperatorProcess
) -> None:
    ns = "op-api-errors"
    base = _profile(ns, "base", {"default": True, "timeouts": {"request": "30s"}})
    k8s_cluster.apply(_yaml(base))
    _wait_timeout(k8s_cluster, ns, "base", "request", 30)
    k8s_cluster.api.fail_next("patch", "configmaps", times=1)
    base["spec"]["timeouts"]["request"] = "31s"
    k8s_cluster.apply(_yaml(base))
    _wait_timeout(k8s_cluster, ns, "base", "request", 31)
    failures = [
        line
        for line in hourglass_operator.metrics().splitlines()
        if line.startswith("hourglass_operator_reconcile_failures_total{")
        and 'reason="api_error"' in line
        and f'namespace="{ns}"' in line
    ]
    assert failures and float(failures[0].rsplit(" ", 1)[1]) >= 1
