"""TimeoutManager.httpx_timeout / aiohttp_timeout: profile figures, capped by deadlines."""

from __future__ import annotations

import subprocess
import sys

import aiohttp
import httpx
import pytest

from agent_lib import DeadlineExceeded, TimeoutManager, UnknownTimeout, deadline


@pytest.fixture
def tm() -> TimeoutManager:
    return TimeoutManager(overrides={"llmCall": 40, "connect": 3})


def test_httpx_timeout_uses_the_profile(tm: TimeoutManager) -> None:
    timeout = tm.httpx_timeout("llmCall")
    assert isinstance(timeout, httpx.Timeout)
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (3, 40, 40, 40)
    alone = tm.httpx_timeout("llmCall", connect=None)
    assert alone.connect == 40


def test_aiohttp_timeout_uses_the_profile(tm: TimeoutManager) -> None:
    timeout = tm.aiohttp_timeout("llmCall")
    assert isinstance(timeout, aiohttp.ClientTimeout)
    assert (timeout.total, timeout.sock_read) == (40, 40)
    assert (timeout.connect, timeout.sock_connect) == (3, 3)


def test_deadline_caps_every_figure(tm: TimeoutManager) -> None:
    with deadline("request", 1.5):
        h = tm.httpx_timeout("llmCall")
        a = tm.aiohttp_timeout("llmCall")
    for value in (h.connect, h.read, h.write, h.pool, a.total, a.sock_read, a.connect):
        assert value is not None and 0 < value <= 1.5


def test_connect_never_exceeds_the_total(tm: TimeoutManager) -> None:
    with tm.override(connect=90):
        assert tm.httpx_timeout("llmCall").connect == 40


def test_exhausted_deadline_raises_before_the_request(tm: TimeoutManager) -> None:
    now = [0.0]
    with pytest.raises(DeadlineExceeded), deadline("request", 1.0, clock=lambda: now[0]):
        now[0] = 2.0  # the budget ran out before the call was made
        tm.httpx_timeout("llmCall")


def test_unknown_names_are_refused(tm: TimeoutManager) -> None:
    with pytest.raises(UnknownTimeout):
        tm.httpx_timeout("nope")
    with pytest.raises(UnknownTimeout):
        tm.aiohttp_timeout("llmCall", connect="nope")


def test_agent_lib_imports_no_framework_or_http_client() -> None:
    code = (
        "import sys, agent_lib, agent_lib.integrations;"
        "bad = [m for m in ('httpx', 'aiohttp', 'agents', 'google.adk') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
