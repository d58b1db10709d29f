"""The reference agent app against local mode: a real `hourglass local` (embedded
Valkey, kubelet-style config folder), the app as a real process, real HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hourglass_cli.valkey_server import free_port

REPO = Path(__file__).resolve().parents[2]
HOURGLASS = str(Path(sys.executable).parent / "hourglass")
WAIT_S = 15.0


def _wait_for(predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


class App:
    """`python -m examples.agent_app.main` on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "examples.agent_app.main", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
        )
        _wait_for(self._up, "the app to serve")

    def _up(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return self.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        if path == "/metrics":
            return status, raw.decode()
        return status, json.loads(raw) if raw else None


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    for name in ("timeout_profiles.yaml", "session_settings.yaml"):
        shutil.copy(REPO / "config" / name, folder / name)
    return folder


@pytest.fixture
def local_env(specs: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`hourglass local` in live mode; yields the environment an agent gets from it."""
    state = tmp_path / "state"
    process = subprocess.Popen(
        [HOURGLASS, "local", str(specs), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "local.err").open("w"),
    )
    try:
        _wait_for(lambda: (state / "env").exists() or process.poll() is not None, "local mode")
        assert process.poll() is None, (tmp_path / "local.err").read_text()
        lines = (state / "env").read_text().splitlines()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOURGLASS_", "AGENT_"))}
        env.update(line.split("=", 1) for line in lines)
        env.pop("SESSION_TTL_SECONDS", None)
        yield env
    finally:
        assert _stop(process) == 0


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Callable[..., App]]:
    started: list[App] = []

    def start(env: dict[str, str]) -> App:
        app = App(env, tmp_path / "app.log")
        started.append(app)
        return app

    yield start
    for app in started:
        _stop(app.process)


def test_sessions_survive_an_app_restart(local_env: dict[str, str], app_factory) -> None:
    app = app_factory(local_env)
    status, opened = app.call("POST", "/sessions", {"user": "u-1"})
    assert status == 201
    sid = opened["id"]
    assert app.call("POST", f"/sessions/{sid}/messages", {"message": "hello"})[0] == 200
    assert _stop(app.process) == 0

    again = app_factory(local_env)
    status, session = again.call("GET", f"/sessions/{sid}")
    assert status == 200
    assert session["data"]["user"] == "u-1"
    assert [turn["message"] for turn in session["data"]["history"]] == ["hello"]
    status, reply = again.call("POST", f"/sessions/{sid}/messages", {"message": "/count a b"})
    assert (status, reply["tool"]) == (200, "count: 2 words")
    assert again.call("DELETE", f"/sessions/{sid}")[0] == 204
    assert again.call("GET", f"/sessions/{sid}")[0] == 404
    assert again.call("GET", "/sessions/not*valid")[0] == 400


def test_an_edited_profile_applies_without_restart_and_expiry_is_counted(
    local_env: dict[str, str], specs: Path, app_factory
) -> None:
    app = app_factory(local_env)
    before = app.call("GET", "/timeouts")[1]
    assert before["profile"] == "dev"
    assert before["timeouts"]["llmCall"] == 300
    sid = app.call("POST", "/sessions", {})[1]["id"]
    assert (
        app.call("POST", f"/sessions/{sid}/messages", {"message": "a", "llm_delay": 0.4})[0] == 200
    )

    profiles = specs / "timeout_profiles.yaml"
    profiles.write_text(profiles.read_text().replace("llmCall: 5m", "llmCall: 200ms"))
    _wait_for(lambda: app.call("GET", "/timeouts")[1]["timeouts"]["llmCall"] == 0.2, "the reload")
    assert app.call("GET", "/timeouts")[1]["hash"] != before["hash"]

    status, body = app.call("POST", f"/sessions/{sid}/messages", {"message": "b", "llm_delay": 0.4})
    assert status == 504
    assert body["timeout"] == "llmCall"
    assert body["budget_s"] == 0.2
    metrics = app.call("GET", "/metrics")[1]
    assert 'hourglass_timeouts_total{name="llmCall"} 1.0' in metrics
    assert 'hourglass_sessions{namespace="local"} 1.0' in metrics
    assert 'hourglass_sessions_max{namespace="local"} 10000.0' in metrics
    assert 'agent_app_requests_total{route="/sessions/{sid}/messages",status="504"} 1.0' in metrics
    # the failed turn was not stored; the session is intact
    history = app.call("GET", f"/sessions/{sid}")[1]["data"]["history"]
    assert [turn["message"] for turn in history] == ["a"]


def test_legacy_flag_and_old_variables(local_env: dict[str, str], app_factory) -> None:
    legacy = app_factory({**local_env, "HOURGLASS_LEGACY_TIMEOUTS": "1"})
    shown = legacy.call("GET", "/timeouts")[1]
    assert shown["timeouts"]["llmCall"] == 30
    assert shown["origins"]["llmCall"] == "override"
    assert legacy.call("GET", "/healthz")[1]["legacyTimeouts"] is True
    _stop(legacy.process)

    old = app_factory({**local_env, "AGENT_LLM_TIMEOUT": "7", "AGENT_TOOL_TIMEOUT": "9"})
    shown = old.call("GET", "/timeouts")[1]
    assert (shown["timeouts"]["llmCall"], shown["origins"]["llmCall"]) == (7, "env")
    assert shown["timeouts"]["toolCall"] == 9
    assert "AGENT_LLM_TIMEOUT is deprecated; set HOURGLASS_TIMEOUT_LLM_CALL" in old.log.read_text()
    _stop(old.process)

    both = app_factory({**local_env, "AGENT_LLM_TIMEOUT": "7", "HOURGLASS_TIMEOUT_LLM_CALL": "11s"})
    assert both.call("GET", "/timeouts")[1]["timeouts"]["llmCall"] == 11
