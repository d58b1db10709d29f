"""``python -m tests.prometheus --state-dir DIR --scrape-config FILE [--build-only]``.

Builds Prometheus if the cache lacks it, starts it on loopback with the scrape config,
prints ``PROMETHEUS_URL=http://127.0.0.1:PORT`` on a line of its own, and stays up until
SIGINT or SIGTERM, when it stops the server by PID.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.prometheus._build import BuildError, build
from tests.prometheus._run import Prometheus, PrometheusError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.prometheus", description=__doc__)
    parser.add_argument("--state-dir", type=Path, help="where the TSDB and the log go")
    parser.add_argument("--scrape-config", type=Path, help="a prometheus.yml to run with")
    parser.add_argument("--build-only", action="store_true", help="build (or find) and exit")
    parser.add_argument("--rebuild", action="store_true", help="build even if cached")
    args = parser.parse_args(argv)
    if not args.build_only and (args.state_dir is None or args.scrape_config is None):
        parser.error("--state-dir and --scrape-config are required unless --build-only")
    if not args.build_only and not args.scrape_config.is_file():
        parser.error(f"--scrape-config: {args.scrape_config} is not a file")
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
    print(f"binary: {built.binary}", file=sys.stderr)
    if args.build_only:
        return 0

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = Prometheus(built.binary, args.state_dir.resolve(), args.scrape_config.resolve())
    try:
        server.start()
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        server.stop()
        return 1
    try:
        print(f"PROMETHEUS_URL={server.url}", flush=True)
        while not stop.wait(1.0):
            if server.process is not None and server.process.poll() is not None:
                print(f"error: prometheus exited with {server.process.returncode}", file=sys.stderr)
                return 1
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
