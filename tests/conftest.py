"""Shared pytest setup. Fixtures live in tests/fixtures/, one module per real component."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest_plugins: list[str] = [
    "tests.fixtures.redis_server",
    "tests.fixtures.k8s_schemas",
    "tests.fixtures.k8s_emulator",
    "tests.fixtures.controlplane",
    "tests.fixtures.timeouts",
    "tests.fixtures.prometheus",
]


@pytest.fixture
def repo_root() -> Path:
    return REPO
