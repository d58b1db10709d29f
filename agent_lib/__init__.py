"""agent_lib: live timeouts and self-cleaning sessions for agent services.

The public API is what this module exports; everything else is private.
"""

from agent_lib.durations import format_duration, parse_duration
from agent_lib.errors import (
    ConfigError,
    DeadlineExceeded,
    DurationError,
    HourglassError,
    InvalidSessionId,
    PayloadTooLarge,
    SessionError,
    SessionNotFound,
    SessionStoreUnavailable,
)
from agent_lib.quantity import parse_quantity

__all__ = [
    "ConfigError",
    "DeadlineExceeded",
    "DurationError",
    "HourglassError",
    "InvalidSessionId",
    "PayloadTooLarge",
    "SessionError",
    "SessionNotFound",
    "SessionStoreUnavailable",
    "format_duration",
    "parse_duration",
    "parse_quantity",
]
