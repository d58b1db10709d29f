"""The operator's own webhook registration: its settings and the webhooks it writes."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner
from hourglass_operator.errors import OperatorConfigError
from hourglass_operator.settings import OperatorSettings
from hourglass_operator.webhook_config import webhooks

from hourglass_cli.operator import operator

SERVED = {"HOURGLASS_WEBHOOK": "true", "HOURGLASS_WEBHOOK_INSECURE": "true"}


def test_service_form_defaults_to_port_443() -> None:
    env = SERVED | {
        "HOURGLASS_WEBHOOK_CONFIGURATION": "hg",
        "HOURGLASS_WEBHOOK_SERVICE": "agents-prod/hg-webhook",
    }
    settings = OperatorSettings.from_env(env).check()
    assert settings.webhook_service == ("agents-prod", "hg-webhook", 443)
    (first, second) = webhooks({}, settings)
    assert first["clientConfig"] == {
        "service": {
            "namespace": "agents-prod",
            "name": "hg-webhook",
            "port": 443,
            "path": "/validate-timeoutprofile",
        }
    }
    assert second["rules"][0]["resources"] == ["sessionpolicies"]
    assert "namespaceSelector" not in first  # all namespaces watched


def test_url_form_with_ca_bundle_and_watched_namespaces() -> None:
    env = SERVED | {
        "HOURGLASS_WEBHOOK_CONFIGURATION": "hg",
        "HOURGLASS_WEBHOOK_URL": "https://127.0.0.1:9443/",
        "HOURGLASS_WEBHOOK_FAILURE_POLICY": "Ignore",
    }
    settings = OperatorSettings.from_env(env)
    settings = dataclasses.replace(settings, namespaces=("b", "a", "b")).check()
    (first, _) = webhooks({"caBundle": "Q0E="}, settings)
    assert first["clientConfig"] == {
        "url": "https://127.0.0.1:9443/validate-timeoutprofile",
        "caBundle": "Q0E=",
    }
    assert first["failurePolicy"] == "Ignore"
    assert first["namespaceSelector"]["matchExpressions"][0]["values"] == ["a", "b"]


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"HOURGLASS_WEBHOOK_CONFIGURATION": "Not_A_Name"}, "HOURGLASS_WEBHOOK_CONFIGURATION"),
        ({"HOURGLASS_WEBHOOK_SERVICE": "just-a-name"}, "HOURGLASS_WEBHOOK_SERVICE"),
        ({"HOURGLASS_WEBHOOK_SERVICE": "ns/svc:99999"}, "HOURGLASS_WEBHOOK_SERVICE"),
        ({"HOURGLASS_WEBHOOK_URL": "http://127.0.0.1:9443"}, "HOURGLASS_WEBHOOK_URL"),
        ({"HOURGLASS_WEBHOOK_URL": "https://h/?q=1"}, "HOURGLASS_WEBHOOK_URL"),
        ({"HOURGLASS_WEBHOOK_CA_BUNDLE": "not base64!"}, "HOURGLASS_WEBHOOK_CA_BUNDLE"),
        ({"HOURGLASS_WEBHOOK_FAILURE_POLICY": "Maybe"}, "HOURGLASS_WEBHOOK_FAILURE_POLICY"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(OperatorConfigError) as error:
        OperatorSettings.from_env(SERVED | env)
    assert error.value.field == field


@pytest.mark.parametrize(
    "env",
    [
        {"HOURGLASS_WEBHOOK_CONFIGURATION": "hg"},
        {
            "HOURGLASS_WEBHOOK_CONFIGURATION": "hg",
            "HOURGLASS_WEBHOOK_SERVICE": "ns/svc",
            "HOURGLASS_WEBHOOK_URL": "https://127.0.0.1",
        },
    ],
)
def test_managed_configuration_needs_exactly_one_way_in(env: dict[str, str]) -> None:
    with pytest.raises(OperatorConfigError) as error:
        OperatorSettings.from_env(SERVED | env).check()
    assert error.value.field == "HOURGLASS_WEBHOOK_CONFIGURATION"


def test_namespace_patterns_cannot_become_a_selector() -> None:
    env = SERVED | {
        "HOURGLASS_WEBHOOK_CONFIGURATION": "hg",
        "HOURGLASS_WEBHOOK_SERVICE": "ns/svc",
    }
    refused = CliRunner().invoke(operator, ["--namespace", "agents-*"], env=env)
    assert refused.exit_code == 2, refused.output
    assert "--namespace" in refused.output and "agents-*" in refused.output
