"""TimeoutManager without watching: fallback, profile choice, precedence, lookups, snapshots."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent_lib import (
    ConfigError,
    TimeoutConfig,
    TimeoutManager,
    UnknownTimeout,
    atomic_swap,
)
from agent_lib.timeouts._layers import builtin_profiles, detect_environment
from hourglass_cli.main import cli
from tests.fixtures.timeouts import builtin_bundle

NO_NAMESPACE = "/nonexistent/namespace"


def manager(config_dir: Path, **env: str) -> TimeoutManager:
    return TimeoutManager(config_dir=config_dir, environ=env, namespace_file=NO_NAMESPACE)


# --- built-in fallback ------------------------------------------------------------------


def test_no_file_falls_back_to_builtin_dev(tmp_path: Path) -> None:
    tm = manager(tmp_path / "missing")
    assert tm.current.name == "dev"
    assert tm.current.source == "builtin"
    assert tm.get("llmCall") == 300.0
    assert tm.get("connect") == 5.0  # inherited from base
    assert tm.last_error is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HOURGLASS_PROFILE": "prod"}, "prod"),
        ({"HOURGLASS_ENV": "staging"}, "staging"),
        ({"HOURGLASS_PROFILE": "custom", "HOURGLASS_ENV": "prod"}, "prod"),
        ({"POD_NAMESPACE": "agents-prod"}, "prod"),
        ({"POD_NAMESPACE": "staging"}, "staging"),
        ({"POD_NAMESPACE": "agents-sandbox"}, "dev"),
        ({"HOURGLASS_ENV": "staging", "POD_NAMESPACE": "agents-prod"}, "staging"),
        ({}, "dev"),
    ],
)
def test_builtin_environment_detection(env: dict[str, str], expected: str) -> None:
    assert detect_environment(env, NO_NAMESPACE) == expected


def test_environment_from_the_service_account_namespace_file(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("agents-staging\n")
    tm = TimeoutManager(config_dir=tmp_path / "none", environ={}, namespace_file=namespace_file)
    assert tm.current.name == "staging"
    assert tm.get("llmCall") == 90.0


def test_unknown_hourglass_env_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        detect_environment({"HOURGLASS_ENV": "production"}, NO_NAMESPACE)
    assert caught.value.field == "HOURGLASS_ENV"
    assert "prod" in caught.value.reason


def test_builtin_profiles_come_from_the_packaged_file() -> None:
    assert builtin_profiles() == ["base", "dev", "prod", "staging"]


def test_reads_the_process_environment(
    clean_env: pytest.MonkeyPatch, kube_folder: Path, tmp_path: Path
) -> None:
    clean_env.setenv("HOURGLASS_CONFIG_DIR", str(kube_folder))
    clean_env.setenv("HOURGLASS_PROFILE", "staging")
    clean_env.setenv("HOURGLASS_TIMEOUT_TOOL_CALL", "7s")
    tm = TimeoutManager()
    assert tm.config_dir == kube_folder
    assert tm.current.name == "staging"
    assert tm.current.source == str(kube_folder / "hourglass.yaml")
    assert tm.get("toolCall") == 7.0
    clean_env.delenv("HOURGLASS_CONFIG_DIR")
    assert TimeoutManager().config_dir == Path("/etc/hourglass")


# --- the mounted file -------------------------------------------------------------------


def test_mounted_file_default_profile_and_selection(kube_folder: Path) -> None:
    assert manager(kube_folder).current.name == "dev"
    assert manager(kube_folder, HOURGLASS_PROFILE="prod").get("llmCall") == 45.0
    explicit = TimeoutManager(
        config_dir=kube_folder, profile="staging", environ={"HOURGLASS_PROFILE": "prod"}
    )
    assert explicit.current.name == "staging"
    assert explicit.current.namespace == "agents-test"
    assert len(explicit.current.hash) == 16


def test_profile_missing_from_the_file_falls_back_and_says_why(kube_folder: Path) -> None:
    tm = manager(kube_folder, HOURGLASS_PROFILE="canary")
    assert tm.current.source == "builtin"
    assert tm.current.name == "dev"
    assert tm.last_error is not None
    assert tm.last_error.startswith("HOURGLASS_PROFILE: no profile 'canary' in ")


def test_invalid_file_at_startup_uses_builtin_and_sets_last_error(tmp_path: Path) -> None:
    bad = builtin_bundle().replace("llmCall: 300", "llmCall: -3")
    atomic_swap(tmp_path, {"hourglass.yaml": bad})
    tm = manager(tmp_path)
    assert tm.current.source == "builtin"
    assert tm.last_error is not None
    assert tm.last_error.startswith("profiles.dev.timeouts.llmCall:")
    atomic_swap(tmp_path, {"hourglass.yaml": builtin_bundle()})
    assert tm.reload() is True
    assert tm.last_error is None
    assert tm.current.source == str(tmp_path / "hourglass.yaml")


def test_reload_without_change_reports_unchanged(kube_folder: Path) -> None:
    tm = manager(kube_folder)
    assert tm.reload() is False
    assert tm.stats()["reloads"] == {"unchanged": 1.0}


# --- precedence -------------------------------------------------------------------------


def test_precedence_code_over_env_over_file_over_builtin(kube_folder: Path) -> None:
    env = {"HOURGLASS_TIMEOUT_LLM_CALL": "30s", "HOURGLASS_TIMEOUT_TOOL_CALL": "1m"}
    tm = TimeoutManager(
        config_dir=kube_folder,
        profile="prod",
        overrides={"llmCall": 5},
        environ=env,
        namespace_file=NO_NAMESPACE,
    )
    assert tm.get("llmCall") == 5.0
    assert tm.get("toolCall") == 60.0
    assert tm.get("request") == 20.0
    assert dict(tm.current.origins) == {
        "connect": "config",
        "llmCall": "override",
        "request": "config",
        "sessionIdle": "config",
        "toolCall": "env",
    }
    fallback = TimeoutManager(config_dir=kube_folder / "none", environ=env)
    assert fallback.get("toolCall") == 60.0
    assert fallback.current.origins["connect"] == "builtin"


def test_override_at_runtime_and_undo(kube_folder: Path) -> None:
    tm = manager(kube_folder, HOURGLASS_TIMEOUT_LLM_CALL="30s")
    seen: list[tuple[float, float]] = []
    tm.on_change(lambda old, new: seen.append((old["llmCall"], new["llmCall"])))
    with tm.override(llmCall="2s"):
        assert tm.get("llmCall") == 2.0
        assert tm.current.origins["llmCall"] == "override"
    assert tm.get("llmCall") == 30.0
    tm.override({"request": 9})
    assert tm.get("request") == 9.0
    assert tm.get("llmCall") == 30.0
    assert seen == [(30.0, 2.0), (2.0, 30.0), (30.0, 30.0)]


def test_session_ttl_seconds_maps_to_session_idle(kube_folder: Path) -> None:
    assert manager(kube_folder, SESSION_TTL_SECONDS="600").get("sessionIdle") == 600.0
    both = manager(kube_folder, SESSION_TTL_SECONDS="600", HOURGLASS_TIMEOUT_SESSION_IDLE="5m")
    assert both.get("sessionIdle") == 300.0


def test_env_can_add_a_custom_timeout(kube_folder: Path) -> None:
    tm = manager(kube_folder, HOURGLASS_TIMEOUT_EMBED_BATCH="1m30s")
    assert tm.get("embedBatch") == 90.0


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"HOURGLASS_TIMEOUT_LLM_CALL": "soon"}, "HOURGLASS_TIMEOUT_LLM_CALL"),
        ({"HOURGLASS_TIMEOUT_LLM_CALL": "-1"}, "HOURGLASS_TIMEOUT_LLM_CALL"),
        ({"SESSION_TTL_SECONDS": "forever"}, "SESSION_TTL_SECONDS"),
        ({"HOURGLASS_TIMEOUT_LLM__CALL": "3s"}, "HOURGLASS_TIMEOUT_LLM__CALL"),
    ],
)
def test_bad_environment_value_names_the_variable(
    kube_folder: Path, env: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        manager(kube_folder, **env)
    assert caught.value.field == field


def test_bad_override_names_the_field(kube_folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        TimeoutManager(config_dir=kube_folder, overrides={"llmCall": "0s"}, environ={})
    assert caught.value.field == "overrides.llmCall"
    tm = manager(kube_folder)
    with pytest.raises(ConfigError):
        tm.override({"Bad-Name": 3})
    assert "Bad-Name" not in tm.current.timeouts


# --- lookups and snapshots --------------------------------------------------------------


def test_unknown_timeout_is_a_key_error_listing_names(kube_folder: Path) -> None:
    tm = manager(kube_folder)
    with pytest.raises(KeyError) as caught:
        tm.get("llmcall")
    assert isinstance(caught.value, UnknownTimeout)
    assert "llmCall" in str(caught.value)
    assert "connect" in str(caught.value)
    assert tm.get("llmcall", 7.5) == 7.5
    assert tm.get("llmcall", None) is None
    assert tm["request"] == 120.0
    with pytest.raises(UnknownTimeout):
        tm.current["nope"]


def test_snapshot_is_immutable(kube_folder: Path) -> None:
    snapshot: TimeoutConfig = manager(kube_folder).current
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.name = "prod"  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.timeouts["llmCall"] = 1.0  # type: ignore[index]
    assert snapshot.polling.interval == 0.5
    assert snapshot.loaded_at > 0


# --- render -> mount -> TimeoutManager ---------------------------------------------------

PROFILES = """\
apiVersion: hourglass.dev/v1alpha1
kind: TimeoutProfile
metadata: {name: shared}
spec:
  timeouts: {connect: 4s, request: 25s, llmCall: 60s}
  polling: {interval: 250ms, maxInterval: 4s, multiplier: 3, jitter: 0.2, maxDuration: 1m}
