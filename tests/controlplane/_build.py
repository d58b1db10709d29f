"""Build etcd, kube-apiserver and kube-controller-manager from Go modules, once.

No release binary can be downloaded here, so the binaries are compiled from the
module proxy, as kcp's ``hack/bump-k8s.sh`` does: a wrapper module requires
``k8s.io/kubernetes`` and replaces each staging module (which the release's own
go.mod points at ``./staging/...``) with its published ``v0.x.y``. The replace
lines are generated from that downloaded go.mod, never written by hand.

Binaries land in a cache outside the repository, keyed by the versions; a later
call finds them there and builds nothing.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tests._gobuild import STAMP, BuildError, cache_root, go_binary, write_stamp
from tests._gobuild import log as _golog
from tests._gobuild import run_go as _go
from tests.controlplane import versions

HERE = Path(__file__).resolve().parent
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
_ETCD_MODULES = ("api/v3", "client/pkg/v3", "client/v3", "pkg/v3", "server/v3")
_MAINS = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "etcd": "go.etcd.io/etcd/server/v3",
}


@dataclass(frozen=True)
class Built:
    bin_dir: Path
    seconds: float
    peak_rss_mib: float
    cached: bool


def cache_dir() -> Path:
    """``$HOURGLASS_CONTROLPLANE_CACHE`` or ``~/.cache/hourglass/controlplane``, per version."""
    return cache_root("HOURGLASS_CONTROLPLANE_CACHE", "controlplane") / (
        f"k8s-{versions.KUBERNETES}-etcd-{versions.ETCD}"
    )


def cached_bin_dir() -> Path | None:
    """The folder of ready binaries, or None when they must be built first."""
    bin_dir = cache_dir() / "bin"
    if (cache_dir() / STAMP).is_file() and all((bin_dir / b).is_file() for b in BINARIES):
        return bin_dir
    return None


def _log(message: str) -> None:
    _golog("controlplane", message)


def staging_replaces(kubernetes_go_mod: str, staging_version: str) -> list[str]:
    """One ``replace`` per ``=> ./staging/src/k8s.io/X`` line of the release's go.mod."""
    modules = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", kubernetes_go_mod, re.M)
    if not modules:
        raise BuildError("the k8s.io/kubernetes go.mod lists no ./staging replacements")
    return [f"replace {m} => {m} {staging_version}" for m in sorted(set(modules))]


def wrapper_go_mod(kubernetes_go_mod: str) -> str:
    """The committed go.mod plus the generated requires and replaces."""
    lines = [(HERE / "go.mod").read_text().rstrip(), ""]
    lines.append(f"require k8s.io/kubernetes {versions.KUBERNETES}")
    lines += [f"require go.etcd.io/etcd/{m} {versions.ETCD}" for m in _ETCD_MODULES]
    lines += staging_replaces(kubernetes_go_mod, versions.STAGING)
    # Every etcd module at one served version, whatever version a dependency asks for.
    lines += [
        f"replace go.etcd.io/etcd/{m} => go.etcd.io/etcd/{m} {versions.ETCD}" for m in _ETCD_MODULES
    ]
    return "\n".join(lines) + "\n"


def _pinned_mains() -> list[str]:
    """The mains at their pinned versions: a bare ``go get pkg`` would upgrade to latest."""
    version = {"etcd": versions.ETCD}
    return [f"{pkg}@{version.get(name, versions.KUBERNETES)}" for name, pkg in _MAINS.items()]


def _ldflags() -> str:
    major, minor = versions.KUBERNETES.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={versions.KUBERNETES}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def build(*, force: bool = False) -> Built:
    """Build the three binaries into the cache (or find them there) and say what it cost."""
    if not force and (ready := cached_bin_dir()):
        return Built(ready, 0.0, 0.0, cached=True)
    if not go_binary():
        raise BuildError("no 'go' on PATH: install Go 1.26 to build the test control plane")
    started = time.monotonic()
    root = cache_dir()
    src, bin_dir = root / "src", root / "bin"
    src.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)

    _log(f"downloading k8s.io/kubernetes@{versions.KUBERNETES}'s go.mod")
    info = json.loads(
        _go(
            ["mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
            src,
            step="download",
        )
        if (src / "go.mod").exists()
        else _go(
            ["mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
            root,
            step="download",
        )
    )
    (src / "go.mod").write_text(wrapper_go_mod(Path(info["GoMod"]).read_text()))
    (src / "go.sum").unlink(missing_ok=True)

    _log("resolving the three mains (go get)")
    _go(["get", *_pinned_mains()], src, step="go get")
    _log("probing every dependency (go list -deps)")
    _go(["list", "-deps", *_MAINS.values()], src, step="probe")

    for name, pkg in _MAINS.items():
        _log(f"compiling {name}")
        _go(
            ["build", "-trimpath", "-ldflags", _ldflags(), "-o", str(bin_dir / name), pkg],
            src,
            step=f"build {name}",
        )
    seconds, peak = write_stamp(
        root, started, {"kubernetes": versions.KUBERNETES, "etcd": versions.ETCD}
    )
    _log(f"built in {seconds:.0f}s, peak child RSS {peak:.0f} MiB -> {bin_dir}")
    return Built(bin_dir, seconds, peak, cached=False)
