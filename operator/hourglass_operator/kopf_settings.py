"""The kopf settings Hourglass runs with, whichever way kopf is started.

`hourglass operator` applies them before starting kopf; with `kopf run -m
hourglass_operator.handlers` (or kopf's KopfRunner) the startup handler applies them.
"""

from __future__ import annotations

import logging

import kopf

from agent_lib.config.bundle import CONFIGMAP_NAME
from hourglass_operator import webhook
from hourglass_operator.cronjob import POLICY_LABEL
from hourglass_operator.settings import OperatorSettings

ANNOTATIONS_PREFIX = "hourglass.dev"
LIST_PAGE_SIZE = 500


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
    kopf_settings.watching.server_timeout = 600
    # Only what the operator owns reaches it: filtered by the API server, not after the
    # fact, so 10,000 unrelated ConfigMaps cost nothing here. hourglass-config is selected
    # by name (an edit that strips our labels is still an edit to repair); cleanup Jobs
    # by the label the CronJob's template gives them. Initial lists come in pages.
    kopf_settings.watching.field_selectors["v1", "configmaps"] = f"metadata.name={CONFIGMAP_NAME}"
    kopf_settings.watching.label_selectors["batch", "v1", "jobs"] = POLICY_LABEL
    kopf_settings.watching.chunk_size = LIST_PAGE_SIZE
    kopf_settings.watching.client_timeout = 660
    if settings.webhook:
        kopf_settings.admission.server = webhook.server(settings)