---
apiVersion: hourglass.dev/v1alpha1
kind: TimeoutProfile
metadata: {name: fast-llm}
spec:
  default: true
  extends: shared
  timeouts: {llmCall: 1m30s, toolCall: 500ms}
  polling: {maxDuration: 2m}
"""


def test_rendered_profile_with_extends_reads_back_through_the_manager(tmp_path: Path) -> None:
    spec = tmp_path / "profiles.yaml"
    spec.write_text(PROFILES)
    result = CliRunner().invoke(cli, ["render", str(spec), "-n", "agents-x"])
    assert result.exit_code == 0, result.output
    configmap = yaml.safe_load(result.output)
    folder = tmp_path / "mount"
    atomic_swap(folder, configmap["data"])
    tm = manager(folder)
    assert tm.current.name == "fast-llm"
    assert tm.current.hash == configmap["metadata"]["annotations"]["hourglass.dev/config-hash"]
    assert tm.get("llmCall") == 90.0  # overridden
    assert tm.get("toolCall") == 0.5  # added
    assert tm.get("connect") == 4.0  # inherited
    assert tm.get("request") == 25.0  # inherited
    polling = tm.current.polling
    assert (polling.interval, polling.multiplier, polling.max_duration) == (0.25, 3.0, 120.0)


# --- override blocks and origins (issue 26) ---------------------------------------------


def test_override_blocks_ending_out_of_order_remove_only_their_own() -> None:
    tm = TimeoutManager(config_dir="/nonexistent", environ={})
    plain = tm.current
    a = tm.override(llmCall=5)
    b = tm.override(toolCall=3)
    a.undo()
    assert (tm.get("llmCall"), tm.get("toolCall")) == (plain["llmCall"], 3.0)
    assert tm.current.origins["toolCall"] == "override"
    assert tm.current.origins["llmCall"] == "builtin"
    b.undo()
    b.undo()  # a second undo changes nothing
    assert dict(tm.current.timeouts) == dict(plain.timeouts)
    assert dict(tm.current.origins) == dict(plain.origins)


def test_the_latest_active_block_wins_on_the_same_name() -> None:
    tm = TimeoutManager(config_dir="/nonexistent", environ={}, overrides={"llmCall": 9})
    first = tm.override(llmCall=5)
    second = tm.override(llmCall=7)
    first.undo()
    assert tm.get("llmCall") == 7.0
    second.undo()
    assert tm.get("llmCall") == 9.0  # the constructor's override stays
    assert tm.current.origins["llmCall"] == "override"


async def test_override_blocks_in_concurrent_tasks() -> None:
    tm = TimeoutManager(config_dir="/nonexistent", environ={})
    plain = tm.current
    a_in, b_in = asyncio.Event(), asyncio.Event()

    async def a() -> None:
        with tm.override(llmCall=5):
            a_in.set()
            await b_in.wait()
        # a ends first, while b's block is still active

    async def b() -> float:
        await a_in.wait()
        with tm.override(toolCall=3):
            b_in.set()
            await task_a
            return tm.get("toolCall")

    task_a = asyncio.create_task(a())
    assert await b() == 3.0
    assert dict(tm.current.timeouts) == dict(plain.timeouts)
    assert "override" not in tm.current.origins.values()


def test_override_equal_to_the_file_value_still_says_override(kube_folder: Path) -> None:
    tm = manager(kube_folder)
    assert tm.current.origins["llmCall"] == "config"
    with tm.override(llmCall=tm.get("llmCall")):
        assert tm.current.origins["llmCall"] == "override"
    assert tm.current.origins["llmCall"] == "config"


# --- environment variable names (issue 26) ----------------------------------------------


def test_a_variable_in_other_spelling_sets_the_known_timeout(
    kube_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tm = manager(kube_folder, HOURGLASS_TIMEOUT_LLMCALL="7s")
    assert tm.get("llmCall") == 7.0
    assert tm.current.origins["llmCall"] == "env"
    assert "llmcall" not in tm.current.timeouts
    tm.reload()
    tm.reload()
    warnings = [
        r.getMessage() for r in caplog.records if "HOURGLASS_TIMEOUT_LLMCALL" in r.getMessage()
    ]
    assert warnings == [
        "hourglass: HOURGLASS_TIMEOUT_LLMCALL sets timeout llmCall"
        " (spelled HOURGLASS_TIMEOUT_LLM_CALL)"
    ]


def test_a_near_miss_defines_a_new_timeout_and_names_the_closest(
    kube_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tm = manager(kube_folder, HOURGLASS_TIMEOUT_LLM_CAL="7s")
    assert tm.get("llmCal") == 7.0
    assert tm.current.origins["llmCall"] == "config"
    (warning,) = [r.getMessage() for r in caplog.records if "LLM_CAL " in r.getMessage()]
    assert "did you mean llmCall (HOURGLASS_TIMEOUT_LLM_CALL)?" in warning


def test_a_variable_matches_a_custom_name_of_the_profile(tmp_path: Path) -> None:
    content = builtin_bundle().replace("llmCall: 300", "llmCall: 300\n      vectorSearch: 2")
    assert "vectorSearch" in content
    atomic_swap(tmp_path, {"hourglass.yaml": content})
    tm = manager(tmp_path, HOURGLASS_TIMEOUT_VECTORSEARCH="4s")
    assert tm.get("vectorSearch") == 4.0
    assert "vectorsearch" not in tm.current.timeouts


def test_two_variables_for_one_timeout_are_an_error(kube_folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        manager(kube_folder, HOURGLASS_TIMEOUT_LLMCALL="7s", HOURGLASS_TIMEOUT_LLM_CALL="8s")
    assert caught.value.field == "HOURGLASS_TIMEOUT_LLM_CALL"
    assert "HOURGLASS_TIMEOUT_LLMCALL" in caught.value.reason
