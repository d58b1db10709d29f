"""``python -m tests.controlplane --state-dir DIR [--build-only]``.

Builds the control plane if the cache lacks it, starts it, prints
``KUBECONFIG=DIR/admin.kubeconfig`` on a line of its own, and stays up until SIGINT
or SIGTERM, when it stops all three components by PID.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.controlplane._build import BuildError, build
from tests.controlplane._run import ControlPlane, ControlPlaneError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    parser.add_argument("--state-dir", type=Path, help="where etcd data, certs and logs go")
    parser.add_argument("--build-only", action="store_true", help="build (or find) and exit")
    parser.add_argument("--rebuild", action="store_true", help="build even if cached")
    args = parser.parse_args(argv)
    if not args.build_only and args.state_dir is None:
        parser.error("--state-dir is required unless --build-only")
    try:
        built = build(force=args.rebuild)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not built.cached:
        print(
            f"built in {built.seconds:.0f}s (peak RSS {built.peak_rss_mib:.0f} MiB)",
            file=sys.stderr,
        )
    print(f"binaries: {built.bin_dir}", file=sys.stderr)
    if args.build_only:
        return 0

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    plane = ControlPlane(built.bin_dir, args.state_dir.resolve())
    try:
        plane.start()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"KUBECONFIG={plane.kubeconfig}", flush=True)
        while not stop.wait(1.0):
            for name, proc in plane._processes.items():
                if proc.poll() is not None:
                    print(f"error: {name} exited with {proc.returncode}", file=sys.stderr)
                    return 1
        return 0
    finally:
        plane.stop()


if __name__ == "__main__":
    sys.exit(main())
