"""The SessionPolicy resource: where sessions live and how long they may."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from agent_lib.config._base import (
    API_VERSION,
    DNS1123_SUBDOMAIN,
    Duration,
    K8sName,
    ObjectMeta,
    ResourceModel,
    SpecModel,
)
from agent_lib.config.cron import CronError, check_schedule, check_time_zone
from agent_lib.durations import format_duration
from agent_lib.errors import ConfigError
from agent_lib.quantity import QUANTITY_PATTERN, parse_quantity

KEY_PREFIX_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a secret
MAX_SESSIONS_LIMIT = 100_000_000


def _check_quantity(value: Any) -> Any:
    try:
        parse_quantity(value)
    except ConfigError as error:
        raise PydanticCustomError("quantity", error.reason) from None
    return str(value)


MemoryQuantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "description": "A Kubernetes quantity such as 512Mi or 2Gi.",
        }
    ),
]


def _check_cron(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "cron", "{value} is not a cron schedule", {"value": repr(value)[:80]}
        )
    try:
        return check_schedule(value)
    except CronError as error:
        raise PydanticCustomError(
            "cron",
            "{value} is not a cron schedule Kubernetes accepts: {reason}",
            {"value": repr(value)[:80], "reason": str(error)},
        ) from None


def _check_time_zone(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "time_zone", "{value} is not a time zone name", {"value": repr(value)[:80]}
        )
    try:
        return check_time_zone(value)
    except CronError as error:
        raise PydanticCustomError("time_zone", str(error)) from None


CronSchedule = Annotated[
    str,
    BeforeValidator(_check_cron),
    Field(
        max_length=128,
    ),
]
TimeZone = Annotated[
    str,
    BeforeValidator(_check_time_zone),
    Field(
        min_length=1,
        max_length=64,
    ),
]


class SecretKeyRef(SpecModel):
    name: K8sName
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]


class StoreSpec(SpecModel):
    url_secret_ref: SecretKeyRef | None = None
    key_prefix: Annotated[str, Field(pattern=KEY_PREFIX_PATTERN)] = "hourglass"


class CleanupSpec(SpecModel):
    schedule: CronSchedule = "*/5 * * * *"
    time_zone: TimeZone | None = None
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    suspend: bool = False


class SessionPolicySpec(SpecModel):
    store: StoreSpec = Field(default_factory=StoreSpec)
    ttl: Duration = 1800.0
    max_lifetime: Duration = 86400.0
    max_sessions: Annotated[int, Field(ge=1, le=MAX_SESSIONS_LIMIT)] | None = None
    max_memory: MemoryQuantity | None = None
    cleanup: CleanupSpec = Field(default_factory=CleanupSpec)

    @model_validator(mode="after")
    def _lifetime_covers_ttl(self) -> SessionPolicySpec:
        if self.max_lifetime < self.ttl:
            raise PydanticCustomError(
                "lifetime_order",
                "maxLifetime ({lifetime}) must be at least ttl ({ttl})",
                {
                    "lifetime": format_duration(self.max_lifetime),
                    "ttl": format_duration(self.ttl),
                },
            )
        return self

    @property
    def max_memory_bytes(self) -> int | None:
        return None if self.max_memory is None else parse_quantity(self.max_memory)


class SessionPolicy(ResourceModel):
    """A whole ``SessionPolicy`` document."""

    api_version: Literal["hourglass.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["SessionPolicy"] = "SessionPolicy"
    metadata: ObjectMeta
    spec: SessionPolicySpec = Field(default_factory=SessionPolicySpec)


__all__ = [
    "DNS1123_SUBDOMAIN",
    "CleanupSpec",
    "SecretKeyRef",
    "SessionPolicy",
    "SessionPolicySpec",
    "StoreSpec",
]
