"""agent_lib: live timeouts and self-cleaning sessions for agent services.

The public API is what this module exports; everything else is private. The library
has two halves, `agent_lib.timeouts` and `agent_lib.sessions`, over the shared
`agent_lib.config` models and basics (durations, quantities, errors).
"""

from agent_lib import _moved
from agent_lib.durations import format_duration, parse_duration
from agent_lib.errors import (
    ConfigError,
    DeadlineExceeded,
    DurationError,
    HourglassError,
    InvalidSessionId,
    PayloadTooLarge,
    SessionConflict,
    SessionError,
    SessionExists,
    SessionNotFound,
    SessionStoreFull,
    SessionStoreLoading,
    SessionStoreReadOnly,
    SessionStoreResharding,
    SessionStoreUnavailable,
    UnknownTimeout,
)
from agent_lib.quantity import parse_quantity
from agent_lib.sessions.manager import (
    CleanupReport,
    Session,
    SessionManager,
    SyncSessionManager,
)
from agent_lib.timeouts.deadlines import (
    Deadline,
    check_deadline,
    current_deadline,
    deadline,
    remaining,
)
from agent_lib.timeouts.manager import AsyncTimeoutManager, TimeoutConfig, TimeoutManager
from agent_lib.timeouts.metrics import TimeoutEvents
from agent_lib.timeouts.polling import PollingPolicy, apoll, poll
from agent_lib.timeouts.reload import atomic_swap

_moved.install()

__all__ = [
    "AsyncTimeoutManager",
    "CleanupReport",
    "ConfigError",
    "Deadline",
    "DeadlineExceeded",
    "DurationError",
    "HourglassError",
    "InvalidSessionId",
    "PayloadTooLarge",
    "PollingPolicy",
    "Session",
    "SessionConflict",
    "SessionError",
    "SessionExists",
    "SessionManager",
    "SessionNotFound",
    "SessionStoreFull",
    "SessionStoreLoading",
    "SessionStoreReadOnly",
    "SessionStoreResharding",
    "SessionStoreUnavailable",
    "SyncSessionManager",
    "TimeoutConfig",
    "TimeoutEvents",
    "TimeoutManager",
    "UnknownTimeout",
    "apoll",
    "atomic_swap",
    "check_deadline",
    "current_deadline",
    "deadline",
    "format_duration",
    "parse_duration",
    "parse_quantity",
    "poll",
    "remaining",
]
