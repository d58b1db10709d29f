"""What the two Go builds of the test tools share: the cache folder, the ``go`` call and
the stamp that marks a finished build (the control plane's and Prometheus's).

A build is only cached once its stamp is written, after every binary, so an
interrupted build starts again rather than running half a toolchain.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAMP = "build.json"


class BuildError(RuntimeError):
    """A tool could not be built; the message says which step and why."""


def cache_root(variable: str, tool: str) -> Path:
    """``$variable`` or ``$XDG_CACHE_HOME/hourglass/<tool>`` (``~/.cache`` by default)."""
    root = os.environ.get(variable) or (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hourglass" / tool
    )
    return Path(root)


def go_binary() -> str | None:
    return shutil.which("go")


def log(tool: str, message: str) -> None:
    print(f"[{tool} build] {message}", file=sys.stderr, flush=True)


def run_go(args: list[str], cwd: Path, *, step: str) -> str:
    """``go args`` in ``cwd`` with modules on and cgo off; its stdout, or a BuildError
    naming the step, the last lines of go's output and any module the proxy lacks."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOWORK": "off"}
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        missing = re.findall(r"(\S+@\S+): (?:reading|unknown revision|invalid version)", tail)
        hint = f" (module not served by the proxy: {', '.join(missing)})" if missing else ""
        raise BuildError(f"{step} failed{hint}: go {' '.join(args[:3])} ...\n{tail}")
    return proc.stdout


def write_stamp(root: Path, started: float, fields: dict[str, str]) -> tuple[float, float]:
    """Mark the build in ``root`` finished; its (seconds, peak child RSS in MiB)."""
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stamp = {**fields, "seconds": round(seconds, 1), "peak_rss_mib": round(peak)}
    (root / STAMP).write_text(json.dumps(stamp))
    return seconds, peak
