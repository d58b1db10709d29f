"""The operator's exceptions, under agent_lib's `HourglassError`."""

from __future__ import annotations

from agent_lib.errors import ConfigError, HourglassError


class OperatorError(HourglassError):
    """Base of the errors the operator raises on purpose."""


class OperatorConfigError(OperatorError, ConfigError):
    """A flag or environment variable of the operator is not acceptable."""


class ApiRequestError(OperatorError):
    """A Kubernetes API call failed in a way a retry of the handler may fix."""

    def __init__(self, verb: str, what: str, status: int, reason: str) -> None:
        self.verb = verb
        self.what = what
        self.status = status
        self.reason = reason
        super().__init__(f"{verb} {what}: HTTP {status}: {reason}")
