"""The mistakes a new user makes, each with the exact answer they get and the exit code.

One table per entry point: the ``hourglass`` verbs (``validate``, ``cleanup``, ``local``)
and the library's constructors (``SessionManager.from_url``/``from_env``,
``TimeoutManager``, the duration, quantity and cron parsers). Every answer names the
flag, variable or field the user wrote and never ends in a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hourglass_operator.cronjob import url_source_label

from agent_lib import SessionManager, TimeoutManager
from agent_lib.config.cron import CronError, check_schedule
from agent_lib.durations import parse_duration
from agent_lib.errors import ConfigError
from agent_lib.quantity import parse_quantity
from agent_lib.sessions.store_url import SOURCE_VARIABLE
from hourglass_cli.main import cli, main

BAD_INPUT = 2  # the session guide's code for bad input (click's usage errors too)
PROBLEMS = 1  # validate: problems found; local: nothing could be served


def _profile(name: str, spec: str) -> str:
    return (
        "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\n"
        f"metadata:\n  name: {name}\nspec:\n{spec}"
    )


def _policy(spec: str) -> str:
    return (
        "apiVersion: hourglass.dev/v1alpha1\nkind: SessionPolicy\n"
        f"metadata:\n  name: default\nspec:\n{spec}"
    )


BASE = _profile("base", "  timeouts:\n    llmCall: 30s\n")


@dataclass(frozen=True)
class Mistake:
    id: str
    args: list[str]
    code: int
    line: str
    """A whole line of the output, exactly."""
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


CLI_MISTAKES = [
    Mistake(
        "misspelled-verb",
        ["valdate", "config/"],
        BAD_INPUT,
        "Error: No such command 'valdate'; did you mean 'validate'?",
    ),
    # --- hourglass cleanup: the store URL and the session settings ---------------------
    Mistake(
        "cleanup-port-out-of-range",
        ["cleanup", "-n", "demo", "--redis-url", "redis://localhost:99999/0"],
        BAD_INPUT,
        "Error: --redis-url: the port must be a number from 1 to 65535 "
        "(a redis:// URL for host localhost)",
    ),
    Mistake(
        "cleanup-port-not-a-number",
        ["cleanup", "-n", "demo", "--redis-url", "redis://u:pw@localhost:notaport/0"],
        BAD_INPUT,
        "Error: --redis-url: the port must be a number from 1 to 65535 "
        "(a redis:// URL for host localhost)",
    ),
    Mistake(
        "cleanup-ipv6-unclosed",
        ["cleanup", "-n", "demo", "--redis-url", "redis://[::1/0"],
        BAD_INPUT,
        "Error: --redis-url: an IPv6 address is not closed with ']', as in "
        "redis://[::1]:6379/0 (a redis:// URL)",
    ),
    Mistake(
        "cleanup-database-not-a-number",
        ["cleanup", "-n", "demo", "--redis-url", "redis://localhost:6379/abc"],
        BAD_INPUT,
        "Error: --redis-url: the database (the path) must be a number, as in "
        "redis://host:6379/0 (a redis:// URL for host localhost)",
    ),
    Mistake(
        "cleanup-unknown-scheme",
        ["cleanup", "-n", "demo", "--redis-url", "http://localhost:6379"],
        BAD_INPUT,
        "Error: --redis-url: unsupported scheme: use redis://, rediss://, unix://, "
        "redis+cluster://, redis+sentinel:// or memory://",
    ),
    Mistake(
        "cleanup-env-url-is-a-password",
        ["cleanup", "-n", "demo"],
        BAD_INPUT,
        "Error: REDIS_URL: not a URL: it has no scheme such as redis:// (10 characters, "
        "not shown; is it only a password, or the wrong Secret key?)",
        env={"REDIS_URL": "hunter2-pw"},
    ),
    Mistake(
        "cleanup-in-the-cronjob-names-the-secret",
        ["cleanup", "-n", "demo"],
        BAD_INPUT,
        "Error: REDIS_URL (Secret db-creds, key password, from spec.store.urlSecretRef): "
        "not a URL: it has no scheme such as redis:// (26 characters, not shown; is it only "
        "a password, or the wrong Secret key?)",
        env={
            "REDIS_URL": "TOPSECRET-db-password-9f8e",
            "HOURGLASS_REDIS_URL_SOURCE": url_source_label("db-creds", "password"),
        },
    ),
    Mistake(
        "cleanup-cluster-host-without-port",
        ["cleanup", "-n", "demo", "--redis-url", "redis+cluster://a:7000,b/0"],
        BAD_INPUT,
        "Error: --redis-url: each host needs a port, as in host:6379 "
        "(a redis+cluster:// URL for host a)",
    ),
    Mistake(
        "cleanup-no-url",
        ["cleanup", "-n", "demo"],
        BAD_INPUT,
        "Error: Missing option '--redis-url'.",
    ),
    Mistake(
        "cleanup-ttl-env-not-a-duration",
        ["cleanup", "-n", "demo", "--redis-url", "memory://"],
        BAD_INPUT,
        "Error: SESSION_TTL_SECONDS: 'soon' is not a duration: use a number with a unit "
        "(ns, us, ms, s, m, h, d) such as '500ms', '1m30s', '2h', or plain seconds",
        env={"SESSION_TTL_SECONDS": "soon"},
    ),
    Mistake(
        "cleanup-policy-bad-quantity",
        ["cleanup", "-n", "demo", "--redis-url", "memory://", "--policy", "p.yaml"],
        BAD_INPUT,
        "Error: p.yaml: spec.maxMemory: '12XB' is not a quantity: use a number with an "
        "optional suffix (Ki, Mi, Gi, Ti, k, M, G, T), such as '512Mi'",
        files={"p.yaml": _policy("  maxMemory: 12XB\n")},
    ),
    Mistake(
        "cleanup-bad-namespace-flag",
        ["cleanup", "-n", "bad/ns", "--redis-url", "memory://"],
        BAD_INPUT,
        "Error: --namespace: allowed characters are A-Z a-z 0-9 _ . -, starting alphanumeric",
    ),
    Mistake(
        "cleanup-bad-namespace-variable",
        ["cleanup", "--redis-url", "memory://"],
        BAD_INPUT,
        "Error: HOURGLASS_NAMESPACE: allowed characters are A-Z a-z 0-9 _ . -, starting "
        "alphanumeric",
        env={"HOURGLASS_NAMESPACE": "bad/ns"},
    ),
    Mistake(
        "cleanup-batch-size-zero",
        ["cleanup", "-n", "demo", "--redis-url", "memory://", "--batch-size", "0"],
        BAD_INPUT,
        "Error: Invalid value for '--batch-size': 0 is not in the range 1<=x<=10000.",
    ),
    # --- hourglass validate: durations, quantities, cron, names -------------------------
    Mistake(
        "validate-duration",
        ["validate", "specs"],
        PROBLEMS,
        "specs/p.yaml:7: TimeoutProfile/base: spec.timeouts.llmCall: '10x' is not a "
        "duration: use a number with a unit (ns, us, ms, s, m, h, d) such as '500ms', "
        "'1m30s', '2h', or plain seconds",
        files={"specs/p.yaml": _profile("base", "  timeouts:\n    llmCall: 10x\n")},
    ),
    Mistake(
        "validate-negative-duration",
        ["validate", "specs"],
        PROBLEMS,
        "specs/p.yaml:7: TimeoutProfile/base: spec.timeouts.llmCall: must be positive, got '-5s'",
        files={"specs/p.yaml": _profile("base", "  timeouts:\n    llmCall: -5s\n")},
    ),
    Mistake(
        "validate-quantity",
        ["validate", "specs"],
        PROBLEMS,
        "specs/s.yaml:6: SessionPolicy/default: spec.maxMemory: '12XB' is not a quantity:"
        " use a number with an optional suffix (Ki, Mi, Gi, Ti, k, M, G, T), such as "
        "'512Mi'",
        files={"specs/s.yaml": _policy("  maxMemory: 12XB\n")},
    ),
    Mistake(
        "validate-cron",
        ["validate", "specs"],
        PROBLEMS,
        "specs/s.yaml:7: SessionPolicy/default: spec.cleanup.schedule: '61 * * * *' is "
        "not a cron schedule Kubernetes accepts: minute: 61 is outside 0-59",
        files={"specs/s.yaml": _policy('  cleanup:\n    schedule: "61 * * * *"\n')},
    ),
    Mistake(
        "validate-misspelled-field",
        ["validate", "specs"],
        PROBLEMS,
        "specs/p.yaml:6: TimeoutProfile/base: spec.pollling: unknown field; did you mean "
        "'polling'?",
        files={"specs/p.yaml": _profile("base", "  pollling:\n    interval: 1s\n")},
    ),
    Mistake(
        "validate-misspelled-extend",
        ["validate", "specs"],
        PROBLEMS,
        "specs/p.yaml:14: TimeoutProfile/dev: spec.extend: unknown field; did you mean 'extends'?",
        files={"specs/p.yaml": BASE + "---\n" + _profile("dev", "  extend: base\n")},
    ),
    Mistake(
        "validate-misspelled-maxmemory",
        ["validate", "specs"],
        PROBLEMS,
        "specs/s.yaml:6: SessionPolicy/default: spec.maxmemory: unknown field; did you "
        "mean 'maxMemory'?",
        files={"specs/s.yaml": _policy("  maxmemory: 1Gi\n")},
    ),
    Mistake(
        "validate-extends-misspelled-parent",
        ["validate", "specs"],
        PROBLEMS,
        "specs/p.yaml:14: TimeoutProfile/dev: spec.extends: parent TimeoutProfile 'bsae' "
        "does not exist in namespace 'default'; did you mean 'base'?",
        files={"specs/p.yaml": BASE + "---\n" + _profile("dev", "  extends: bsae\n")},
    ),
    Mistake(
        "validate-empty-folder",
        ["validate", "specs"],
        PROBLEMS,
        "no TimeoutProfile or SessionPolicy under specs (pass --allow-empty if that is expected)",
        files={"specs/README.md": "no specs here\n"},
    ),
    Mistake(
        "validate-counts-an-invalid-resource",
        ["validate", "specs"],
        PROBLEMS,
        "1 resource(s) checked: 1 problem(s)",
        files={"specs/p.yaml": _profile("base", "  timeouts:\n    llmCall: 10x\n")},
    ),
    Mistake(
        "validate-counts-every-document",
        ["validate", "specs"],
        PROBLEMS,
        "3 resource(s) checked (1 other document(s) skipped): 1 problem(s)",
        files={
            "specs/p.yaml": BASE
            + "---\n"
            + _profile("dev", "  extends: base\n")
            + "---\n"
            + _profile("bad", "  timeouts:\n    llmCall: 10x\n")
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n"
        },
    ),
    Mistake(
        "validate-missing-path",
        ["validate", "nothere"],
        PROBLEMS,
        "nothere: no such file or folder",
    ),
    # --- hourglass local ---------------------------------------------------------------
    Mistake(
        "local-bad-redis-url",
        ["local", "specs", "--once", "--redis-url", "redis://localhost:99999/0"],
        BAD_INPUT,
        "Error: --redis-url: the port must be a number from 1 to 65535 "
        "(a redis:// URL for host localhost)",
        files={"specs/p.yaml": BASE},
    ),
    Mistake(
        "local-first-render-fails",
        ["local", "specs", "--state-dir", "state"],
        PROBLEMS,
        "hourglass local: the first render failed, nothing is served (fix the files above "
        "and start again)",
        files={"specs/p.yaml": _profile("base", "  timeouts:\n    llmCall: 10x\n")},
    ),
]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("mistake", CLI_MISTAKES, ids=lambda m: m.id)
def test_each_cli_mistake_gets_its_exact_answer(
    mistake: Mistake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, mistake.files)
    monkeypatch.chdir(tmp_path)
    for variable in (
        "REDIS_URL",
        "SESSION_TTL_SECONDS",
        "HOURGLASS_CONFIG_DIR",
        "HOURGLASS_NAMESPACE",
        SOURCE_VARIABLE,
    ):
        monkeypatch.delenv(variable, raising=False)
    result = CliRunner().invoke(cli, mistake.args, env=mistake.env)
    output = result.stdout + result.stderr
    assert isinstance(result.exception, SystemExit), output  # an exception is a traceback
    assert "Traceback" not in output
    assert result.exit_code == mistake.code, output
    assert mistake.line in output.splitlines(), output


@dataclass(frozen=True)
class LibraryMistake:
    id: str
    call: Callable[[], Any]
    message: str
    error: type[Exception] = ConfigError


LIBRARY_MISTAKES = [
    LibraryMistake(
        "from-url-port",
        lambda: SessionManager.from_url("redis://localhost:99999/0"),
        "url: the port must be a number from 1 to 65535 (a redis:// URL for host localhost)",
    ),
    LibraryMistake(
        "from-url-not-a-url",
        lambda: SessionManager.from_url("localhost:6379"),
        (
            "url: not a URL: it has no scheme such as redis:// (14 characters, not shown;"
            " is it only a password, or the wrong Secret key?)"
        ),
    ),
    LibraryMistake(
        "from-env-ipv6",
        lambda: SessionManager.from_env({"REDIS_URL": "redis://[::1/0"}),
        (
            "REDIS_URL: an IPv6 address is not closed with ']', as in "
            "redis://[::1]:6379/0 (a redis:// URL)"
        ),
    ),
    LibraryMistake(
        "from-env-database",
        lambda: SessionManager.from_env({"REDIS_URL": "redis://host:6379/abc"}),
        (
            "REDIS_URL: the database (the path) must be a number, as in "
            "redis://host:6379/0 (a redis:// URL for host host)"
        ),
    ),
    LibraryMistake(
        "from-env-explicit-url-wins-and-is-named",
        lambda: SessionManager.from_env({"REDIS_URL": "memory://"}, url="redis://h:0/0"),
        "url: the port must be a number from 1 to 65535 (a redis:// URL for host h)",
    ),
    LibraryMistake(
        "from-env-ttl",
        lambda: SessionManager.from_env({"SESSION_TTL_SECONDS": "soon"}),
        (
            "SESSION_TTL_SECONDS: 'soon' is not a duration: use a number with a unit (ns,"
            " us, ms, s, m, h, d) such as '500ms', '1m30s', '2h', or plain seconds"
        ),
    ),
    LibraryMistake(
        "from-url-negative-ttl",
        lambda: SessionManager.from_url("memory://", ttl="-5s"),
        "ttl: must be positive, got '-5s'",
    ),
    LibraryMistake(
        "from-url-quantity",
        lambda: SessionManager.from_url("memory://", max_memory="12XB"),
        (
            "max_memory: '12XB' is not a quantity: use a number with an optional suffix "
            "(Ki, Mi, Gi, Ti, k, M, G, T), such as '512Mi'"
        ),
    ),
    LibraryMistake(
        "duration",
        lambda: parse_duration("1h30", field="llmCall"),
        (
            "llmCall: '1h30' is not a duration: use a number with a unit (ns, us, ms, s, "
            "m, h, d) such as '500ms', '1m30s', '2h', or plain seconds"
        ),
    ),
    LibraryMistake(
        "quantity",
        lambda: parse_quantity("5 GB", field="maxMemory"),
        (
            "maxMemory: '5 GB' is not a quantity: use a number with an optional suffix "
            "(Ki, Mi, Gi, Ti, k, M, G, T), such as '512Mi'"
        ),
    ),
    LibraryMistake(
        "cron-fields",
        lambda: check_schedule("* * * *"),
        "expected exactly 5 fields, found 4",
        CronError,
    ),
    LibraryMistake(
        "cron-range", lambda: check_schedule("0 25 * * *"), "hour: 25 is outside 0-23", CronError
    ),
    LibraryMistake(
        "hourglass-env-unknown",
        lambda: TimeoutManager(config_dir="/nonexistent", environ={"HOURGLASS_ENV": "qa"}),
        "HOURGLASS_ENV: 'qa' is not a built-in profile (base, dev, prod, staging)",
    ),
]


@pytest.mark.parametrize("mistake", LIBRARY_MISTAKES, ids=lambda m: m.id)
def test_each_library_mistake_raises_its_exact_error(mistake: LibraryMistake) -> None:
    with pytest.raises(mistake.error) as raised:
        mistake.call()
    assert str(raised.value) == mistake.message


def test_a_misspelled_profile_without_a_file_is_reported_not_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = TimeoutManager(config_dir="/nonexistent", environ={"HOURGLASS_PROFILE": "prdo"})
    expected = (
        "HOURGLASS_PROFILE: 'prdo' is not a built-in profile; did you mean 'prod'? "
        "(built-in: base, dev, prod, staging); a mounted hourglass.yaml may define it"
    )
    assert manager.current.name == "dev"  # the agent carries on with the built-in
    assert manager.last_error == expected
    assert expected in caplog.text


def test_a_profile_missing_from_the_mounted_file_names_the_variable_not_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = CliRunner().invoke(cli, ["render", str(tmp_path / "p.yaml"), "--content-only"])
    (tmp_path / "p.yaml").write_text(BASE)
    rendered = CliRunner().invoke(cli, ["render", str(tmp_path / "p.yaml"), "--content-only"])
    assert rendered.exit_code == 0, result.output + rendered.output
    (tmp_path / "hourglass.yaml").write_text(rendered.stdout)
    manager = TimeoutManager(config_dir=tmp_path, environ={"HOURGLASS_PROFILE": "bsae"})
    assert manager.current.source == "builtin"
    assert manager.last_error == (
        f"HOURGLASS_PROFILE: no profile 'bsae' in {tmp_path / 'hourglass.yaml'}; "
        "did you mean 'base'? (available: base)"
    )
    assert "is invalid" not in caplog.text


def test_the_cli_answers_come_from_the_real_console_script_too(tmp_path: Path) -> None:
    """The table above runs in-process; here the installed script, as a user runs it."""
    exe = shutil.which("hourglass", path=str(Path(sys.executable).parent))
    assert exe
    for url in ("redis://localhost:99999/0", "redis://u:pw@localhost:notaport/0", "redis://[::1/0"):
        result = subprocess.run(
            [exe, "cleanup", "-n", "demo", "--redis-url", url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == BAD_INPUT, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines()[-1].startswith("Error: --redis-url: ")


def _unsearchable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Stands in for ``chmod 000 folder`` as a non-root user: these tests run as root here,
    whom permission bits do not stop, so ``os.stat`` under it fails as the kernel would."""
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(os.fsdecode(path)).is_relative_to(folder) and Path(os.fsdecode(path)) != folder:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)


