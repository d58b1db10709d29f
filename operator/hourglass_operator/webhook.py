"""The validating admission webhook: the same models and namespace rules as the operator.

Registered only when enabled (``--webhook``), so that a cluster without the webhook
configuration still gets every check from the operator's status and Events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from agent_lib.config.problems import Problem
from agent_lib.config.specs import check_namespace, parse_resource
from hourglass_operator.reconcile import key_of
from hourglass_operator.settings import OperatorSettings

GROUP = "hourglass.dev"
VERSION = "v1alpha1"
INDEXES = {"timeoutprofiles": "hourglass_profiles", "sessionpolicies": "hourglass_policies"}


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


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the validating handlers (webhook ids `validate-timeoutprofile`, `-sessionpolicy`)."""
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
        )(_validator(INDEXES["timeoutprofiles"], INDEXES["sessionpolicies"]))


def _validator(profiles_index: str, policies_index: str) -> Any:
    def validate(body: Mapping[str, Any], **kwargs: Any) -> None:
        namespace = str(body.get("metadata", {}).get("namespace") or "")
        siblings: list[Mapping[str, Any]] = []
        for index_name in (profiles_index, policies_index):
            index = kwargs.get(index_name)
            if index is not None and namespace in index:
                siblings.extend(index[namespace])
        # Inheritance is not refused here: a parent may legitimately be applied after its child.
        problems = admission_problems(body, siblings)
        if problems:
            raise kopf.AdmissionError(message_for(problems), code=422)

    return validate


def server(settings: OperatorSettings) -> kopf.WebhookServer:
    return kopf.WebhookServer(
        addr=settings.webhook_addr,
        port=settings.webhook_port,
        certfile=settings.webhook_cert,
        pkeyfile=settings.webhook_key,
        insecure=settings.webhook_insecure,
    )
