"""One exception hierarchy for agent_lib: every error says which field failed and why."""

from __future__ import annotations


class HourglassError(Exception):
    """Base of every error agent_lib raises on purpose."""


class ConfigError(HourglassError, ValueError):
    """A value in a spec, a file or an environment variable is not acceptable.

    ``field`` is a dotted path (``spec.polling.interval``) so that tools can print
    ``file:line: kind/name: field: reason`` without parsing the message.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class ClusterApiError(HourglassError, ConnectionError):
    """A call to the Kubernetes API from inside a pod failed (network, TLS, or HTTP status).

    ``field`` is the API path (or the credential file) and ``status`` the HTTP status,
    when the server answered at all; agent_lib logs these and backs off, never raises
    them into the agent's own code.
    """

    def __init__(self, field: str, reason: str, status: int | None = None) -> None:
        self.field = field
        self.reason = reason
        self.status = status
        prefix = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{field}: {prefix}{reason}")


class DurationError(ConfigError):
    """A duration string or number is malformed, not positive, or too large."""


class SessionError(HourglassError):
    """Base of the session errors."""


class InvalidSessionId(SessionError, ValueError):
    """A session id outside the allowed character set or length."""

    def __init__(self, session_id: object, reason: str) -> None:
        self.field = "session_id"
        self.reason = reason
        super().__init__(f"session_id {session_id!r:.80}: {reason}")


class PayloadTooLarge(SessionError, ValueError):
    """A session payload over the configured size cap."""

    def __init__(self, size: int, limit: int) -> None:
        self.field = "data"
        self.reason = f"serialised payload is {size} bytes, the cap is {limit}"
        self.size = size
        self.limit = limit
        super().__init__(f"data: {self.reason}")


class SessionNotFound(SessionError, KeyError):
    """The session does not exist (never created, expired, or deleted)."""


class SessionStoreUnavailable(SessionError, ConnectionError):
    """The session store could not be reached, or refused the call, after bounded retries.

    Raised instead of reporting success: when this escapes a write, the write may
    or may not have been applied, and the caller must treat it as not saved.
    ``reason`` is a short code: ``connection``, ``timeout``, ``auth`` (a missing or
    wrong password), ``noperm`` (an ACL denies a command), ``oom``, ``readonly``,
    ``loading``, ``tryagain``, ``masterdown``, ``clusterdown``, ``busy`` or ``error``.
    """

    def __init__(self, message: str, reason: str = "error") -> None:
        self.field = "store"
        self.reason = reason
        super().__init__(message)


class SessionStoreFull(SessionStoreUnavailable):
    """The store refused a write because it is at its memory limit (Redis ``OOM``)."""


class SessionStoreReadOnly(SessionStoreUnavailable):
    """The store refused a write because the node is a replica (``READONLY``, mid-failover)."""


class SessionStoreLoading(SessionStoreUnavailable):
    """The node is loading its dataset into memory (``LOADING``) or its master is down."""


class SessionStoreResharding(SessionStoreUnavailable):
    """The namespace's Cluster slot is moving or the cluster is down (``TRYAGAIN``,
    ``CLUSTERDOWN``) and retries with backoff did not outlast it."""


class SessionConflict(SessionError):
    """A conditional write found another version stored: someone else wrote in between."""

    def __init__(self, session_id: str, expected: int, actual: int) -> None:
        self.field = "if_version"
        self.session_id = session_id
        self.expected = expected
        self.actual = actual
        self.reason = f"stored version is {actual}, expected {expected}"
        super().__init__(f"session_id {session_id!r}: {self.reason}")


class DeadlineExceeded(HourglassError, TimeoutError):
    """A named timeout or an enclosing deadline ran out."""

    def __init__(self, name: str, budget: float, elapsed: float) -> None:
        self.name = name
        self.budget = budget
        self.elapsed = elapsed
        super().__init__(f"{name}: deadline of {budget:.3f}s exceeded after {elapsed:.3f}s")


class InvalidPayload(SessionError, ValueError):
    """Session data that cannot be stored as JSON."""

    def __init__(self, reason: str) -> None:
        self.field = "data"
        self.reason = reason
        super().__init__(f"data: {reason}")


class SessionExists(SessionError, ValueError):
    """``create`` was given a session id that is already in use."""

    def __init__(self, session_id: str) -> None:
        self.field = "session_id"
        self.reason = "a session with this id already exists"
        super().__init__(f"session_id {session_id!r}: {self.reason}")


class UnknownTimeout(HourglassError, KeyError):
    """A timeout name that the active profile does not define; lists the names it does."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.field = name
        self.available = available
        self.reason = f"unknown timeout; available: {', '.join(available) or '(none)'}"
        super().__init__(f"{name!r}: {self.reason}")

    def __str__(self) -> str:
        return str(self.args[0])
