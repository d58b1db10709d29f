"""Start the test Prometheus on loopback with a given scrape config; stop it by PID."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hourglass_cli.valkey_server import die_with_parent, free_port, stop_process

READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


class PrometheusError(RuntimeError):
    """Prometheus did not start or answer; the message carries the tail of its log."""


class Prometheus:
    """One Prometheus server: ``start()``, ``url``, ``query()``, ``reload()``, ``stop()``."""

    def __init__(self, binary: Path, state_dir: Path, scrape_config: Path) -> None:
        self.binary = binary
        self.state_dir = state_dir
        self.scrape_config = scrape_config
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "prometheus.log"

    def start(self) -> Prometheus:
        if not self.scrape_config.is_file():
            raise PrometheusError(f"--scrape-config: {self.scrape_config} is not a file")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                f"--config.file={self.scrape_config}",
                f"--storage.tsdb.path={self.state_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise PrometheusError(f"prometheus exited with {code}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready in {READY_TIMEOUT_S:.0f}s:\n{self._tail()}")

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector (``data.result``) of ``promql``."""
        body = self._get("/api/v1/query", {"query": promql})
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._get("/api/v1/targets", {})["data"]["activeTargets"]
        return active

    def reload(self) -> None:
        """Re-read the scrape config (after the test rewrote it)."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
        return body

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, _STOP_TIMEOUT_S)
            self.process = None


def scrape_config(
    targets: list[str],
    interval_s: float = 1.0,
    job: str = "agents",
    labels: dict[str, str] | None = None,
) -> str:
    """A scrape config naming ``targets`` (``host:port``), scraped every ``interval_s``.

    ``labels`` are added to every series, as a PodMonitor adds ``namespace`` and ``pod``.
    """
    listed = ", ".join(json.dumps(t) for t in targets)
    text = (
        "global:\n"
        f"  scrape_interval: {interval_s:g}s\n"
        f"  evaluation_interval: {interval_s:g}s\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        f"    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )
    if labels:
        text += f"        labels: {json.dumps(labels)}\n"
    return text
