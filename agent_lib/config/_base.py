"""Shared building blocks of the spec models: camelCase fields, durations, names."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from agent_lib.durations import DURATION_PATTERN, parse_duration
from agent_lib.errors import ConfigError

API_GROUP = "hourglass.dev"
API_VERSION: Final = "hourglass.dev/v1alpha1"

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

_CREDENTIAL_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s@]*@")


class SpecModel(BaseModel):
    """Base of every spec model: camelCase in YAML, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
    )


def _to_seconds(value: Any) -> float:
    try:
        return parse_duration(value)
    except ConfigError as error:
        raise PydanticCustomError("duration", error.reason) from None


Duration = Annotated[
    float,
    BeforeValidator(_to_seconds),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": DURATION_PATTERN,
            "description": "A duration such as 500ms, 30s, 1m30s or 2h, or whole seconds.",
        }
    ),
]
"""A positive duration of at most 30 days, held as float seconds."""

K8sName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)]
"""A Kubernetes object name (DNS-1123 subdomain)."""

NamespaceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]


MASKED_KEY = "<a key holding credentials>"
"""Stands for a mapping key with ``scheme://user:pass@`` in it, wherever a path is printed."""


def find_inline_credentials(value: object, path: tuple[str | int, ...] = ()) -> list[str]:
    """Dotted paths of every string that carries ``scheme://user:pass@`` credentials."""
    found: list[str] = []
    if isinstance(value, str):
        if _CREDENTIAL_URL.search(value):
            found.append(".".join(str(p) for p in path))
    elif isinstance(value, dict):
        for key, item in value.items():
            if _CREDENTIAL_URL.search(str(key)):  # a key is echoed in every path: masked
                found.append(".".join(str(p) for p in (*path, MASKED_KEY)))
                continue
            found.extend(find_inline_credentials(item, (*path, str(key))))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(find_inline_credentials(item, (*path, index)))
    return found


CREDENTIALS_REASON = (
    "credentials must not be written inline; put the URL in a Secret and "
    "reference it with spec.store.urlSecretRef"
)


class ObjectMeta(BaseModel):
    """The part of ``metadata`` Hourglass reads; the API server's own fields pass through."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: K8sName
    namespace: NamespaceName | None = None
    uid: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = Field(None, alias="creationTimestamp")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ResourceModel(BaseModel):
    """Base of a whole resource document: API fields pass through, inline credentials are refused.

    Each subclass declares its own ``apiVersion``, ``kind``, ``metadata`` and ``spec``
    fields, so that their order (and so every dump) stays that of the document.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    if TYPE_CHECKING:
        metadata: ObjectMeta

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict) and (paths := find_inline_credentials(data.get("spec"))):
            raise PydanticCustomError(
                "credentials",
                "spec.{path}: {reason}",
                {"path": paths[0], "reason": CREDENTIALS_REASON},
            )
        return data

    @property
    def name(self) -> str:
        return self.metadata.name
