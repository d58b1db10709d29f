"""A minimal in-cluster Kubernetes client: standard library only (``http.client`` + ``ssl``).

Agent images must not need the ``kubernetes`` package for three calls (get and watch
one ConfigMap, merge-patch one Pod), so this speaks plain HTTPS with the pod's
ServiceAccount token and CA, as ``rest.InClusterConfig`` does in client-go:

- in a pod means ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` are set and the
  ServiceAccount folder (``token``, ``ca.crt``, ``namespace``) exists, by default at
  ``/var/run/secrets/kubernetes.io/serviceaccount``; ``HOURGLASS_SERVICEACCOUNT_DIR``
  points elsewhere (tests run agents "as" a pod that way);
- the token file is re-read whenever it changes (kubelet rotates projected tokens), and
  so is the CA bundle.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agent_lib.errors import ClusterApiError
from agent_lib.timeouts._layers import ENV_POD_NAMESPACE, SERVICEACCOUNT_DIR

ENV_SERVICEACCOUNT_DIR: Final = "HOURGLASS_SERVICEACCOUNT_DIR"
ENV_HOST: Final = "KUBERNETES_SERVICE_HOST"
ENV_PORT: Final = "KUBERNETES_SERVICE_PORT"
ENV_POD_NAME: Final = "POD_NAME"

_MAX_BODY: Final = 4 * 1024 * 1024
"""A ConfigMap is at most 1 MiB; anything much larger is not what we asked for."""
_MAX_LINE: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class InCluster:
    """Where the API server is and who this pod is, from the standard in-cluster signs."""

    host: str
    port: int
    account_dir: Path
    namespace: str
    pod_name: str | None

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> InCluster | None:
        """The in-cluster settings, or None outside a pod (or without a token to use)."""
        host = environ.get(ENV_HOST, "").strip()
        port = environ.get(ENV_PORT, "").strip()
        folder = Path(environ.get(ENV_SERVICEACCOUNT_DIR) or SERVICEACCOUNT_DIR)
        if not host or not port.isdigit() or not (folder / "token").is_file():
            return None
        namespace = environ.get(ENV_POD_NAMESPACE, "").strip() or _read(folder / "namespace")
        if not namespace:
            return None
        pod = environ.get(ENV_POD_NAME, "").strip() or None
        return cls(host.strip("[]"), int(port), folder, namespace, pod)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _header_safe(token: str) -> bool:
    """A bearer token is printable ASCII without spaces (RFC 6750's b64token and JWTs).

    Anything else would make ``http.client`` raise a ValueError quoting the whole
    header, token included, into a log.
    """
    return all(0x21 <= ord(char) <= 0x7E for char in token)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class KubeClient:
    """Plain HTTPS calls to the API server as this pod's ServiceAccount."""

    def __init__(self, cluster: InCluster, timeout: float = 10.0) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token = ""
        self._token_stamp: object = None
        self._context: ssl.SSLContext | None = None
        self._ca_stamp: object = None

    # --- credentials, re-read when they change ----------------------------------------

    def _bearer(self) -> str:
        path = self.cluster.account_dir / "token"
        with self._lock:
            stamp = _stamp(path)
            if stamp != self._token_stamp or not self._token:
                self._token = _read(path)
                self._token_stamp = stamp
            if not self._token:
                raise ClusterApiError(str(path), "no ServiceAccount token to authenticate with")
            if not _header_safe(self._token):
                self._token = ""  # never kept, never sent; read again when the file changes
                raise ClusterApiError(
                    str(path),
                    "the ServiceAccount token holds control characters or spaces (a corrupt "
                    "or hand-written token file); not sending it",
                )
            return self._token

    def _ssl(self) -> ssl.SSLContext:
        path = self.cluster.account_dir / "ca.crt"
        with self._lock:
            stamp = _stamp(path)
            if self._context is None or stamp != self._ca_stamp:
                try:
                    self._context = ssl.create_default_context(cafile=str(path))
                except Exception as error:  # a bad CA file is a ClusterApiError
                    raise ClusterApiError(str(path), f"cannot load the CA: {error}") from None
                self._ca_stamp = stamp
            return self._context

    def _connect(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.cluster.host, self.cluster.port, timeout=timeout, context=self._ssl()
        )

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._bearer()}",
            "Accept": "application/json",
            "User-Agent": "hourglass-agent",
        }
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    # --- calls ------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str | None = None
    ) -> dict[str, Any]:
        """One call; raises `ClusterApiError` (with the HTTP status) on anything but 2xx."""
        data = None if body is None else json.dumps(body).encode()
        connection = self._connect(self.timeout)
        try:
            connection.request(method, path, body=data, headers=self._headers(content_type))
            response = connection.getresponse()
            payload = response.read(_MAX_BODY + 1)
        except ClusterApiError:
            raise
        except Exception as error:  # every failure is a ClusterApiError
            raise ClusterApiError(path, _describe(error)) from None
        finally:
            connection.close()
        return _decode(path, response.status, payload)

    def watch(self, path: str, params: Mapping[str, str], session: WatchSession) -> Iterator[Any]:
        """Stream the events of a watch (one JSON object per line) until the server ends it.

        ``session.close()`` from another thread ends the stream at once.
        """
        query = urllib.parse.urlencode({**params, "watch": "true"})
        timeout = float(params.get("timeoutSeconds", "300")) + 30
        connection = self._connect(timeout)
        if not session.attach(connection):
            connection.close()
            return
        try:
            connection.request("GET", f"{path}?{query}", headers=self._headers())
            if session.closed:  # closed while connecting: its socket was not there to shut
                return
            response = connection.getresponse()
            if response.status != 200:
                _decode(path, response.status, response.read(_MAX_BODY + 1))
            while True:
                line = response.readline(_MAX_LINE)
                if not line:
                    return
                if line.strip():
                    yield _json(path, line)
        except ClusterApiError:
            raise
        except Exception as error:  # every failure is a ClusterApiError
            if session.closed:
                return
            raise ClusterApiError(path, _describe(error)) from None
        finally:
            session.detach()
            connection.close()


