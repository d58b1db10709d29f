"""Every agent pod says what it runs: annotations on its own Pod object.

- ``hourglass.dev/applied-hash``: the hash of the config in use (the ConfigMap's
  ``hourglass.dev/config-hash`` when it came from there);
- ``hourglass.dev/applied-profile``: the profile in use;
- ``hourglass.dev/config-error``: ``field: reason`` of the last rejected config, short;
  removed by the next good one;
- ``hourglass.dev/rejected-hash``: the hash of that rejected config, beside
  ``config-error`` and removed with it. The operator counts a pod as rejecting a hash only
  when this names it, so a fix is never blamed for the error it fixes.

One JSON merge patch on the pod (name and namespace from the Downward API), written from
a background thread so the agent never waits for it: only the latest state is kept,
a state already written is not written again, and failures are logged once per streak
and retried with backoff. The shipped ValidatingAdmissionPolicy lets the agents'
ServiceAccount change exactly these annotations on exactly its own pod; under a policy
that predates ``rejected-hash`` the report is written without it (the pod then shows as
pending rather than rejecting), with one warning.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Final

from agent_lib.errors import ClusterApiError
from agent_lib.timeouts._kube import KubeClient
from agent_lib.timeouts.apiwatch import Backoff

APPLIED_HASH: Final = "hourglass.dev/applied-hash"
APPLIED_PROFILE: Final = "hourglass.dev/applied-profile"
CONFIG_ERROR: Final = "hourglass.dev/config-error"
REJECTED_HASH: Final = "hourglass.dev/rejected-hash"
MAX_ERROR_CHARS: Final = 200
_MERGE_PATCH: Final = "application/merge-patch+json"

logger = logging.getLogger("agent_lib.timeouts.pod_report")


@dataclass(frozen=True)
class Applied:
    """What the pod runs, as its annotations say it."""

    hash: str
    profile: str
    error: str | None = None
    rejected_hash: str | None = None
    """The hash of the config ``error`` is about, when known (written only with ``error``)."""

    def patch(self, *, name_rejected: bool = True) -> dict[str, object]:
        error = self.error
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        rejected = self.rejected_hash if error is not None and name_rejected else None
        return {
            "metadata": {
                "annotations": {
                    APPLIED_HASH: self.hash,
                    APPLIED_PROFILE: self.profile,
                    CONFIG_ERROR: error,
                    REJECTED_HASH: rejected,
                }
            }
        }


class PodReporter:
    """Keeps this pod's ``hourglass.dev/applied-*`` and ``config-error`` annotations true."""

    def __init__(
        self, client: KubeClient, pod: str, namespace: str, backoff: Backoff | None = None
    ) -> None:
        self.client = client
        self.path = (
            f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
            f"/pods/{urllib.parse.quote(pod, safe='')}"
        )
        self.backoff = backoff or Backoff(first=0.5, cap=60.0)
        self.written: Applied | None = None
        """The last state the API server accepted."""
        self._pending: Applied | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._unnamed = False

    def submit(self, state: Applied) -> None:
        """Ask for ``state`` to be written (returns at once; the newest state wins)."""
        with self._lock:
            self._pending = state
        self._wake.set()

    def start(self) -> PodReporter:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="hourglass-pod-report", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop, after a last try to write a pending state (bounded by ``timeout``)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                state = self._pending
            if state is not None and state != self.written and not self._write(state):
                if self._stop.wait(self.backoff.next()):
                    return
                self._wake.set()
                continue
            if self._stop.is_set():
                return

    def _write(self, state: Applied) -> bool:
        try:
            self._patch(state)
        except ClusterApiError as error:
            if not self._failing:
                logger.warning(
                    "hourglass: cannot annotate this pod with the applied config: %s%s",
                    error,
                    " (are the agents' Role and admission policy installed, and POD_NAME "
                    "set from the Downward API?)" * (error.status in (403, 404, 422)),
                    extra={"field": error.field, "reason": error.reason, "status": error.status},
                )
                self._failing = True
            return False
        self.written = state
        self.backoff.reset()
        if self._failing:
            logger.info("hourglass: pod annotations written again")
            self._failing = False
        return True

    def _patch(self, state: Applied) -> None:
        patch = state.patch()
        try:
            self.client.request("PATCH", self.path, patch, content_type=_MERGE_PATCH)
        except ClusterApiError as error:
            if error.status not in (403, 422) or patch == state.patch(name_rejected=False):
                raise
            self.client.request(
                "PATCH", self.path, state.patch(name_rejected=False), content_type=_MERGE_PATCH
            )
            if not self._unnamed:
                logger.warning(
                    "hourglass: the API server refused the %s annotation (%s); the agents' "
                    "admission policy predates it: this pod reports its config error without "
                    "the hash, and counts as pending rather than rejecting",
                    REJECTED_HASH,
                    error,
                )
                self._unnamed = True