def test_an_unreadable_config_folder_is_a_clear_error_and_agents_carry_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "hourglass"
    folder.mkdir()
    _unsearchable(monkeypatch, folder)
    manager = TimeoutManager(config_dir=folder, environ={})
    assert manager.current.source == "builtin"
    assert manager.last_error == f"hourglass.yaml: cannot read {folder}: Permission denied"
    with pytest.raises(ConfigError) as raised:
        SessionManager.from_env({"HOURGLASS_CONFIG_DIR": str(folder)})
    assert str(raised.value) == f"{folder / 'hourglass.yaml'}: cannot read: Permission denied"


def test_a_bug_is_one_line_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in bug: `validate`'s loader raising with a secret in its message."""
    import hourglass_cli.validate

    def broken(*_args: object) -> None:
        raise RuntimeError("hunter2-pw")

    monkeypatch.setattr(hourglass_cli.validate, "load_specs", broken)
    monkeypatch.setattr(sys, "argv", ["hourglass", "validate", "config/"])
    monkeypatch.delenv("HOURGLASS_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 70
    err = capsys.readouterr().err
    assert err == (
        "Error: unexpected RuntimeError: a bug in hourglass, not in your input (run again "
        "with HOURGLASS_DEBUG=1 for the traceback, and report it)\n"
    )
    monkeypatch.setenv("HOURGLASS_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main()


def test_cleanup_help_says_where_the_url_comes_from() -> None:
    result = CliRunner().invoke(cli, ["cleanup", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "REDIS_URL" in result.stdout
    assert "2 bad input" in " ".join(result.stdout.split())
