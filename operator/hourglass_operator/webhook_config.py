"""The operator fills in its own ValidatingWebhookConfiguration once its webhook serves.

Why: a configuration shipped with its webhooks in place exists before any replica is
ready, so with `failurePolicy: Fail` every TimeoutProfile of the same `helm install` is
refused. The chart ships the configuration *empty* (Helm still owns it and deletes it on
uninstall); each replica patches the webhooks in after its server listens. All replicas
share one serving certificate, so they write identical content: no flapping.

Why not kopf's own ``settings.admission.managed``: it sets no namespaceSelector (one
release's webhook would judge every namespace's profiles, and fail on those it may not
read), it also creates a MutatingWebhookConfiguration, and it removes the webhooks when
any replica stops, even while another still serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf

from hourglass_operator.errors import ApiRequestError, OperatorConfigError
from hourglass_operator.k8s import Kube
from hourglass_operator.settings import OperatorSettings

WEBHOOKS = (
    ("timeoutprofiles", "validate-timeoutprofile"),
    ("sessionpolicies", "validate-sessionpolicy"),
)
"""(plural, kopf handler id): kopf serves each handler at ``/<handler id>``."""
CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
_RETRY_MAX_S = 60.0

logger = logging.getLogger(__name__)


def webhooks(client_config: Mapping[str, Any], settings: OperatorSettings) -> list[dict[str, Any]]:
    """The ``webhooks`` of the configuration, given the caBundle kopf's server reports."""
    out = []
    for plural, handler_id in WEBHOOKS:
        config: dict[str, Any]
        if settings.webhook_url:
            config = {"url": f"{settings.webhook_url}/{handler_id}"}
        elif settings.webhook_service is None:
            raise OperatorConfigError(
                "HOURGLASS_WEBHOOK_SERVICE", "needed (or HOURGLASS_WEBHOOK_URL)"
            )
        else:
            namespace, name, port = settings.webhook_service
            config = {
                "service": {
                    "namespace": namespace,
                    "name": name,
                    "port": port,
                    "path": f"/{handler_id}",
                }
            }
        if client_config.get("caBundle"):
            config["caBundle"] = client_config["caBundle"]
        hook: dict[str, Any] = {
            "name": f"{handler_id}.hourglass.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": settings.webhook_failure_policy,
            "matchPolicy": "Equivalent",
            "timeoutSeconds": 10,
            "clientConfig": config,
            "rules": [
                {
                    "apiGroups": ["hourglass.dev"],
                    "apiVersions": ["v1alpha1"],
                    "resources": [plural],
                    "operations": ["CREATE", "UPDATE"],
                    "scope": "Namespaced",
                }
            ],
        }
        if settings.namespaces:
            hook["namespaceSelector"] = {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": sorted(set(settings.namespaces)),
                    }
                ]
            }
        out.append(hook)
    return out


class RegisteringWebhookServer(kopf.WebhookServer):
    """kopf's HTTPS server that registers itself each time it (re)starts listening.

    kopf restarts the server, and yields a new client config, when the certificate files
    change: the caBundle is then written again.
    """

    def __init__(self, settings: OperatorSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            await register(client_config, self._settings, Kube())
            yield client_config


async def register(
    client_config: Mapping[str, Any], settings: OperatorSettings, kube: Kube
) -> None:
    """Patch our webhooks into the configuration, retrying with backoff until it works.

    The server already listens meanwhile; only the API server's calls wait for this.
    """
    name = settings.webhook_configuration
    if not name:
        return
    body = {"webhooks": webhooks(client_config, settings)}
    delay = 1.0
    while True:
        try:
            found = await kube.merge_patch(f"{CONFIGURATIONS}/{name}", body)
        except ApiRequestError as error:
            problem = str(error)
        else:
            if found is not None:
                logger.info("registered the webhook in ValidatingWebhookConfiguration %s", name)
                return
            problem = "it does not exist (the chart creates it, empty)"
        logger.warning(
            "cannot register the webhook in ValidatingWebhookConfiguration %s: %s; "
            "retrying in %.0f s",
            name,
            problem,
            delay,
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, _RETRY_MAX_S)
