"""`hourglass validate` and `hourglass render` as a user runs them: the real console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from agent_lib.config import CONFIG_KEY, parse_config

REPO = Path(__file__).resolve().parents[2]


def _hourglass(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hourglass", path=str(Path(sys.executable).parent))
    assert exe, "the hourglass console script is installed next to the interpreter"
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_builtin_config_is_valid() -> None:
    result = _hourglass("validate", "config/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all valid" in result.stderr


BROKEN = {
    "duration.yaml": ("spec:\n  timeouts:\n    llmCall: 10x\n", "spec.timeouts.llmCall"),
    "order.yaml": (
        "spec:\n  polling:\n    interval: 10s\n    maxInterval: 1s\n",
        "spec.polling: interval (10s) must not exceed maxInterval (1s)",
    ),
    "parent.yaml": ("spec:\n  extends: ghost\n", "spec.extends: parent TimeoutProfile 'ghost'"),
    "name.yaml": ("spec:\n  timeouts:\n    Bad_Name: 1s\n", "spec.timeouts.Bad_Name"),
    "typo.yaml": ("spec:\n  timeout:\n    x: 1s\n", "spec.timeout: unknown field"),
}


def test_each_broken_profile_gets_one_line_naming_its_field(tmp_path: Path) -> None:
    for index, (file, (spec, _)) in enumerate(BROKEN.items()):
        header = (
            "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\n"
            f"metadata:\n  name: p{index}\n  namespace: ns{index}\n"
        )
        (tmp_path / file).write_text(header + spec)
    result = _hourglass("validate", str(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == len(BROKEN)
    for file, (_, needle) in BROKEN.items():
        matching = [line for line in lines if line.startswith(str(tmp_path / file) + ":")]
        assert len(matching) == 1 and needle in matching[0], (file, lines)


def test_garbage_gets_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "big.yaml").write_bytes(b"# " + b"x" * (10 * 1024 * 1024))
    result = _hourglass("validate", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "binary content" in result.stdout and "the limit is 1 MiB" in result.stdout


def test_render_resolves_inheritance_and_is_order_independent(tmp_path: Path) -> None:
    base = (
        "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\nmetadata:\n  name: base\n"
        "spec:\n  timeouts:\n    connect: 5s\n    llmCall: 1m\n"
    )
    child = (
        "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\nmetadata:\n  name: child\n"
        "spec:\n  default: true\n  extends: base\n  timeouts:\n    llmCall: 30s\n"
    )
    (tmp_path / "a.yaml").write_text(base + "---\n" + child)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "1.yaml").write_text(child)
    (tmp_path / "b" / "2.yaml").write_text(base)
    first = _hourglass("render", str(tmp_path / "a.yaml"), "-n", "agents")
    second = _hourglass("render", str(tmp_path / "b"), "-n", "agents")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout == second.stdout
    configmap = yaml.safe_load(first.stdout)
    config = parse_config(configmap["data"][CONFIG_KEY])
    assert config.namespace == "agents" and config.default_profile == "child"
    assert config.profiles["child"].timeouts == {"connect": 5.0, "llmCall": 30.0}


def test_render_refuses_invalid_specs_and_prints_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\nmetadata:\n  name: x\n"
        "spec:\n  extends: x\n"
    )
    result = _hourglass("render", str(tmp_path))
    assert result.returncode == 1
    assert "apiVersion: v1" not in result.stdout
    assert "inheritance cycle: x -> x" in result.stdout
