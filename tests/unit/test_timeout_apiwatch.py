"""The API fast path's pure parts: mode, in-cluster detection, which source is newer, watch
events, the pod annotations; and the manager's last-good logic fed API versions directly
(the watch itself runs against the real control plane in tests/integration/test_cp_agent_*)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_lib import TimeoutManager, atomic_swap
from agent_lib.config import CONFIG_KEY, REVISION_KEY
from agent_lib.errors import ClusterApiError, ConfigError
from agent_lib.timeouts._arbiter import Arbiter, Stamp
from agent_lib.timeouts._kube import InCluster, _decode
from agent_lib.timeouts._pod_report import (
    APPLIED_HASH,
    APPLIED_PROFILE,
    CONFIG_ERROR,
    MAX_ERROR_CHARS,
    REJECTED_HASH,
    Applied,
)
from agent_lib.timeouts._sources import ConfigVersion
from agent_lib.timeouts.apiwatch import (
    ConfigMapWatch,
    WatchMode,
    _Gone,
    config_watch_mode,
    wants_api,
)

POLLING = {"interval": 1, "maxInterval": 5, "multiplier": 2, "jitter": 0, "maxDuration": 30}


def _bundle(request: float, profile: str = "prod") -> bytes:
    return yaml.safe_dump(
        {
            "namespace": "agents-prod",
            "defaultProfile": profile,
            "profiles": {profile: {"timeouts": {"request": request}, "polling": POLLING}},
        }
    ).encode()


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


# --- mode and detection ---------------------------------------------------------------


def test_watch_mode_defaults_to_auto_and_names_the_variable_when_wrong() -> None:
    assert config_watch_mode({}) is WatchMode.AUTO
    assert config_watch_mode({"HOURGLASS_CONFIG_WATCH": " API "}) is WatchMode.API
    assert config_watch_mode({"HOURGLASS_CONFIG_WATCH": "file"}) is WatchMode.FILE
    with pytest.raises(ConfigError) as raised:
        config_watch_mode({"HOURGLASS_CONFIG_WATCH": "kubelet"})
    assert raised.value.field == "HOURGLASS_CONFIG_WATCH"
    assert "api, file, auto" in raised.value.reason
    with pytest.raises(ConfigError, match="HOURGLASS_CONFIG_WATCH"):
        TimeoutManager(environ={"HOURGLASS_CONFIG_WATCH": "sometimes"})


def _account(tmp_path: Path, namespace: str = "agents-prod") -> Path:
    folder = tmp_path / "sa"
    folder.mkdir()
    (folder / "token").write_text("t0ken")
    (folder / "ca.crt").write_text("")
    (folder / "namespace").write_text(namespace)
    return folder


def test_in_cluster_needs_the_service_env_and_a_token(tmp_path: Path) -> None:
    folder = _account(tmp_path)
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "HOURGLASS_SERVICEACCOUNT_DIR": str(folder),
    }
    found = InCluster.detect(env)
    assert found == InCluster("10.0.0.1", 443, folder, "agents-prod", None)
    assert InCluster.detect({**env, "POD_NAME": "a", "POD_NAMESPACE": "x"}) == InCluster(
        "10.0.0.1", 443, folder, "x", "a"
    )
    assert InCluster.detect({k: v for k, v in env.items() if "HOST" not in k}) is None
    assert InCluster.detect({**env, "KUBERNETES_SERVICE_PORT": "https"}) is None
    (folder / "token").unlink()
    assert InCluster.detect(env) is None


def test_auto_uses_the_api_only_in_a_pod_and_api_says_why_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = InCluster("h", 1, tmp_path, "ns", None)
    assert wants_api(WatchMode.AUTO, cluster) and wants_api(WatchMode.API, cluster)
    assert not wants_api(WatchMode.FILE, cluster)
    assert not wants_api(WatchMode.AUTO, None)
    assert caplog.records == []
    with caplog.at_level(logging.ERROR):
        assert not wants_api(WatchMode.API, None)
    assert "not a pod" in caplog.text


# --- which source is newer ------------------------------------------------------------


def test_api_versions_order_by_resource_version() -> None:
    arbiter = Arbiter(Stamp("builtin", None, ""))
    assert arbiter.offer(_api(b"a", "7"), api_in_use=True)
    assert not arbiter.offer(_api(b"b", "7"), api_in_use=True)
    assert not arbiter.offer(_api(b"b", "6"), api_in_use=True)
    assert arbiter.offer(_api(b"b", "10"), api_in_use=True)  # numerically, not as text


def test_without_revisions_a_file_with_replaced_content_never_applies_beside_the_api() -> None:
    """Bundles from operators older than revisions keep the rule they had."""
    arbiter = Arbiter(Stamp("builtin", None, ""))
    v1, v2 = _file(b"file-v1"), _api(b"api-v2", "4")
    arbiter.adopted(v1)
    arbiter.adopted(v2)
    assert not arbiter.offer(v1, api_in_use=True)
    assert arbiter.offer(_file(b"unseen"), api_in_use=True)
    assert arbiter.offer(v1, api_in_use=False), "the file alone: every new version applies"


# --- watch events -----------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[bytes | None, str | None, int | None]] = []

    def __call__(self, version: ConfigVersion) -> None:
        self.seen.append((version.raw, version.resource_version, version.revision))


def _watch(recorder: _Recorder, tmp_path: Path) -> ConfigMapWatch:
    from agent_lib.timeouts._kube import KubeClient

    return ConfigMapWatch(KubeClient(InCluster("h", 1, tmp_path, "ns", None)), recorder)


def _cm(version: str, content: str | None = "x", revision: str | None = None) -> dict[str, Any]:
    data = {CONFIG_KEY: content} if content is not None else {}
    if revision is not None:
        data[REVISION_KEY] = revision
    return {"metadata": {"name": "hourglass-config", "resourceVersion": version}, "data": data}


def _api(raw: bytes | None, rv: str, revision: int | None = None) -> ConfigVersion:
    return ConfigVersion("api", raw, revision, f"api:-/hourglass-config@{rv}", rv)


def _file(raw: bytes, revision: int | None = None) -> ConfigVersion:
    return ConfigVersion("file", raw, revision, "/etc/hourglass/hourglass.yaml")


def test_events_deliver_versions_bookmarks_move_on_and_410_reads_again(tmp_path: Path) -> None:
    recorder = _Recorder()
    watch = _watch(recorder, tmp_path)
    watch._event({"type": "ADDED", "object": _cm("5")})
    watch._event({"type": "MODIFIED", "object": _cm("6", None)})
    watch._event({"type": "MODIFIED", "object": _cm("7", "y", revision="42")})
    watch._event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert recorder.seen == [(b"x", "5", None), (None, "6", None), (b"y", "7", 42)]
    assert watch.resource_version == "9"
    watch._event({"type": "DELETED", "object": _cm("10")})
    assert len(recorder.seen) == 3 and watch.resource_version == "10"
    with pytest.raises(_Gone):
        watch._event({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    from agent_lib.errors import ClusterApiError

    with pytest.raises(ClusterApiError, match="boom"):
        watch._event({"type": "ERROR", "object": {"code": 500, "message": "boom"}})
    with pytest.raises(ClusterApiError, match="malformed"):
        watch._event({"type": "ADDED"})


# --- the pod's annotations ----------------------------------------------------------------


def test_annotations_patch_sets_applied_and_clears_or_shortens_the_error() -> None:
    good = Applied("0123456789abcdef", "prod").patch()
    assert good == {
        "metadata": {
            "annotations": {
                APPLIED_HASH: "0123456789abcdef",
                APPLIED_PROFILE: "prod",
                CONFIG_ERROR: None,
                REJECTED_HASH: None,
            }
        }
    }
    long = Applied("h", "p", "profiles.prod.timeouts.x: " + "y" * 500).patch()
    error = long["metadata"]["annotations"][CONFIG_ERROR]  # type: ignore[index]
    assert len(error) == MAX_ERROR_CHARS and error.startswith("profiles.prod.timeouts.x: ")


# --- the manager fed API versions ---------------------------------------------------------


def test_api_versions_go_through_the_same_last_good_logic(tmp_path: Path) -> None:
    folder = tmp_path / "hourglass"
    v1, v2, bad, v3 = _bundle(10), _bundle(20), b"profiles: [", _bundle(30)
    atomic_swap(folder, {CONFIG_KEY: v1})
    tm = TimeoutManager(folder, environ={})
    changes: list[float] = []
    tm.on_change(lambda old, new: changes.append(new["request"]))

    tm._apply_api(_api(v2, "5"))
    assert tm["request"] == 20 and tm.current.source == "api:-/hourglass-config@5"
    assert tm.current.hash == _digest(v2)
    tm._apply_api(_api(v1, "4"))  # an older resourceVersion
    assert tm["request"] == 20

    tm._apply_api(_api(bad, "6"))
    assert tm["request"] == 20 and tm.last_error is not None
    tm._apply_api(_api(None, "7"))
    assert tm.last_error is not None and CONFIG_KEY in tm.last_error

    # kubelet's folder, behind the API: v1 (replaced) and the rejected content change nothing.
    assert tm.reload() is False and tm["request"] == 20
    atomic_swap(folder, {CONFIG_KEY: bad})
    tm.reload()
    atomic_swap(folder, {CONFIG_KEY: v2})
    assert tm.reload() is False

    tm._apply_api(_api(v3, "8"))
    assert tm["request"] == 30 and tm.last_error is None
    assert changes == [20, 30]
    # The API is the source now: a folder that disappears is not an error.
    (folder / CONFIG_KEY).unlink()
    assert tm.reload() is False and tm.last_error is None
    # A newer file (the API cut off) applies.
    atomic_swap(folder, {CONFIG_KEY: _bundle(40)})
    assert tm.reload() is True and tm["request"] == 40
    assert changes == [20, 30, 40]


def test_outside_a_pod_nothing_talks_to_the_api(tmp_path: Path) -> None:
    with TimeoutManager(tmp_path, environ={}) as tm:
        assert tm.api_watch == "off"
        assert tm._link is not None and tm._link.reporter is None
    assert "api=off" in repr(tm)


def test_a_plain_text_refusal_keeps_its_status_and_says_why() -> None:
    """kube-apiserver's 429 (in-flight limits) is plain text; 1,000 agents starting at once
    met it in the fleet benchmark and logged "something that is not JSON", no status."""
    with pytest.raises(ClusterApiError) as caught:
        _decode("/api/v1/x", 429, b"Too many requests, please try again later.\n")
    assert caught.value.status == 429
    assert caught.value.reason == "Too many requests, please try again later."
    with pytest.raises(ClusterApiError) as status_object:
        _decode("/api/v1/x", 403, b'{"kind": "Status", "message": "forbidden: no"}')
    assert (status_object.value.status, status_object.value.reason) == (403, "forbidden: no")
    assert _decode("/api/v1/x", 200, b'{"kind": "ConfigMap"}') == {"kind": "ConfigMap"}
    with pytest.raises(ClusterApiError, match="not JSON"):
        _decode("/api/v1/x", 200, b"<html>")
