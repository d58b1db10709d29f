"""Start etcd, kube-apiserver and kube-controller-manager on loopback; stop them by PID.

The flags follow controller-runtime's envtest (``pkg/internal/testing/controlplane``):
etcd without fsync; the apiserver with RBAC, a static admin token, a service-account
key pair (so ``kubectl create token`` works and the operator runs under its own
ServiceAccount), its own self-signed serving certificate, and the admission chain a
hardened cluster runs; the controller manager with the controllers the operator relies
on (garbage collector, namespaces, CronJobs, Jobs, ServiceAccounts).

There is no scheduler and no kubelet: Pods stay Pending.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hourglass_cli.valkey_server import die_with_parent, free_port, stop_process

ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "ServiceAccount",
    "OwnerReferencesPermissionEnforcement",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
)
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "cronjob-controller",
    "job-controller",
    "serviceaccount-controller",
)
READY_TIMEOUT_S = 60.0
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""
_STOP_TIMEOUT_S = 10.0


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


_PORT_TRIES = 3


@dataclass
class ControlPlane:
    """One etcd + kube-apiserver + kube-controller-manager, state under ``state_dir``."""

    bin_dir: Path
    state_dir: Path
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    etcd_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """One JSON line per request made by a ServiceAccount: what RBAC allowed or refused."""
        return self.state_dir / "audit.log"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving certificate, which is its own CA."""
        return self.state_dir / "certs" / "apiserver.crt"

    def start(self) -> ControlPlane:
        """Start the three; a port taken between `free_port()` and the bind (another test
        or session picked it too) is retried on fresh ports, up to ``_PORT_TRIES`` times."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _PORT_TRIES + 1):
            try:
                self._start_once()
                return self
            except ControlPlaneError as error:
                if "address already in use" not in str(error) or attempt == _PORT_TRIES:
                    raise
                self.etcd_port, self.api_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        started = time.monotonic()
        try:
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._wait_ready(started)
            self._write_kubeconfig()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM each component (newest first), SIGKILL what outlives the grace period."""
        for name, proc in reversed(list(self._processes.items())):
            stop_process(proc, _STOP_TIMEOUT_S)
            del self._processes[name]

    def restart_apiserver(self) -> None:
        """Kill kube-apiserver and start it again on the same port and etcd, as after a
        crash: every watch stream is cut and the new watch cache starts empty."""
        proc = self._processes.pop("kube-apiserver")
        proc.kill()  # a crash: open watches are cut, not drained
        proc.wait(timeout=_STOP_TIMEOUT_S)
        self._start_apiserver()
        self._wait_ready(time.monotonic())

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._processes.items()}

    # --- start-up steps -------------------------------------------------------------------

    def _write_credentials(self) -> None:
        (self.state_dir / "certs").mkdir(exist_ok=True)
        key, pub = self.state_dir / "sa.key", self.state_dir / "sa.pub"
        if not key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
            )
            subprocess.run(
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
                check=True,
                capture_output=True,
            )
        (self.state_dir / "audit-policy.yaml").write_text(_AUDIT_POLICY)
        tokens = self.state_dir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
        tokens.chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.state_dir / f"{name}.log").open("ab")
        self._processes[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
            start_new_session=True,
        )
        log.close()

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            "etcd",
            [
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
                f"--listen-metrics-urls=http://127.0.0.1:{free_port()}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.state_dir / 'certs'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--service-account-issuer={self.url}",
                f"--service-account-key-file={self.state_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.state_dir / 'sa.key'}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={self.state_dir / 'tokens.csv'}",
                f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--v=1",
            ],
        )

    def _start_controller_manager(self) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={self.state_dir / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )

    def _alive(self) -> None:
        for name, proc in self._processes.items():
            if proc.poll() is not None:
                tail = (self.state_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_ready(self, started: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the serving cert is not written yet at first
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        while True:
            self._alive()
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(request, context=context, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise ControlPlaneError(f"kube-apiserver not ready within {READY_TIMEOUT_S:.0f}s")
            time.sleep(0.25)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "hourglass-test",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.admin_token}}],
            "contexts": [
                {
                    "name": "admin",
                    "context": {
                        "cluster": "hourglass-test",
                        "user": "admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "admin",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)
