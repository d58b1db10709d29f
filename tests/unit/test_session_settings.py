"""from_env precedence: explicit args > environment > mounted policy > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_lib.errors import ConfigError, DurationError
from agent_lib.sessions.manager import SessionManager, SyncSessionManager
from agent_lib.sessions.settings import policy_file, resolve
from agent_lib.sessions.stores.memory import MemoryStore

RENDERED = """\
apiVersion: hourglass.dev/v1alpha1
kind: HourglassConfig
namespace: agents-dev
profiles: {}
sessionPolicy:
  name: sessions
  keyPrefix: hgdev
  ttl: 600
  maxLifetime: 7200
  maxSessions: 1000
  maxMemory: 64Mi
  maxMemoryBytes: 67108864
  cleanup: {schedule: "*/5 * * * *", batchSize: 250, suspend: false}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "hourglass.yaml").write_text(RENDERED)
    return tmp_path


def test_defaults_without_anything() -> None:
    settings = resolve({}, environ={"HOURGLASS_CONFIG_DIR": "/nonexistent"})
    assert (settings.url, settings.namespace, settings.ttl) == ("memory://", "default", 1800.0)
    assert settings.max_lifetime == 86400.0 and settings.max_sessions is None


def test_mounted_policy_is_read(config_dir: Path) -> None:
    settings = resolve({}, environ={"HOURGLASS_CONFIG_DIR": str(config_dir)})
    assert settings.namespace == "agents-dev" and settings.key_prefix == "hgdev"
    assert (settings.ttl, settings.max_lifetime) == (600.0, 7200.0)
    assert (settings.max_sessions, settings.max_memory, settings.batch_size) == (
        1000,
        64 << 20,
        250,
    )


def test_rendered_config_without_a_policy_gives_the_namespace(tmp_path: Path) -> None:
    (tmp_path / "hourglass.yaml").write_text(
        "apiVersion: hourglass.dev/v1alpha1\nkind: HourglassConfig\nnamespace: agents-qa\n"
    )
    settings = resolve({}, environ={"HOURGLASS_CONFIG_DIR": str(tmp_path)})
    assert settings.namespace == "agents-qa" and settings.ttl == 1800.0


def test_environment_beats_policy_and_arguments_beat_both(config_dir: Path) -> None:
    env = {
        "HOURGLASS_CONFIG_DIR": str(config_dir),
        "SESSION_TTL_SECONDS": "120",
        "SESSION_CLEANUP_INTERVAL": "30s",
        "REDIS_URL": "redis://cache:6379/0",
    }
    settings = resolve({}, environ=env)
    assert (settings.ttl, settings.cleanup_interval, settings.url) == (
        120.0,
        30.0,
        "redis://cache:6379/0",
    )
    assert resolve({"ttl": 5.0, "url": "memory://"}, environ=env).ttl == 5.0


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(DurationError) as caught:
        resolve({}, environ={"SESSION_TTL_SECONDS": "soon", "HOURGLASS_CONFIG_DIR": "/x"})
    assert caught.value.field == "SESSION_TTL_SECONDS"


def test_session_policy_document(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "apiVersion: hourglass.dev/v1alpha1\nkind: SessionPolicy\n"
        "metadata: {name: p, namespace: agents-prod}\n"
        "spec: {ttl: 15m, maxLifetime: 2h, maxMemory: 1Gi, store: {keyPrefix: prod}}\n"
    )
    values = policy_file(path)
    assert values["ttl"] == 900.0 and values["max_lifetime"] == 7200.0
    assert values["max_memory"] == 1 << 30 and values["namespace"] == "agents-prod"
    assert values["key_prefix"] == "prod"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind: SessionPolicy\nmetadata: {name: p}\nspec: {ttl: -1s}\n", "ttl"),
        ("kind: ConfigMap\n", "no SessionPolicy"),
        ("a: [unclosed\n", "invalid YAML"),
        (
            "kind: SessionPolicy\nmetadata: {name: p}\nspec: {ttl: 1h, maxLifetime: 1m}\n",
            "maxLifetime",
        ),
    ],
)
def test_bad_policy_files_say_where(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        policy_file(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)


async def test_from_env_builds_a_memory_manager(config_dir: Path) -> None:
    env = {"HOURGLASS_CONFIG_DIR": str(config_dir), "SESSION_TTL_SECONDS": "42"}
    async with SessionManager.from_env(env, max_sessions=7) as sm:
        assert isinstance(sm.store, MemoryStore)
        assert sm.store.limits.ttl_s == 42.0 and sm.store.limits.max_sessions == 7
        assert sm.store.limits.max_memory == 64 << 20
        assert (await sm.create({"ok": True})).data == {"ok": True}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": "1x"}, "ttl"),
        ({"max_lifetime": 0}, "max_lifetime"),
        ({"max_sessions": 0}, "max_sessions"),
        ({"max_sessions": True}, "max_sessions"),
        ({"max_memory": "lots"}, "max_memory"),
        ({"namespace": "a*"}, "namespace"),
        ({"key_prefix": "{x}"}, "key_prefix"),
    ],
)
def test_from_url_rejects_bad_settings(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SessionManager.from_url("memory://", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize("url", ["http://x", "redis+cluster://", "redis+cluster://h:port", "nope"])
def test_from_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SessionManager.from_url(url)
    assert caught.value.field == "url"


def test_sync_facade_for_threaded_apps() -> None:
    with SyncSessionManager.from_url("memory://", ttl="1m", max_sessions=2) as sm:
        first = sm.create({"n": 1})
        sm.create({"n": 2}, session_id="chosen-id-1")
        assert sm.get("chosen-id-1") is not None
        sm.create({"n": 3})
        assert sm.get(first.id) is None  # evicted at the cap of two
        assert sm.count() == 2 and sm.touch("chosen-id-1")
        assert sm.update("chosen-id-1", {"n": 4}).data == {"n": 4}
        assert sm.delete("chosen-id-1")
        assert sm.cleanup().evicted == 1  # the eviction at create is reported once
        assert sm.cleanup().removed == 0


def test_multi_host_urls_are_parsed_without_io() -> None:
    from agent_lib.sessions.stores.redis import _split_multi_host, connect

    hosts, auth, path, query = _split_multi_host("u:p%40ss@h1:7000,[::1]:7001/svc/2?ssl=1", "url")
    assert hosts == [("h1", 7000), ("::1", 7001)]
    assert auth == {"username": "u", "password": "p@ss"}
    assert (path, query) == ("/svc/2", {"ssl": ["1"]})
    _, cluster = connect("redis+cluster://h1:7000,h2:7001")
    assert cluster is True
    sentinel, cluster = connect("redis+sentinel://s1:26379,s2:26379/mymaster")
    assert cluster is False and "mymaster" in repr(sentinel.connection_pool)
    with pytest.raises(ConfigError, match="service name"):
        connect("redis+sentinel://s1:26379")
