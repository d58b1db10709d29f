"""What a `TimeoutManager` starts when it runs in a pod: the API watch and the pod report.

Decided once at start from the environment (``HOURGLASS_CONFIG_WATCH``, the in-cluster
signs, ``POD_NAME``): outside a pod, or with ``file``, neither runs and the manager is
exactly the file watcher it always was. The pod report runs whenever the pod's name is
known, whatever the watch mode, so a pod on the file path still says what it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from agent_lib.timeouts._kube import InCluster, KubeClient
from agent_lib.timeouts._pod_report import Applied, PodReporter
from agent_lib.timeouts.apiwatch import BundleCallback, ConfigMapWatch, WatchMode, wants_api

logger = logging.getLogger("agent_lib.timeouts.apiwatch")


class ClusterLink:
    """The manager's connection to its own namespace and Pod; every part optional."""

    def __init__(
        self, mode: WatchMode, environ: Mapping[str, str], on_bundle: BundleCallback
    ) -> None:
        self.cluster = InCluster.detect(environ)
        client = KubeClient(self.cluster) if self.cluster is not None else None
        self.watch: ConfigMapWatch | None = None
        self.reporter: PodReporter | None = None
        if wants_api(mode, self.cluster) and client is not None:
            self.watch = ConfigMapWatch(client, on_bundle)
        if client is not None and self.cluster is not None and self.cluster.pod_name:
            self.reporter = PodReporter(client, self.cluster.pod_name, self.cluster.namespace)

    @property
    def state(self) -> str:
        """The API watch: ``off``, ``connecting``, ``watching``, ``retrying`` or ``stopped``."""
        return self.watch.state if self.watch is not None else "off"

    def start(self, first: Applied) -> None:
        if self.reporter is not None:
            self.reporter.submit(first)
            self.reporter.start()
        if self.watch is not None:
            self.watch.start()

    def report(self, state: Applied) -> None:
        if self.reporter is not None:
            self.reporter.submit(state)

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.reporter is not None:
            self.reporter.stop()
