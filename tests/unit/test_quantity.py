from __future__ import annotations

import pytest
from kubernetes.utils import parse_quantity as k8s_parse_quantity

from agent_lib.errors import ConfigError
from agent_lib.quantity import parse_quantity


@pytest.mark.parametrize("text", ["512Mi", "1Gi", "1.5Gi", "100M", "1k", "2048", "3Ti", "1E"])
def test_agrees_with_the_kubernetes_client(text: str) -> None:
    assert parse_quantity(text) == int(k8s_parse_quantity(text))


@pytest.mark.parametrize("value", ["12XB", "Mi", "-1Mi", "0", "1.2.3", True, None, "512 Mi"])
def test_refuses_what_is_not_a_memory_quantity(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_quantity(value, field="spec.maxMemory")
    assert caught.value.field == "spec.maxMemory"
