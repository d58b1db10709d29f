"""The OpenAI Agents SDK's ``Session`` protocol on a `SessionManager`.

Install with the extra ``hourglass[openai-agents]``, then change one line::

    session = RedisSession.from_url(conversation_id, url=REDIS_URL)     # before
    session = HourglassSession(conversation_id, sessions)              # after

and the namespace's SessionPolicy applies to the conversation history: idle TTL,
absolute lifetime, ``max_sessions``/``max_memory`` with LRU eviction, and cleanup.
The items sit in a list beside the session under its hash tag and count in its
bytes; ``get_items(limit)`` reads O(limit) from the tail; ``add_items``,
``pop_item`` and ``clear_session`` are one atomic round trip each. A conversation
that expired or was evicted reads as empty, and the next ``add_items`` starts it
again, so the Runner never sees an error for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.memory.session import SessionABC
from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)

from agent_lib.sessions._ids import validate_session_id
from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

__all__ = ["HourglassSession"]

_DATA = {"framework": "openai-agents"}


class HourglassSession(SessionABC):
    """One conversation of the Agents SDK, kept as a Hourglass session with items."""

    def __init__(
        self,
        session_id: str,
        sessions: SessionManager,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = validate_session_id(session_id)
        self.sessions = sessions
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._items = SessionItems(sessions)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items (or the session settings' limit, or all), oldest first."""
        limit = resolve_session_limit(limit, self.session_settings)
        history = await self._items.read(self.session_id, limit)
        return [] if history is None else history.items

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in one atomic script (creating the session when needed)."""
        if items:
            await self._items.append(self.session_id, list(items), data=_DATA)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, or ``None`` when the session is empty."""
        item: TResponseInputItem | None = await self._items.pop(self.session_id)
        return item

    async def clear_session(self) -> None:
        """Remove the conversation and its items (the session is created again on add)."""
        await self._items.clear(self.session_id)

    def __repr__(self) -> str:
        return f"HourglassSession({self.session_id!r}, namespace={self.sessions.store.namespace!r})"
