"""`hourglass local` as a user runs it: a real subprocess, a real embedded Valkey,
real files swapped the kubelet way, real inotify."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agent_lib.config import parse_config
from agent_lib.sessions.manager import SessionManager

REPO = Path(__file__).resolve().parents[2]
HOURGLASS = str(Path(sys.executable).parent / "hourglass")
WAIT_S = 15.0


def _run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOURGLASS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _wait_for(predicate: object, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _env_lines(stderr: str) -> dict[str, str]:
    """The two env lines, which ``--once`` prints on stderr (its stdout is the JSON)."""
    names = ("HOURGLASS_CONFIG_DIR=", "REDIS_URL=")
    lines = [line for line in stderr.splitlines() if line.startswith(names)]
    return dict(line.split("=", 1) for line in lines)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    for name in ("timeout_profiles.yaml", "session_settings.yaml", "monitoring_config.yaml"):
        shutil.copy(REPO / "config" / name, folder / name)
    return folder


class LocalProcess:
    """`hourglass local` in live mode, stopped by its PID at the end of the test."""

    def __init__(self, specs: Path, state: Path, *extra: str) -> None:
        self.state = state
        self.stderr_path = state.parent / "local.err"
        self.stdout_path = state.parent / "local.out"
        self.process = subprocess.Popen(
            [HOURGLASS, "local", str(specs), "--state-dir", str(state), *extra],
            stdout=self.stdout_path.open("w"),
            stderr=self.stderr_path.open("w"),
        )
        _wait_for(lambda: (state / "env").exists() or self.process.poll() is not None, "env")
        assert self.process.poll() is None, self.stderr_path.read_text()
        self.env = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines())

    @property
    def config_file(self) -> Path:
        return Path(self.env["HOURGLASS_CONFIG_DIR"]) / "hourglass.yaml"

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def local_factory(tmp_path: Path) -> Iterator[object]:
    started: list[LocalProcess] = []

    def start(specs: Path, *extra: str) -> LocalProcess:
        process = LocalProcess(specs, tmp_path / "state", *extra)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_once_renders_what_the_operator_renders_and_exits(specs: Path, tmp_path: Path) -> None:
    result = _run("local", str(specs), "--state-dir", str(tmp_path / "st"), "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    env = _env_lines(result.stderr)
    config_dir = Path(env["HOURGLASS_CONFIG_DIR"])
    assert config_dir == tmp_path / "st" / "config"
    summary = json.loads(result.stdout)
    assert summary["namespace"] == "local"
    assert summary["defaultProfile"] == "dev"
    assert set(summary["profiles"]) == {"base", "dev", "staging", "prod"}
    assert summary["cleanup"]["complete"] is True
    assert summary["errors"] == []

    # kubelet's layout: a ..data symlink to a timestamped folder, the key a symlink into it
    assert (config_dir / "..data").is_symlink()
    assert os.readlink(config_dir / "hourglass.yaml") == "..data/hourglass.yaml"
    rendered = _run("render", str(specs), "-n", "local", "--content-only", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert (config_dir / "hourglass.yaml").read_text() == rendered.stdout
    assert parse_config(rendered.stdout).profiles["prod"].timeouts["llmCall"] == 45

    # everything it started is gone
    assert not (tmp_path / "st" / "env").exists()
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(env["REDIS_URL"]) as client:
        client.ping()


def test_once_with_an_invalid_spec_names_file_line_and_field(specs: Path, tmp_path: Path) -> None:
    profiles = specs / "timeout_profiles.yaml"
    profiles.write_text(profiles.read_text().replace("llmCall: 45s", "llmCall: soon"))
    result = _run("local", str(specs), "--state-dir", str(tmp_path / "st"), "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert "timeout_profiles.yaml:" in result.stderr
    assert "TimeoutProfile/prod: spec.timeouts.llmCall:" in result.stderr
    assert not (tmp_path / "st" / "config" / "hourglass.yaml").exists()


def test_files_naming_several_namespaces_need_one_picked(tmp_path: Path) -> None:
    samples = REPO / "manifests" / "samples"
    if not samples.is_dir():
        pytest.skip("manifests/samples not present")
    result = _run(
        "local", str(samples), "--state-dir", str(tmp_path / "st"), "--once", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "pick one with --namespace" in result.stderr


def test_once_cleans_expired_sessions_on_an_external_redis(
    specs: Path, tmp_path: Path, redis_url: str
) -> None:
    policy = specs / "session_settings.yaml"
    policy.write_text(policy.read_text().replace("ttl: 30m", "ttl: 1s"))
    first = _run(
        "local", str(specs), "--state-dir", str(tmp_path / "st"), "--redis-url", redis_url,
        "--namespace", "cleanup-test", "--once", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    environ = {
        "HOURGLASS_CONFIG_DIR": str(tmp_path / "st" / "config"),
        "REDIS_URL": redis_url,
    }

    async def open_sessions() -> int:
        async with SessionManager.from_env(environ) as sessions:
            for user in range(12):
                await sessions.create({"user": user})
            return await sessions.count()

    assert asyncio.run(open_sessions()) == 12
    time.sleep(1.3)
    second = _run(
        "local", str(specs), "--state-dir", str(tmp_path / "st"), "--redis-url", redis_url,
        "--namespace", "cleanup-test", "--once", cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["namespace"] == "cleanup-test"
    assert summary["cleanup"]["expired"] == 12
    assert summary["sessions"] == 0
    assert summary["redisUrl"] == redis_url


def test_live_edit_reloads_invalid_edit_keeps_last_good(specs: Path, local_factory) -> None:
    local = local_factory(specs)
    first = local.config_file.read_text()
    first_target = os.readlink(local.config_file.parent / "..data")
    assert parse_config(first).profiles["prod"].timeouts["llmCall"] == 45

    profiles = specs / "timeout_profiles.yaml"
    profiles.write_text(profiles.read_text().replace("llmCall: 45s", "llmCall: 40s"))
    _wait_for(lambda: "llmCall: 40" in local.config_file.read_text(), "the edit to be published")
    second = local.config_file.read_text()
    assert parse_config(second).profiles["prod"].timeouts["llmCall"] == 40
    assert os.readlink(local.config_file.parent / "..data") != first_target

    profiles.write_text(profiles.read_text().replace("llmCall: 40s", "llmCall: -4s"))
    _wait_for(lambda: "invalid edit" in local.stderr(), "the invalid edit to be reported")
    assert "TimeoutProfile/prod: spec.timeouts.llmCall:" in local.stderr()
    assert local.config_file.read_text() == second

    # a non-spec YAML beside the specs is not a spec: editing it changes nothing
    (specs / "monitoring_config.yaml").write_text("groups: []\n")
    profiles.write_text(profiles.read_text().replace("llmCall: -4s", "llmCall: 41s"))
    _wait_for(lambda: "llmCall: 41" in local.config_file.read_text(), "the fix to be published")


def test_a_revert_in_local_mode_reaches_a_watching_agent(specs: Path, local_factory) -> None:
    """45s, 40s, then 45s again: before revisions the agent stayed on 40 (the revert's
    content had been seen before). Each version now carries a growing revision."""
    from agent_lib import TimeoutManager
    from agent_lib.config import REVISION_KEY

    local = local_factory(specs)
    folder = local.config_file.parent
    profiles = specs / "timeout_profiles.yaml"
    revisions = [int((folder / REVISION_KEY).read_text())]
    with TimeoutManager(folder, "prod", environ={}) as agent:
        assert agent.get("llmCall") == 45
        for old, new in (("45s", "40s"), ("40s", "45s")):
            profiles.write_text(profiles.read_text().replace(f"llmCall: {old}", f"llmCall: {new}"))
            seconds = float(new.rstrip("s"))
            _wait_for(lambda s=seconds: agent.get("llmCall") == s, f"the agent on {new}")
            revisions.append(int((folder / REVISION_KEY).read_text()))
        assert agent.last_error is None and agent.current.revision == revisions[-1]
    assert revisions == sorted(set(revisions)), revisions


def test_sigterm_stops_valkey_and_sessions_survive_a_restart(
    specs: Path, local_factory, tmp_path: Path
) -> None:
    local = local_factory(specs)
    valkey_pid = int((local.state / "valkey" / "valkey.pid").read_text())
    environ = dict(local.env)

    async def create() -> str:
        async with SessionManager.from_env(environ) as sessions:
            return (await sessions.create({"step": 1})).id

    session_id = asyncio.run(create())
    assert local.stop() == 0
    assert not _pid_alive(valkey_pid)
    assert not (local.state / "env").exists()

    again = local_factory(specs)
    assert again.env["REDIS_URL"] == environ["REDIS_URL"]  # same port when it is free

    async def read() -> object:
        async with SessionManager.from_env(dict(again.env)) as sessions:
            session = await sessions.get(session_id)
            return None if session is None else session.data

    assert asyncio.run(read()) == {"step": 1}


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_live_mode_cleans_on_the_policy_schedule(specs: Path, local_factory) -> None:
    policy = specs / "session_settings.yaml"
    text = policy.read_text().replace("ttl: 30m", "ttl: 1s")
    policy.write_text(text.replace('schedule: "*/5 * * * *"', 'schedule: "* * * * *"'))
    local = local_factory(specs)

    async def create() -> None:
        async with SessionManager.from_env(dict(local.env)) as sessions:
            for user in range(5):
                await sessions.create({"user": user})

    asyncio.run(create())
    _wait_for(lambda: "cleanup: scanned=5 expired=5" in local.stderr(), "a scheduled run", 75)


def test_a_state_dir_inside_the_spec_folder_is_not_read_as_specs(specs: Path) -> None:
    state = specs / ".hourglass"
    for _ in range(2):  # the second run finds the first run's rendered hourglass.yaml there
        result = _run("local", str(specs), "--state-dir", str(state), "--once", cwd=specs)
        assert result.returncode == 0, result.stderr
    assert (state / "config" / "hourglass.yaml").is_file()


def test_without_a_session_policy_cleanup_is_skipped(specs: Path, tmp_path: Path) -> None:
    (specs / "session_settings.yaml").unlink()
    result = _run("local", str(specs), "--state-dir", str(tmp_path / "st"), "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cleanup"] is None
    assert "cleanup skipped: no SessionPolicy" in result.stderr


def test_on_a_terminal_it_shows_the_live_panel_and_ctrl_c_stops_everything(
    specs: Path, tmp_path: Path
) -> None:
    import pty
    import select

    primary, secondary = pty.openpty()
    state = tmp_path / "state"
    process = subprocess.Popen(
        [HOURGLASS, "local", str(specs), "--state-dir", str(state)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(secondary)
    screen = b""
    try:
        _wait_for(lambda: (state / "valkey" / "valkey.pid").exists(), "valkey")
        valkey_pid = int((state / "valkey" / "valkey.pid").read_text())
        deadline = time.monotonic() + WAIT_S
        while b"Ctrl-C stops" not in screen and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.1)[0]:
                screen += os.read(primary, 65536)
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.1)[0]:  # keep draining: a full pty blocks
                with contextlib.suppress(OSError):
                    screen += os.read(primary, 65536)
        assert process.wait(timeout=1) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    text = screen.decode(errors="replace")
    for expected in ("HOURGLASS_CONFIG_DIR=", "REDIS_URL=", "last reload", "sessions", "prod"):
        assert expected in text
    assert not _pid_alive(valkey_pid)


def test_a_later_run_with_bad_specs_serves_nothing_of_an_earlier_run(
    specs: Path, tmp_path: Path
) -> None:
    """Only the inputs of this run are ever served: before, the second run logged
    "invalid edit (kept ...)", kept publishing the first run's profiles and printed the
    env lines as if ready."""
    state = tmp_path / "st"
    first = _run("local", str(specs), "--state-dir", str(state), "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.yaml").write_text(
        "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\n"
        "metadata:\n  name: x\nspec:\n  timeouts:\n    llmCall: soon\n"
    )
    second = _run("local", str(bad), "--state-dir", str(state), cwd=tmp_path, timeout=30)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "render failed:" in second.stderr
    assert "invalid edit" not in second.stderr
    assert "the first render failed, nothing is served" in second.stderr
    assert "HOURGLASS_CONFIG_DIR=" not in second.stdout + second.stderr
    assert "REDIS_URL=" not in second.stdout + second.stderr
    assert not (state / "env").exists()


def test_once_prints_json_alone_on_stdout(specs: Path, tmp_path: Path) -> None:
    result = _run("local", str(specs), "--state-dir", str(tmp_path / "st"), "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["configDir"] == str(tmp_path / "st" / "config")
    assert set(_env_lines(result.stderr)) == {"HOURGLASS_CONFIG_DIR", "REDIS_URL"}


def test_two_runs_never_share_one_state_dir(specs: Path, local_factory, tmp_path: Path) -> None:
    local = local_factory(specs)
    second = _run("local", str(specs), "--state-dir", str(local.state), "--once", cwd=tmp_path)
    assert second.returncode == 1
    assert second.stderr.strip().endswith(
        f"--state-dir {local.state} is in use by another 'hourglass local'; "
        "stop it or pass another --state-dir"
    )
    assert (local.state / "env").exists()  # the first run is untouched


def test_a_password_in_redis_url_is_masked_in_what_local_prints(
    specs: Path, tmp_path: Path, redis_url: str
) -> None:
    with_password = redis_url.replace("redis://", "redis://user:hunter2-pw@")
    result = _run(
        "local", str(specs), "--state-dir", str(tmp_path / "st"), "--once",
        "--redis-url", with_password, cwd=tmp_path,
    )  # fmt: skip
    assert "hunter2-pw" not in result.stdout + result.stderr
    masked = redis_url.replace("redis://", "redis://user:***@")
    assert json.loads(result.stdout)["redisUrl"] == masked
    assert f"REDIS_URL={masked}" in result.stderr.splitlines()
