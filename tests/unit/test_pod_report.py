"""The agent names the hash it refused (``hourglass.dev/rejected-hash``) beside
``config-error``, and removes both after a good reload (issue 24, item 1).

The manager is fed versions as the API watch and the mounted folder deliver them; a
recorder stands in for the pod report's link to the API server (what it sends is
checked on the real control plane in tests/integration/test_cp_rollout_truth.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from agent_lib import TimeoutManager, atomic_swap
from agent_lib.config import CONFIG_KEY
from agent_lib.errors import ClusterApiError
from agent_lib.timeouts._pod_report import (
    CONFIG_ERROR,
    REJECTED_HASH,
    Applied,
    PodReporter,
)
from agent_lib.timeouts._sources import ConfigVersion

POLLING = {"interval": 1, "maxInterval": 5, "multiplier": 2, "jitter": 0, "maxDuration": 30}


def _bundle(request: float) -> bytes:
    profile = {"timeouts": {"request": request}, "polling": POLLING}
    return yaml.safe_dump(
        {"namespace": "agents-prod", "defaultProfile": "prod", "profiles": {"prod": profile}}
    ).encode()


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


class _Link:
    """Stands in for `ClusterLink`: keeps what the manager asks to report."""

    cluster = None
    watch = None
    state = "off"

    def __init__(self) -> None:
        self.reports: list[Applied] = []

    def report(self, state: Applied) -> None:
        self.reports.append(state)


def _annotations(state: Applied) -> dict[str, Any]:
    return state.patch()["metadata"]["annotations"]  # type: ignore[index, no-any-return]


def _api(raw: bytes, rv: str) -> ConfigVersion:
    return ConfigVersion("api", raw, None, f"api:-/hourglass-config@{rv}", rv)


def test_a_rejection_names_its_hash_and_a_good_reload_removes_both(tmp_path: Path) -> None:
    folder = tmp_path / "hourglass"
    good, bad, fixed = _bundle(10), b"profiles: [", _bundle(30)
    atomic_swap(folder, {CONFIG_KEY: good})
    tm = TimeoutManager(folder, environ={})
    link = _Link()
    tm._link = link  # type: ignore[assignment]

    tm._apply_api(_api(bad, "5"))
    notes = _annotations(link.reports[-1])
    assert notes[REJECTED_HASH] == _digest(bad)
    assert notes[CONFIG_ERROR] and notes["hourglass.dev/applied-hash"] == _digest(good)

    tm._apply_api(_api(fixed, "6"))
    notes = _annotations(link.reports[-1])
    assert notes[REJECTED_HASH] is None and notes[CONFIG_ERROR] is None
    assert notes["hourglass.dev/applied-hash"] == _digest(fixed)

    # A bad mounted file (new content: the API cut off) is named alike.
    worse = b"kind: [unclosed"
    atomic_swap(folder, {CONFIG_KEY: worse})
    tm.reload()
    assert _annotations(link.reports[-1])[REJECTED_HASH] == _digest(worse)
    tm._apply_api(_api(_bundle(40), "7"))
    assert _annotations(link.reports[-1])[REJECTED_HASH] is None


def test_the_hash_is_written_only_beside_an_error() -> None:
    assert _annotations(Applied("h", "p", None, "x"))[REJECTED_HASH] is None
    assert _annotations(Applied("h", "p", "f: bad", "x"))[REJECTED_HASH] == "x"


class _Client:
    """Stands in for the API server under an admission policy that predates rejected-hash."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: Any, content_type: str = "") -> None:
        notes = body["metadata"]["annotations"]
        if notes.get(REJECTED_HASH) is not None:
            raise ClusterApiError(path, "hourglass agents may change only ...", 403)
        self.accepted.append(notes)


def test_an_older_admission_policy_gets_the_error_without_the_hash() -> None:
    client = _Client()
    reporter = PodReporter(client, "agent-0", "agents-prod")  # type: ignore[arg-type]
    assert reporter._write(Applied("h1", "prod", "timeouts.x: unknown", "h2"))
    assert client.accepted == [
        {
            "hourglass.dev/applied-hash": "h1",
            "hourglass.dev/applied-profile": "prod",
            CONFIG_ERROR: "timeouts.x: unknown",
            REJECTED_HASH: None,
        }
    ]
