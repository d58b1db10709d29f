"""The README's quick start stays true: two commands, and the first one really runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def _quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the quick start has a bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_exactly_two_make_targets() -> None:
    commands = _quick_start_commands()
    assert commands == ["make run", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for command in commands:
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command


def test_make_test_runs_lint_and_the_whole_suite() -> None:
    dry = subprocess.run(
        ["make", "-n", "test", f"VENV={VENV}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "ruff check" in dry.stdout and "mypy" in dry.stdout
    assert re.search(r"-m pytest -m \"not slow\"", dry.stdout)


def test_make_run_in_ci_renders_starts_valkey_cleans_and_exits(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = subprocess.run(
        ["make", "run", f"VENV={VENV}", "CI=true", f"ARGS=--state-dir {state}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # --once: the env lines go to stderr, so that stdout is the JSON summary alone
    assert f"HOURGLASS_CONFIG_DIR={state / 'config'}" in result.stderr
    assert "REDIS_URL=redis://127.0.0.1:" in result.stderr
    # stdout: make's echo of the command, then the summary
    summary, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])
    assert summary["configDir"] == str(state / "config")
    assert (state / "config" / "hourglass.yaml").is_file()
    assert (state / "config" / "..data").is_symlink()
