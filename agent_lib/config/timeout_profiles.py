"""The TimeoutProfile resource: named timeouts and a polling policy, with inheritance."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from agent_lib.config._base import (
    API_VERSION,
    Duration,
    K8sName,
    ObjectMeta,
    ResourceModel,
    SpecModel,
)
from agent_lib.durations import format_duration

TIMEOUT_NAME_PATTERN = r"^[a-z][a-zA-Z0-9]{0,62}$"
MAX_TIMEOUTS = 64

TimeoutName = Annotated[str, Field(pattern=TIMEOUT_NAME_PATTERN)]
"""A lowerCamelCase timeout name such as ``llmCall``."""

WELL_KNOWN_TIMEOUTS = ("request", "connect", "llmCall", "toolCall", "sessionIdle")


class PollingSpec(SpecModel):
    """How ``poll()`` retries: exponential backoff from ``interval`` up to ``maxInterval``.

    Every field is optional so that a child profile can override one of them; the
    rules between fields are checked on what is given here and again once resolved.
    """

    interval: Duration | None = None
    max_interval: Duration | None = None
    multiplier: Annotated[float, Field(ge=1.0, le=100.0)] | None = None
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    max_duration: Duration | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PollingSpec:
        check_polling_order(self.interval, self.max_interval, self.max_duration)
        return self


def check_polling_order(
    interval: float | None, max_interval: float | None, max_duration: float | None
) -> None:
    """Enforce ``interval <= maxInterval <= maxDuration`` on whichever values are known."""
    pairs = (
        ("interval", interval, "maxInterval", max_interval),
        ("maxInterval", max_interval, "maxDuration", max_duration),
        ("interval", interval, "maxDuration", max_duration),
    )
    for low_name, low, high_name, high in pairs:
        if low is not None and high is not None and low > high:
            raise PydanticCustomError(
                "polling_order",
                "{low_name} ({low}) must not exceed {high_name} ({high})",
                {
                    "low_name": low_name,
                    "low": format_duration(low),
                    "high_name": high_name,
                    "high": format_duration(high),
                },
            )


TuningMode = Literal["Off", "Recommend", "Apply"]


class TuningBounds(SpecModel):
    """The range a tuned timeout may take: a recommendation is clamped into it."""

    min: Duration | None = None
    max: Duration | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TuningBounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "bounds_order",
                "min ({low}) must not exceed max ({high})",
                {"low": format_duration(self.min), "high": format_duration(self.max)},
            )
        return self


class TuningSpec(SpecModel):
    """Timeouts sized from observed latency: ``percentile`` of the last ``window``, times
    ``headroom``. ``Recommend`` only writes status; ``Apply`` also renders the value."""

    mode: TuningMode = "Off"
    percentile: Annotated[float, Field(ge=50.0, le=99.999)] = 99.9
    headroom: Annotated[float, Field(ge=1.0, le=10.0)] = 1.5
    window: Duration = 86400.0
    min_samples: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1000
    bounds: Annotated[dict[TimeoutName, TuningBounds], Field(max_length=MAX_TIMEOUTS)] = Field(
        default_factory=dict
    )


class TimeoutProfileSpec(SpecModel):
    default: bool = False
    extends: K8sName | None = None
    timeouts: Annotated[dict[TimeoutName, Duration], Field(max_length=MAX_TIMEOUTS)] = Field(
        default_factory=dict
    )
    polling: PollingSpec | None = None
    tuning: TuningSpec | None = None


class TimeoutProfile(ResourceModel):
    """A whole ``TimeoutProfile`` document as written with kubectl or read from the API."""

    api_version: Literal["hourglass.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TimeoutProfile"] = "TimeoutProfile"
    metadata: ObjectMeta
    spec: TimeoutProfileSpec = Field(default_factory=TimeoutProfileSpec)
