"""``hourglass cleanup`` against a real server: JSON summary, policy file, exit codes, SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import Limits
from agent_lib.sessions.stores.redis import RedisStore
from hourglass_cli.cleanup import cleanup
from tests.fixtures.redis_server import RedisProcess, eventually, free_port, fresh_namespace

REPORT_KEYS = {"scanned", "expired", "evicted", "lifetime_ended", "bytes_freed", "duration_s"}


def _policy(tmp_path: Path, namespace: str, **spec: object) -> Path:
    lines = [
        "apiVersion: hourglass.dev/v1alpha1",
        "kind: SessionPolicy",
        "metadata:",
        "  name: sessions",
        f"  namespace: {namespace}",
        "spec:",
    ]
    lines += [f"  {key}: {value}" for key, value in spec.items()]
    path = tmp_path / "policy.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _seed(url: str, namespace: str, idle: int, live: int, ttl: float) -> list[str]:
    """``idle`` sessions that Redis expires after ``ttl``, then ``live`` long-lived ones."""
    async with SessionManager.from_url(url, namespace=namespace, ttl=ttl) as sm:
        for i in range(idle):
            await sm.create({"idle": i})
        await asyncio.sleep(ttl + 0.1)
    async with SessionManager.from_url(url, namespace=namespace, ttl=60) as sm:
        return [(await sm.create({"live": i})).id for i in range(live)]


def test_json_summary_and_termination_log(
    redis_server: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = fresh_namespace()
    live = asyncio.run(_seed(redis_server.url, namespace, idle=30, live=4, ttl=1.0))
    log = tmp_path / "termination-log"
    log.write_text("")
    monkeypatch.setenv("HOURGLASS_TERMINATION_LOG", str(log))
    policy = _policy(tmp_path, namespace, ttl="1s", maxSessions=3)
    args = ["--redis-url", redis_server.url, "--namespace", namespace, "--policy", str(policy)]

    dry = CliRunner().invoke(cleanup, [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert set(planned) >= REPORT_KEYS and planned["dry_run"] is True
    assert planned["expired"] == 30 and planned["evicted"] == 1

    result = CliRunner().invoke(cleanup, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) >= REPORT_KEYS
    assert (summary["expired"], summary["evicted"], summary["lifetime_ended"]) == (30, 1, 0)
    assert summary["bytes_freed"] > 0 and summary["namespace"] == namespace
    assert json.loads(log.read_text()) == summary

    async def survivors() -> list[bool]:
        async with SessionManager.from_url(redis_server.url, namespace=namespace) as sm:
            return [await sm.get(sid) is not None for sid in live]

    assert asyncio.run(survivors()) == [False, True, True, True]

    again = CliRunner().invoke(cleanup, args)
    assert again.exit_code == 0
    assert "removed 0 session(s)" in again.output


def test_rendered_config_as_the_cronjob_mounts_it(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    """The operator's CronJob passes --policy /etc/hourglass/hourglass.yaml (rendered)."""
    namespace = fresh_namespace()
    asyncio.run(_seed(redis_server.url, namespace, idle=12, live=2, ttl=0.3))
    rendered = tmp_path / "hourglass.yaml"
    rendered.write_text(
        "apiVersion: hourglass.dev/v1alpha1\nkind: HourglassConfig\n"
        f"namespace: {namespace}\nprofiles: {{}}\nsessionPolicy:\n"
        "  name: sessions\n  keyPrefix: hourglass\n  ttl: 0.3\n  maxLifetime: 3600\n"
        "  cleanup: {schedule: '*/5 * * * *', batchSize: 5, suspend: false}\n"
    )
    result = CliRunner().invoke(
        cleanup,
        ["--namespace", namespace, "--policy", str(rendered), "--json"],
        env={"REDIS_URL": redis_server.url},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["expired"] == 12 and summary["batches"] == 3


def test_bad_inputs_name_the_field(redis_server: RedisProcess, tmp_path: Path) -> None:
    bad_scheme = CliRunner().invoke(cleanup, ["--redis-url", "http://x:1", "--namespace", "a"])
    assert bad_scheme.exit_code == 2 and "url" in bad_scheme.output
    bad_ns = CliRunner().invoke(cleanup, ["--redis-url", redis_server.url, "--namespace", "a{b}"])
    assert bad_ns.exit_code == 2 and "namespace" in bad_ns.output and "hash tag" in bad_ns.output
    policy = _policy(tmp_path, "ns", ttl="soon")
    bad_policy = CliRunner().invoke(
        cleanup, ["--redis-url", redis_server.url, "--namespace", "ns", "--policy", str(policy)]
    )
    assert bad_policy.exit_code == 2 and "ttl" in bad_policy.output


def test_unreachable_store_exits_1_with_a_summary(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(cleanup, ["--redis-url", url, "--namespace", "ns", "--json"])
    assert result.exit_code == 1
    assert "unreachable" in json.loads(result.stdout)["error"]


@pytest.mark.slow
def test_killed_run_is_finished_by_the_next(redis_server: RedisProcess, tmp_path: Path) -> None:
    """SIGKILL a real `hourglass cleanup` process mid-way; the next run removes the rest."""
    namespace = fresh_namespace()

    async def seed() -> None:
        async with SessionManager.from_url(redis_server.url, namespace=namespace, ttl=0.2) as sm:
            for start in range(0, 3000, 500):
                await asyncio.gather(*(sm.create({"i": i}) for i in range(start, start + 500)))
            await asyncio.sleep(0.3)

    asyncio.run(seed())
    lru = RedisStore(None, namespace=namespace, limits=Limits(ttl_s=0.2)).index_keys[0]  # type: ignore[arg-type]
    command = [str(Path(sys.executable).parent / "hourglass"), "cleanup"]
    command += ["--redis-url", redis_server.url, "--namespace", namespace, "--batch-size", "1"]
    env = dict(os.environ, SESSION_TTL_SECONDS="0.2")  # the environment beats the defaults
    process = subprocess.Popen([*command], env=env, stdout=subprocess.PIPE)
    try:
        with redis_server.client() as client:

            async def half_way() -> bool:
                return 0 < client.zcard(lru) < 2950

            asyncio.run(eventually(half_way, timeout=30))
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            left = client.zcard(lru)
            assert 0 < left < 3000
            second = subprocess.run(
                [*command[:-1], "500", "--json"], env=env, capture_output=True, check=True
            )
            report = json.loads(second.stdout)
            assert report["expired"] == left and report["complete"] is True
            assert client.zcard(lru) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
