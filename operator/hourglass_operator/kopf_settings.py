"""The kopf settings Hourglass runs with, whichever way kopf is started.

`hourglass operator` applies them before starting kopf; with `kopf run -m
hourglass_operator.handlers` (or kopf's KopfRunner) the startup handler applies them.
"""

from __future__ import annotations

import logging

import kopf

from hourglass_operator import webhook
from hourglass_operator.settings import OperatorSettings

ANNOTATIONS_PREFIX = "hourglass.dev"


def apply(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Handler progress in our annotations (never in status), quiet Events, webhook server."""
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATIONS_PREFIX
    )
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration"
    )
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = "hourglass-operator"
    # kopf waits this long for more events of one object before handling it (default
    # 0.1 s): the reconcile is idempotent, so a short batch is enough and saves latency.
    kopf_settings.batching.batch_window = 0.02
    kopf_settings.watching.server_timeout = 600
    kopf_settings.watching.client_timeout = 660
    if settings.webhook:
        kopf_settings.admission.server = webhook.server(settings)
