"""The validating admission webhook: the same models and namespace rules as the operator.

Registered only when enabled (``--webhook``), so that a cluster without the webhook
configuration still gets every check from the operator's status and Events.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import kopf

from agent_lib.config.problems import Problem
from agent_lib.config.specs import check_namespace, parse_resource
from hourglass_operator.errors import ApiRequestError
from hourglass_operator.k8s import Kube
from hourglass_operator.reconcile import key_of
from hourglass_operator.settings import OperatorSettings
from hourglass_operator.webhook_config import RegisteringWebhookServer

GROUP = "hourglass.dev"
VERSION = "v1alpha1"


def admission_problems(
    body: Mapping[str, Any], siblings: Iterable[Mapping[str, Any]] = ()
) -> list[Problem]:
    """Why ``body`` may not be admitted, given the other resources of its namespace."""
    model, problems = parse_resource(body)
    if model is None or problems:
        return problems
    me = key_of(body)
    namespace = str(body.get("metadata", {}).get("namespace") or "default")
    others = []
    for sibling in siblings:
        if key_of(sibling) == me:
            continue
        other, other_problems = parse_resource(sibling)
        if other is not None and not other_problems:
            others.append(other)
    return [
        p
        for p in check_namespace(namespace, [*others, model])
        if (p.kind, p.name) == (me.kind, me.name) and not p.field.startswith("spec.extends")
    ]


def message_for(problems: Iterable[Problem]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" if p.field else p.reason for p in problems)


SiblingReader = Callable[[str], Awaitable[list[Mapping[str, Any]]]]
"""namespace -> its TimeoutProfiles and SessionPolicies, read from the API server."""


def register(registry: kopf.OperatorRegistry, read_siblings: SiblingReader) -> None:
    """Add the validating handlers (webhook ids `validate-timeoutprofile`, `-sessionpolicy`).

    The namespace's other resources are read from the API server on each review, never
    from kopf's indices: a replica paused by peering keeps serving the webhook, and its
    indices are stale or empty, so it would admit a second default profile.
    """
    for plural, kind in (
        ("timeoutprofiles", "timeoutprofile"),
        ("sessionpolicies", "sessionpolicy"),
    ):
        kopf.on.validate(
            GROUP,
            VERSION,
            plural,
            id=f"validate-{kind}",
            operations=["CREATE", "UPDATE"],
            registry=registry,
        )(_validator(read_siblings))


def _validator(read_siblings: SiblingReader) -> Any:
    async def validate(body: Mapping[str, Any], **kwargs: Any) -> None:
        namespace = str(body.get("metadata", {}).get("namespace") or "")
        try:
            siblings = await read_siblings(namespace)
        except ApiRequestError as error:
            raise kopf.AdmissionError(
                f"cannot read the other resources of {namespace!r} to check this one "
                f"({error}); try again",
                code=503,
            ) from None
        # Inheritance is not refused here: a parent may legitimately be applied after its child.
        problems = admission_problems(body, siblings)
        if problems:
            raise kopf.AdmissionError(message_for(problems), code=422)

    return validate


async def read_siblings(kube: Kube, namespace: str) -> list[Mapping[str, Any]]:
    """Every TimeoutProfile and SessionPolicy of ``namespace``, as the API server has them."""
    found: list[Mapping[str, Any]] = []
    for plural, kind in (
        ("timeoutprofiles", "TimeoutProfile"),
        ("sessionpolicies", "SessionPolicy"),
    ):
        listed = await kube.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}")
        for item in (listed or {}).get("items", []):
            found.append({"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **item})
    return found


def server(settings: OperatorSettings) -> kopf.WebhookServer:
    """kopf's server; it also registers itself when the operator manages its configuration."""
    options: dict[str, Any] = {
        "addr": settings.webhook_addr,
        "port": settings.webhook_port,
        "certfile": settings.webhook_cert,
        "pkeyfile": settings.webhook_key,
        "insecure": settings.webhook_insecure,
        "cafile": settings.webhook_ca,
        "cadata": base64.b64decode(settings.webhook_ca_bundle)
        if settings.webhook_ca_bundle
        else None,
    }
    if settings.webhook_configuration:
        return RegisteringWebhookServer(settings, **options)
    return kopf.WebhookServer(**options)
