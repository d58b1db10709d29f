"""Starting the operator: kopf with our registry, settings, peering and probes."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import kopf
from kopf._core.engines.peering import Identity  # the type kopf.operator() asks for

from hourglass_operator import kopf_settings as hourglass_kopf_settings
from hourglass_operator import logs
from hourglass_operator.ha import require_peering
from hourglass_operator.handlers import build_registry
from hourglass_operator.k8s import Kube
from hourglass_operator.settings import OperatorSettings

DEFAULT_PEERING = "hourglass"
DEV_PRIORITY = 666
"""kopf's own `--dev` priority: a developer's operator outranks the cluster's."""


@dataclass(frozen=True)
class KopfOptions:
    """The standard kopf options, passed through unchanged."""

    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    liveness: str | None = None
    peering: str | None = None
    standalone: bool | None = None
    priority: int | None = None
    dev: bool = False
    verbose: bool = False
    debug: bool = False
    quiet: bool = False


def kopf_settings(options: KopfOptions, settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's settings for Hourglass: our annotations, no status pollution, peering."""
    kopf_settings = kopf.OperatorSettings()
    hourglass_kopf_settings.apply(kopf_settings, settings)
    kopf_settings.peering.name = options.peering or DEFAULT_PEERING
    # Several replicas: never fall back to acting alone when peering is missing.
    kopf_settings.peering.mandatory = options.peering is not None or (
        settings.replicas > 1 and not options.standalone
    )
    kopf_settings.peering.standalone = bool(options.standalone)
    kopf_settings.peering.priority = _priority(options)
    return kopf_settings


def _priority(options: KopfOptions) -> int:
    """Replicas of equal priority all pause in kopf; a random one lets exactly one lead."""
    if options.priority is not None:
        return options.priority
    if options.dev:
        return DEV_PRIORITY
    return 1 + secrets.randbelow(1_000_000)


def peering_identity() -> str:
    """This replica's id in kopf's peering, as kopf would build it (``POD_ID`` in a pod),
    chosen here so that our own loops can find themselves among the peers."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def run(options: KopfOptions, settings: OperatorSettings) -> None:
    """Run until SIGTERM/SIGINT."""
    logs.configure(settings.log_format, verbose=options.verbose, debug=options.debug)
    if options.quiet:
        logging.getLogger().setLevel(logging.ERROR)
    standalone = bool(options.standalone)
    asyncio.run(
        require_peering(
            Kube(),
            name=options.peering or DEFAULT_PEERING,
            namespaces=list(options.namespaces),
            clusterwide=options.all_namespaces,
            replicas=settings.replicas,
            standalone=standalone,
        )
    )
    identity = peering_identity()
    registry = build_registry(settings, identity=identity)
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=kopf_settings(options, settings),
            clusterwide=options.all_namespaces,
            namespaces=list(options.namespaces),
            liveness_endpoint=options.liveness,
            standalone=options.standalone,
            priority=_priority(options) if not options.standalone else None,
            peering_name=options.peering,
            identity=Identity(identity),
        )
    )
