"""The agent's API client never lets its token out, and its reporting thread never dies
(issue 27, finding 3).

Before: a token file with a CR or LF made ``http.client`` raise ``ValueError("Invalid
header value b'Bearer <token>'")``; the watch logged it with its traceback on every retry
and the pod reporter's thread died printing it. The same on the real control plane, with
a real Pod-bound token: tests/integration/test_cp_agent_token_hygiene.py.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import certifi
import pytest

from agent_lib.errors import ClusterApiError
from agent_lib.timeouts._kube import InCluster, KubeClient
from agent_lib.timeouts._pod_report import Applied, PodReporter
from agent_lib.timeouts.apiwatch import Backoff

SECRET = "eyJhbGciOiJSUzI1NiJ9.TOPSECRET-agent-token-7f3a"


def _client(tmp_path: Path, token: str) -> KubeClient:
    """A client of nothing (port 1): a refused token must fail before any connection."""
    (tmp_path / "token").write_text(token)
    shutil.copyfile(certifi.where(), tmp_path / "ca.crt")  # any valid CA bundle
    return KubeClient(InCluster("127.0.0.1", 1, tmp_path, "agents-dev", "agent-0"), timeout=1)


@pytest.mark.parametrize("bad", ["\r\nX-Injected: 1", "\n", "\x00", " ", "\x7f", "é"])
def test_a_token_with_control_characters_is_refused_naming_the_file_only(
    tmp_path: Path, bad: str
) -> None:
    client = _client(tmp_path, SECRET[:20] + bad + SECRET[20:])
    with pytest.raises(ClusterApiError) as caught:
        client.request("GET", "/api/v1/namespaces/agents-dev/configmaps/hourglass-config")
    message = str(caught.value)
    assert str(tmp_path / "token") in message
    assert "control characters" in message
    for piece in (SECRET[:20], SECRET[20:]):
        assert piece not in message + repr(caught.value)


def test_a_good_token_is_sent_once_the_file_is_fixed(tmp_path: Path) -> None:
    client = _client(tmp_path, SECRET + "\n" + SECRET)
    with pytest.raises(ClusterApiError, match="control characters"):
        client._bearer()
    (tmp_path / "token").write_text(SECRET + "\n")  # kubelet's rotation; trailing newline ok
    assert client._bearer() == SECRET


class _Exploding:
    """Stands in for a KubeClient whose request fails in a way nobody foresaw, quoting
    the token as http.client's ValueError does; it works after ``fail`` is cleared."""

    def __init__(self) -> None:
        self.fail = True
        self.calls = 0
        self.sent: list[Any] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.fail:
            raise ValueError(f"Invalid header value b'Bearer {SECRET}\\r\\n'")
        self.sent.append(body)
        return {}


def test_the_reporting_thread_survives_any_request_error_and_never_logs_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _Exploding()
    reporter = PodReporter(
        client,  # type: ignore[arg-type]
        "agent-0",
        "agents-dev",
        backoff=Backoff(first=0.01, cap=0.02),
    )
    caplog.set_level(logging.DEBUG)
    reporter.submit(Applied("0123456789abcdef", "prod"))
    reporter.start()
    try:
        deadline = time.monotonic() + 10
        while client.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.calls >= 3, "the reporter stopped retrying"
        thread = next(t for t in threading.enumerate() if t.name == "hourglass-pod-report")
        assert thread.is_alive()
        client.fail = False
        while reporter.written is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reporter.written == Applied("0123456789abcdef", "prod")
    finally:
        reporter.stop()
    assert "ValueError" in caplog.text
    assert SECRET not in caplog.text