class WatchSession:
    """Lets another thread cut a blocking watch short (by shutting its socket down).

    One session serves every watch of a watcher's life; once closed, it stays closed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: http.client.HTTPSConnection | None = None
        self.closed = False

    def attach(self, connection: http.client.HTTPSConnection) -> bool:
        """Track ``connection``; False when the session is already closed (do not use it)."""
        with self._lock:
            if self.closed:
                return False
            self._connection = connection
            return True

    def detach(self) -> None:
        with self._lock:
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _describe(error: BaseException) -> str:
    """A failed call, said without echoing what was sent.

    Network and HTTP errors describe the connection; any other error (``http.client``'s
    ValueError on a header, a bug) may quote the request, and so the token: its type only.
    """
    if isinstance(error, (OSError, http.client.HTTPException)):
        return f"{type(error).__name__}: {str(error)[:200]}"
    return f"{type(error).__name__} while sending the request (details withheld: they may quote it)"


def _json(path: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ClusterApiError(path, "the API server sent something that is not JSON") from None


def _decode(path: str, status: int, payload: bytes) -> dict[str, Any]:
    if len(payload) > _MAX_BODY:
        raise ClusterApiError(path, f"response over {_MAX_BODY} bytes", status=status)
    if not 200 <= status < 300:
        raise ClusterApiError(path, _refusal(payload), status=status)
    body = _json(path, payload) if payload else {}
    if not isinstance(body, dict):
        raise ClusterApiError(path, "the API server sent a non-object", status=status)
    return body


def _refusal(payload: bytes) -> str:
    """Why the server refused: a Status object's message, or the start of a plain-text body.

    kube-apiserver answers its in-flight and priority-and-fairness limits with a plain-text
    429 ("Too many requests, please try again later."); 1,000 agents starting at once
    meet it (issue 21). Its status must reach the caller, not "something that is not JSON".
    """
    try:
        body = json.loads(payload) if payload.strip() else {}
    except ValueError:
        text = payload.decode("utf-8", "replace")
        printable = "".join(c if c.isprintable() else " " for c in text).strip()
        return printable[:200] or "no message"
    if not isinstance(body, dict):
        return "no message"
    return str(body.get("message") or body.get("reason") or "no message")[:300]
