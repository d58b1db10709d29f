"""The operator's tuning settings: bad values are refused naming the variable, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hourglass_operator.errors import OperatorConfigError
from hourglass_operator.settings import OperatorSettings

from hourglass_cli.main import cli


def test_defaults_mean_no_prometheus_and_the_podmonitor_selector() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.prometheus_url is None
    assert settings.prometheus_selector == 'namespace="{namespace}"'
    assert settings.tuning_interval_seconds == 300


def test_values_are_read() -> None:
    settings = OperatorSettings.from_env(
        {
            "HOURGLASS_PROMETHEUS_URL": "http://prometheus.monitoring:9090/",
            "HOURGLASS_PROMETHEUS_SELECTOR": 'namespace="{namespace}", job="agents"',
            "HOURGLASS_TUNING_INTERVAL_SECONDS": "60",
        }
    )
    assert settings.prometheus_url == "http://prometheus.monitoring:9090"
    assert settings.tuning_interval_seconds == 60


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOURGLASS_PROMETHEUS_URL", "prometheus:9090"),
        ("HOURGLASS_PROMETHEUS_URL", "http://admin:s3cret@prometheus:9090"),
        ("HOURGLASS_PROMETHEUS_SELECTOR", "namespace={namespace}"),
        ("HOURGLASS_PROMETHEUS_SELECTOR", 'a="b"} or vector(1) {'),
        ("HOURGLASS_TUNING_INTERVAL_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable_and_never_echo_a_secret(variable: str, value: str) -> None:
    with pytest.raises(OperatorConfigError) as caught:
        OperatorSettings.from_env({variable: value})
    assert variable in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_the_cli_flag_is_checked_like_the_variable() -> None:
    result = CliRunner().invoke(cli, ["operator", "--prometheus-url", "ftp://nope"])
    assert result.exit_code == 2
    assert "--prometheus-url" in result.output and "http(s)://" in result.output
    assert "Traceback" not in result.output


def test_recommend_refuses_bad_input_clearly() -> None:
    runner = CliRunner()
    bad_ns = runner.invoke(cli, ["recommend", "-n", "Bad_NS"])
    assert bad_ns.exit_code == 2 and "--namespace" in bad_ns.output
    no_url = runner.invoke(cli, ["recommend", "-n", "ok", "-f", __file__])
    assert no_url.exit_code == 2 and "--prometheus-url" in no_url.output
