"""No secret in any output: a known secret fed through every error path of the store URL.

A Redis URL usually comes from a Secret (the SessionPolicy's ``store.urlSecretRef``), so
a wrong Secret key can put any secret where the URL should be, and a right one carries
a password. Each case below places ``SECRET`` somewhere in a URL (the whole value, the
password, the user, the port, the database, the query, the host list) and runs it
through ``hourglass cleanup`` (flag and ``REDIS_URL``, text and ``--json``, and the
termination log), ``SessionManager.from_url``/``from_env`` (the exception, its chained
causes and the logs) and ``hourglass local --once``; no output may contain ``SECRET``.
The operator's and the agent's API-client paths are covered by the least-privilege tests.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_lib.errors import HourglassError
from agent_lib.sessions.manager import SessionManager
from tests.fixtures.redis_server import RedisProcess

SECRET = "TOPSECRET-db-password-9f8e"
REPO = Path(__file__).resolve().parents[2]
HOURGLASS = str(Path(sys.executable).parent / "hourglass")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A real server whose password is not the secret: every login with SECRET fails."""
    server = RedisProcess(tmp_path_factory.mktemp("guarded"), password="the-right-one").start()
    try:
        yield server
    finally:
        server.stop()


def _urls(port: int) -> dict[str, str]:
    """Every place a secret can sit in a URL, each reaching a different error path."""
    return {
        "whole-value": SECRET,
        "whole-value-with-colon": f"{SECRET}:6379",
        "wrong-password": f"redis://:{SECRET}@127.0.0.1:{port}/0",
        "wrong-user-and-password": f"redis://{SECRET}:{SECRET}@127.0.0.1:{port}/0",
        "password-as-user": f"redis://{SECRET}@127.0.0.1:{port}/0",
        "password-in-query": f"redis://127.0.0.1:{port}/0?password={SECRET}",
        "unreachable": f"redis://:{SECRET}@127.0.0.1:1/0",
        "bad-port": f"redis://u:{SECRET}@localhost:notaport/0",
        "port-out-of-range": f"redis://:{SECRET}@localhost:99999/0",
        "secret-as-port": f"redis://localhost:{SECRET}/0",
        "unclosed-ipv6": f"redis://u:{SECRET}@[::1/0",
        "secret-as-database": f"redis://localhost:6379/{SECRET}",
        "bad-query-value": f"redis://:{SECRET}@localhost:6379/0?socket_timeout={SECRET}",
        "unknown-scheme": f"http://u:{SECRET}@localhost:6379",
        "secret-as-scheme": f"{SECRET}://localhost:6379",
        "sentinel-without-service": f"redis+sentinel://:{SECRET}@localhost:26379",
        "cluster-bad-host": f"redis+cluster://:{SECRET}@localhost:7000,{SECRET}/0",
    }


def _cases(port: int) -> list[tuple[str, str]]:
    return sorted(_urls(port).items())


def _assert_clean(where: str, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text, f"{where} printed the secret:\n{text}"


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOURGLASS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )


def _base_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "HOURGLASS_"))}
    env["HOURGLASS_CONFIG_DIR"] = str(tmp_path / "no-config")
    return env


def test_hourglass_cleanup_never_prints_the_secret(guarded: RedisProcess, tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    for name, url in _cases(guarded.port):
        log.write_text("")
        env = _base_env(tmp_path) | {"HOURGLASS_TERMINATION_LOG": str(log)}
        flag = _cli("cleanup", "-n", "demo", "--redis-url", url, env=env, cwd=tmp_path)
        from_env = _cli(
            "cleanup", "-n", "demo", "--json", env=env | {"REDIS_URL": url}, cwd=tmp_path
        )
        for result in (flag, from_env):
            assert result.returncode in (1, 2), f"{name}: {result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr, f"{name}: {result.stderr}"
            _assert_clean(f"cleanup ({name})", result.stdout, result.stderr, log.read_text())
        if from_env.returncode == 2:  # bad input names where the URL came from
            assert "Error: REDIS_URL: " in from_env.stderr


def _everything_about(error: BaseException) -> str:
    """What a user can see of an exception: its text, its repr and the whole chain."""
    return "".join(traceback.format_exception(error)) + repr(error) + repr(error.__cause__)


def test_session_manager_never_raises_or_logs_the_secret(
    guarded: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def use(manager: SessionManager) -> None:
        async with manager:
            await manager.count()

    builders = {
        "from_url": lambda url: SessionManager.from_url(url, retries=0, socket_timeout=1),
        "from_env": lambda url: SessionManager.from_env(
            {"REDIS_URL": url, "HOURGLASS_CONFIG_DIR": "/nonexistent"},
            retries=0,
            socket_timeout=1,
        ),
    }
    for name, url in _cases(guarded.port):
        for builder_name, build in builders.items():
            with pytest.raises(HourglassError) as raised:
                asyncio.run(use(build(url)))
            _assert_clean(f"{builder_name} ({name})", _everything_about(raised.value))
    _assert_clean("the logs", caplog.text)


def test_a_wrong_password_is_reported_as_authentication_not_unreachable(
    guarded: RedisProcess, tmp_path: Path
) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{guarded.port}/0"
    result = _cli(
        "cleanup", "-n", "demo", "--redis-url", url, env=_base_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "cleanup failed: session store refused the credentials (auth): "
        "the user or password is wrong"
    )
    without = f"redis://127.0.0.1:{guarded.port}/0"
    result = _cli(
        "cleanup", "-n", "demo", "--redis-url", without, env=_base_env(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "cleanup failed: session store needs a password (auth): the URL gives none"
    )


def test_hourglass_local_never_prints_the_secret(guarded: RedisProcess, tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("timeout_profiles.yaml", "session_settings.yaml"):
        shutil.copy(REPO / "config" / name, specs / name)
    cases = _urls(guarded.port)
    for name in ("wrong-password", "password-in-query", "unreachable", "bad-port", "whole-value"):
        result = _cli(
            "local", str(specs), "--once", "--state-dir", str(tmp_path / name),
            "--redis-url", cases[name], env=_base_env(tmp_path), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode in (1, 2), f"{name}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, f"{name}: {result.stderr}"
        _assert_clean(f"local ({name})", result.stdout, result.stderr)
