"""The example app's compatibility layer, in process: old variables map to new ones."""

from __future__ import annotations

import pytest

from examples.agent_app.main import LEGACY_VARIABLES, legacy_timeouts_enabled, translate_legacy


def test_each_old_variable_maps_to_its_replacement_with_a_warning() -> None:
    old = {name: "12" for name in LEGACY_VARIABLES if name not in ("AGENT_ENV", "AGENT_REDIS_URL")}
    old["AGENT_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    old["AGENT_ENV"] = "production"
    with pytest.warns(DeprecationWarning) as caught:
        env = translate_legacy(old)
    assert len(caught) == len(LEGACY_VARIABLES)
    assert env["HOURGLASS_TIMEOUT_LLM_CALL"] == "12"
    assert env["HOURGLASS_TIMEOUT_TOOL_CALL"] == "12"
    assert env["HOURGLASS_TIMEOUT_REQUEST"] == "12"
    assert env["SESSION_TTL_SECONDS"] == "12"
    assert env["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert env["HOURGLASS_PROFILE"] == "prod"


def test_the_new_variable_wins_and_unset_ones_are_silent() -> None:
    with pytest.warns(DeprecationWarning, match="HOURGLASS_TIMEOUT_LLM_CALL is set and wins"):
        env = translate_legacy({"AGENT_LLM_TIMEOUT": "7", "HOURGLASS_TIMEOUT_LLM_CALL": "11s"})
    assert env["HOURGLASS_TIMEOUT_LLM_CALL"] == "11s"
    assert translate_legacy({"PATH": "/bin", "AGENT_LLM_TIMEOUT": " "}) == {
        "PATH": "/bin",
        "AGENT_LLM_TIMEOUT": " ",
    }


@pytest.mark.parametrize(
    ("value", "enabled"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_legacy_flag_values(value: str, enabled: bool) -> None:
    assert legacy_timeouts_enabled({"HOURGLASS_LEGACY_TIMEOUTS": value}) is enabled
