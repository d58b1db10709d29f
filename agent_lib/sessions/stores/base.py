"""The contract every session store keeps, and the values they exchange.

Stores deal in bytes and milliseconds: `SessionManager` validates ids, encodes
payloads and estimates sizes once, so every store applies the same rules.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import asdict, dataclass, field
from typing import Any

WRITE_EVICTION_BUDGET = 32
"""Most sessions one write examines to make room under a cap: a lowered cap is reached
by cleanup, never by one long write that blocks the server."""


@dataclass(frozen=True)
class Limits:
    """The expiry and size rules of one namespace (``None`` means unlimited)."""

    ttl_s: float
    max_lifetime_s: float | None = None
    max_sessions: int | None = None
    max_memory: int | None = None

    @functools.cached_property
    def ttl_us(self) -> int:
        return max(1, round(self.ttl_s * 1e6))

    @functools.cached_property
    def lifetime_us(self) -> int:
        """``0`` when there is no absolute lifetime."""
        return 0 if self.max_lifetime_s is None else max(1, round(self.max_lifetime_s * 1e6))


@dataclass(frozen=True)
class StoredSession:
    """What a store returns for a session: the encoded payload, two timestamps
    (microseconds) and the version, which every write of the data increments."""

    payload: bytes
    created_us: int
    last_access_us: int
    version: int = 0


@dataclass(frozen=True)
class Accounted:
    """The bytes a store accounts against ``max_memory``: the running total, each
    indexed session's figure (payload estimate plus items, see ``stores.items``) and
    each shared record's (``stores.records``)."""

    total: int
    sessions: dict[str, int]
    records: dict[str, int] = field(default_factory=dict)


@dataclass
class CleanupReport:
    """What one cleanup run did; ``to_dict`` is the JSON the CLI and the operator read.

    ``evicted`` also counts the least-recently-used sessions that writes evicted at
    ``max_sessions``/``max_memory`` since the previous run (each reported once), so
    the operator sees every eviction, not only those the run itself made.
    """

    scanned: int = 0
    expired: int = 0
    evicted: int = 0
    lifetime_ended: int = 0
    bytes_freed: int = 0
    duration_s: float = 0.0
    dry_run: bool = False
    batches: int = 0
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def removed(self) -> int:
        return self.expired + self.evicted + self.lifetime_ended

    def add(self, other: CleanupReport) -> None:
        """Fold another batch's figures into this one."""
        self.scanned += other.scanned
        self.expired += other.expired
        self.evicted += other.evicted
        self.lifetime_ended += other.lifetime_ended
        self.bytes_freed += other.bytes_freed
        self.batches += other.batches

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        data["duration_s"] = round(self.duration_s, 6)
        data.update(self.extra)
        return data


class SessionExistsError(Exception):
    """Raised by `SessionStore.create` when the id is taken by another session.

    A create that finds its own earlier attempt stored (a retry after a lost reply,
    recognised by the write token it carries) returns that session instead.
    """

    def __init__(self, payload: bytes | None = None) -> None:
        super().__init__("session id already exists")
        self.payload = payload


class SessionStore(abc.ABC):
    """One namespace of sessions. Every method is a single round trip to the backend."""

    namespace: str
    limits: Limits

    @abc.abstractmethod
    async def create(self, session_id: str, payload: bytes, size: int) -> StoredSession:
        """Store a new session; raise `SessionExistsError` if the id is taken."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> StoredSession | None:
        """Return the session and renew its idle deadline, or ``None``."""

    @abc.abstractmethod
    async def touch(self, session_id: str) -> bool:
        """Renew the idle deadline; ``False`` when the session does not exist."""

    @abc.abstractmethod
    async def update(
        self, session_id: str, payload: bytes, size: int, if_version: int | None = None
    ) -> StoredSession | None:
        """Replace the payload (and renew); ``None`` when the session does not exist.

        With ``if_version``, raise `SessionConflict` unless that is the stored version.
        """

    @abc.abstractmethod
    async def delete(self, session_id: str) -> bool:
        """Remove the session; ``True`` when it existed."""

    @abc.abstractmethod
    async def count(self) -> int:
        """Live sessions: neither idle past the TTL nor past the absolute lifetime."""

    @abc.abstractmethod
    async def cleanup(
        self,
        *,
        batch_size: int = 500,
        max_batches: int | None = None,
        dry_run: bool = False,
        verify: bool = False,
    ) -> CleanupReport:
        """Remove what expired, ended or is over a cap, in atomic batches; with
        ``verify``, also check every index entry against its key."""

    async def accounted(self) -> Accounted:
        """The bytes accounted against ``max_memory`` (for diagnostics and tests)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no byte accounting")

    @abc.abstractmethod
    def key_for(self, session_id: str) -> str:
        """The backend key of a session (for diagnostics and size estimates)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks."""
