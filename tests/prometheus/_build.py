"""Build the Prometheus server from Go modules, once, into a cache outside the repo.

Prometheus's go.mod has no ``replace`` lines, so a wrapper module that imports
``cmd/prometheus`` (as a tools file) and ``go build`` is the whole recipe. The
binary (about 105 MB) lands beside the control plane's, keyed by the version; a
later call finds it there and builds nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests._gobuild import STAMP, BuildError, cache_root, go_binary, write_stamp
from tests._gobuild import log as _golog
from tests._gobuild import run_go as _go
from tests.prometheus import versions

_MAIN = "github.com/prometheus/prometheus/cmd/prometheus"
_TOOLS = f'//go:build tools\n\npackage tools\n\nimport _ "{_MAIN}"\n'


@dataclass(frozen=True)
class Built:
    binary: Path
    seconds: float
    peak_rss_mib: float
    cached: bool


def cache_dir() -> Path:
    """``$HOURGLASS_PROMETHEUS_CACHE`` or ``~/.cache/hourglass/prometheus``, per version."""
    return cache_root("HOURGLASS_PROMETHEUS_CACHE", "prometheus") / (
        f"prometheus-{versions.MODULE_VERSION}"
    )


def cached_binary() -> Path | None:
    """The ready binary, or None when it must be built first."""
    binary = cache_dir() / "bin" / "prometheus"
    if (cache_dir() / STAMP).is_file() and binary.is_file():
        return binary
    return None


def _log(message: str) -> None:
    _golog("prometheus", message)


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
    seconds, peak = write_stamp(
        root,
        started,
        {"module": versions.MODULE_VERSION, "prometheus": versions.PROMETHEUS},
    )
    _log(f"built in {seconds:.0f}s, peak child RSS {peak:.0f} MiB -> {bin_dir}")
    return Built(bin_dir / "prometheus", seconds, peak, cached=False)
