"""Build the Prometheus server from Go modules, once, into a cache outside the repo.

Prometheus's go.mod has no ``replace`` lines, so a wrapper module that imports
``cmd/prometheus`` (as a tools file) and ``go build`` is the whole recipe. The
binary (about 105 MB) lands beside the control plane's, keyed by the version; a
later call finds it there and builds nothing.
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
from dataclasses import dataclass
from pathlib import Path

from tests.prometheus import versions

_MAIN = "github.com/prometheus/prometheus/cmd/prometheus"
_STAMP = "build.json"
_TOOLS = f'//go:build tools\n\npackage tools\n\nimport _ "{_MAIN}"\n'


class BuildError(RuntimeError):
    """Prometheus could not be built; the message says which step and why."""


@dataclass(frozen=True)
class Built:
    binary: Path
    seconds: float
    peak_rss_mib: float
    cached: bool


def cache_dir() -> Path:
    """``$HOURGLASS_PROMETHEUS_CACHE`` or ``~/.cache/hourglass/prometheus``, per version."""
    root = os.environ.get("HOURGLASS_PROMETHEUS_CACHE") or (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hourglass/prometheus"
    )
    return Path(root) / f"prometheus-{versions.MODULE_VERSION}"


def cached_binary() -> Path | None:
    """The ready binary, or None when it must be built first."""
    binary = cache_dir() / "bin" / "prometheus"
    if (cache_dir() / _STAMP).is_file() and binary.is_file():
        return binary
    return None


def go_binary() -> str | None:
    return shutil.which("go")


def _log(message: str) -> None:
    print(f"[prometheus build] {message}", file=sys.stderr, flush=True)


def _go(args: list[str], cwd: Path, *, step: str) -> str:
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


def _ldflags() -> str:
    pkg = "github.com/prometheus/common/version"
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {pkg}.Version={versions.PROMETHEUS}",
            f"-X {pkg}.Revision={versions.MODULE_VERSION}",
            f"-X {pkg}.Branch=module-proxy",
        ]
    )


def build(*, force: bool = False) -> Built:
    """Build the binary into the cache (or find it there) and say what it cost."""
    if not force and (ready := cached_binary()):
        return Built(ready, 0.0, 0.0, cached=True)
    if not go_binary():
        raise BuildError("no 'go' on PATH: install Go 1.26 to build the test Prometheus")
    started = time.monotonic()
    root = cache_dir()
    src, bin_dir = root / "src", root / "bin"
    src.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text("module hourglass.dev/tests/prometheus\n\ngo 1.26.0\n")
    (src / "go.sum").unlink(missing_ok=True)
    (src / "tools.go").write_text(_TOOLS)

    _log(f"resolving {_MAIN}@{versions.MODULE_VERSION} (go get)")
    _go(["get", f"{_MAIN}@{versions.MODULE_VERSION}"], src, step="go get")
    _log("compiling prometheus")
    _go(
        ["build", "-trimpath", "-ldflags", _ldflags(), "-o", str(bin_dir / "prometheus"), _MAIN],
        src,
        step="build prometheus",
    )
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    (root / _STAMP).write_text(
        json.dumps(
            {
                "module": versions.MODULE_VERSION,
                "prometheus": versions.PROMETHEUS,
                "seconds": round(seconds, 1),
                "peak_rss_mib": round(peak),
            }
        )
    )
    _log(f"built in {seconds:.0f}s, peak child RSS {peak:.0f} MiB -> {bin_dir}")
    return Built(bin_dir / "prometheus", seconds, peak, cached=False)
