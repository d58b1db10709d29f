"""Every shell block the docs mark as runnable runs, so the docs cannot rot.

The docs are README.md, docs/**/*.md and the READMEs under examples/, manifests/ and
helm/. Blocks that cannot run here (a cluster, a live Redis) are still checked: every
``hourglass`` command in any shell block must use a real verb and real options.

A block is runnable when the line before its fence (blank lines aside) is
``<!-- runnable -->`` (optionally ``<!-- runnable timeout=90 -->``), or when its info
string says so (```` ```bash runnable ````). Each runs with ``bash -euo pipefail`` in a
fresh copy of the repository as a clone has it: the files git tracks or does not
ignore (its ``.venv`` linked in), with the project's virtualenv
first on PATH, bounded in time; its process group is killed by PID when it overruns.
Every other shell block needs a cluster (``kubectl``, ``helm``) or says why it cannot
run here, with ``<!-- not runnable: REASON -->`` on the line before its fence.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = sorted(
    {
        REPO / "README.md",
        *REPO.glob("docs/**/*.md"),
        *REPO.glob("examples/**/README.md"),
        *REPO.glob("manifests/**/README.md"),
        *REPO.glob("helm/**/README.md"),
    }
)
SHELLS = {"bash", "sh", "shell", "console"}
DEFAULT_TIMEOUT_S = 120
_MARKER = re.compile(r"^\s*<!--\s*runnable(?:\s+timeout=(\d+))?\s*-->\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)(.*)$")
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".hypothesis", ".hourglass", ".state", "results",
)  # fmt: skip

# The docs this project's local-mode work owns; each must keep at least one runnable block.
OWNED_DOCS = (
    "docs/timeout_configuration.md",
    "docs/session_cleanup_guide.md",
    "docs/migration_guide.md",
    "docs/troubleshooting.md",
)


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    code: str
    timeout_s: int

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def extract_blocks(text: str, file: str) -> list[Block]:
    """The runnable shell blocks of a Markdown text, with the line of their fence."""
    blocks: list[Block] = []
    lines = text.splitlines()
    pending: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = _MARKER.match(line)
        fence = _FENCE.match(line)
        if marker:
            pending = int(marker.group(1) or DEFAULT_TIMEOUT_S)
        elif fence:
            indent, ticks, language, rest = fence.groups()
            body, index = _read_fence(lines, index + 1, ticks)
            runnable = pending is not None or "runnable" in rest.split()
            if runnable and language in SHELLS:
                code = "\n".join(
                    row[len(indent) :] if row.startswith(indent) else row for row in body
                )
                blocks.append(Block(file, index - len(body), code, pending or DEFAULT_TIMEOUT_S))
            pending = None
        elif line.strip():
            pending = None
        index += 1
    return blocks


def _dedent(row: str, indent: str) -> str:
    return row[len(indent) :] if row.startswith(indent) else row


def _read_fence(lines: list[str], start: int, ticks: str) -> tuple[list[str], int]:
    body: list[str] = []
    index = start
    while index < len(lines) and not lines[index].strip().startswith(ticks):
        body.append(lines[index])
        index += 1
    return body, index


def _all_blocks() -> list[Block]:
    blocks: list[Block] = []
    for path in DOC_FILES:
        if path.exists():
            blocks.extend(extract_blocks(path.read_text(), str(path.relative_to(REPO))))
    return blocks


BLOCKS = _all_blocks()


def test_extractor_reads_markers_fences_and_timeouts() -> None:
    text = "\n".join(
        [
            "<!-- runnable timeout=7 -->",
            "",
            "```bash",
            "echo one",
            "```",
            "```bash",
            "echo not marked",
            "```",
            "<!-- runnable -->",
            "```python",
            "print('not a shell')",
            "```",
            "```sh runnable",
            "echo two",
            "```",
            "<!-- runnable -->",
            "some prose in between cancels the marker",
            "```bash",
            "echo three",
            "```",
        ]
    )
    blocks = extract_blocks(text, "x.md")
    assert [(b.code, b.timeout_s, b.line) for b in blocks] == [
        ("echo one", 7, 3),
        ("echo two", DEFAULT_TIMEOUT_S, 13),
    ]


@pytest.mark.parametrize("doc", OWNED_DOCS)
def test_each_guide_has_runnable_commands(doc: str) -> None:
    assert (REPO / doc).exists(), f"{doc} is missing"
    assert any(block.file == doc for block in BLOCKS), f"{doc} has no runnable block"


def _clone_files() -> list[str] | None:
    """What a clone of this working tree holds: the tracked files and the new ones git
    does not ignore (so a block cannot lean on ignored local state); None without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [name for name in listed.stdout.decode().split("\0") if name]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repository as a fresh clone has it (its .venv linked in)."""
    target = tmp_path / "repo"
    files = _clone_files()
    if files is None:
        shutil.copytree(REPO, target, ignore=_IGNORED, symlinks=True)
    for name in files or ():
        source, copy = REPO / name, target / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet committed
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    if (REPO / ".venv").is_dir():  # so that `. .venv/bin/activate` works in a block
        (target / ".venv").symlink_to(REPO / ".venv")
    return target


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_runnable_block(block: Block, repo_copy: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in list(env):
        if name.startswith(("HOURGLASS_", "SESSION_", "AGENT_")) or name == "REDIS_URL":
            del env[name]
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=repo_copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=block.timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{block.id} ran over {block.timeout_s}s:\n{output.decode(errors='replace')}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # whatever the block left running
    log = output.decode(errors="replace")
    assert process.returncode == 0, f"{block.id} exited {process.returncode}:\n{block.code}\n{log}"


_ENV_NAME = re.compile(r"^(HOURGLASS|SESSION|REDIS|POD|WATCHFILES)_[A-Z0-9_]*[A-Z0-9]$")
_CODE = ("agent_lib", "hourglass_cli", "operator/hourglass_operator")


def _variables_in_code() -> set[str]:
    """String constants in the product code that look like our environment variables."""
    found: set[str] = set()
    for folder in _CODE:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                value = node.value if isinstance(node, ast.Constant) else None
                if isinstance(value, str) and _ENV_NAME.match(value):
                    found.add(value)
    return found


def test_env_example_lists_every_variable_the_code_reads() -> None:
    listed = (REPO / ".env.example").read_text()
    variables = _variables_in_code()
    assert {"HOURGLASS_CONFIG_DIR", "REDIS_URL", "SESSION_TTL_SECONDS"} <= variables
    missing = sorted(name for name in variables if name not in listed)
    assert missing == [], f".env.example does not document {missing}"


def _shell_blocks(text: str) -> list[str]:
    """Every shell block of a Markdown text, runnable or not."""
    blocks: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence:
            body, index = _read_fence(lines, index + 1, fence.group(2))
            if fence.group(3) in SHELLS:
                blocks.append("\n".join(body))
        index += 1
    return blocks


_SHELL_WORDS = {"do", "then", "else", "time", "exec", "!", "if", "while", "until"}


def _hourglass_calls(block: str) -> list[list[str]]:
    """The argument lists of every ``hourglass`` command line in a shell block."""
    calls: list[list[str]] = []
    joined = block.replace("\\\n", " ")
    for line in joined.splitlines():
        code = line.split(" #", 1)[0]
        for segment in re.split(r"\|\||&&|[|;&()]|\$\(|`", code):
            words = segment.replace('"', " ").replace("'", " ").split()
            while words and (words[0] in _SHELL_WORDS or "=" in words[0]):
                words = words[1:]  # `do`, `then`, `VAR=value` before the command
            if words[:1] == ["hourglass"]:
                calls.append([w for w in words[1:] if not w.startswith((">", "2>", "<"))])
    return calls


_ALL_DOCS = DOC_FILES


def test_every_hourglass_command_in_the_docs_uses_real_verbs_and_flags() -> None:
    """Blocks that cannot run here (a cluster, a live Redis) still may not cite a verb or
    a flag the CLI does not have."""
    import click

    from hourglass_cli.main import cli

    context = click.Context(cli)
    checked = 0
    for path in _ALL_DOCS:
        if not path.exists():
            continue
        for block in _shell_blocks(path.read_text()):
            for call in _hourglass_calls(block):
                where = f"{path.relative_to(REPO)}: hourglass {' '.join(call)}"
                if not call or call[0].startswith("-"):
                    continue
                command = cli.get_command(context, call[0])
                assert command is not None, f"{where}: no such verb"
                known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
                known |= {"-h", "--help"}
                for word in call[1:]:
                    if word.startswith("-") and word != "-":
                        assert word.split("=", 1)[0] in known, f"{where}: unknown option {word}"
                checked += 1
    assert checked >= 10


_NOT_RUNNABLE = re.compile(r"^\s*<!--\s*not runnable:\s*(\S.*?)\s*-->\s*$")
_NEEDS_CLUSTER = re.compile(r"(^|[\s$(])(kubectl|helm)\s", re.M)


def _unclassified_blocks(text: str) -> list[int]:
    """Lines of shell blocks that neither run here, nor need a cluster (kubectl, helm),
    nor say why not (``<!-- not runnable: REASON -->`` on the line before)."""
    found: list[int] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        before = next((row for row in reversed(lines[:index]) if row.strip()), "")
        body, end = _read_fence(lines, index + 1, fence.group(2))
        marked = _MARKER.match(before) or _NOT_RUNNABLE.match(before)
        runnable = "runnable" in fence.group(4).split()
        cluster = _NEEDS_CLUSTER.search("\n".join(body))
        if fence.group(3) in SHELLS and not (marked or runnable or cluster):
            found.append(index + 1)
        index = end + 1
    return found


def test_every_shell_block_runs_or_says_why_not() -> None:
    """So a new command in the docs runs in CI unless it needs a cluster or says why it
    cannot run here."""
    unclassified = [
        f"{path.relative_to(REPO)}:{line}"
        for path in DOC_FILES
        if path.exists()
        for line in _unclassified_blocks(path.read_text())
    ]
    assert unclassified == [], (
        "mark these blocks <!-- runnable --> or <!-- not runnable: REASON -->: "
        + ", ".join(unclassified)
    )


def test_the_block_classifier_sees_markers_and_clusters() -> None:
    text = "\n".join(
        [
            "```bash",
            "hourglass validate config/",
            "```",
            "<!-- not runnable: needs a live Redis -->",
            "```bash",
            "hourglass cleanup -n x",
            "```",
            "```bash",
            "kubectl get tp",
            "```",
            "<!-- runnable -->",
            "```bash",
            "true",
            "```",
        ]
    )
    assert _unclassified_blocks(text) == [1]


def test_the_architecture_page_lists_every_cli_verb() -> None:
    from hourglass_cli.main import _VERBS

    text = (REPO / "docs" / "architecture.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `hourglass_cli/` |"))
    assert [verb for verb in sorted(_VERBS) if f"`{verb}`" not in row] == []
