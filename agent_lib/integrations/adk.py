"""Google ADK's ``BaseSessionService`` on a `SessionManager` (extra ``hourglass[adk]``).

Change one line::

    session_service = InMemorySessionService()              # before
    session_service = HourglassSessionService(sessions)     # after

Each ADK session (scoped by app, user and id) is one Hourglass session: its state
and metadata in the payload, its events in the item list beside it, so the
namespace's SessionPolicy (TTL, lifetime, caps, memory, cleanup) applies. App and
user state (``app:``/``user:`` keys) live in one Hourglass session per app and per
(app, user); ``temp:`` keys are never stored. ADK's strings become Hourglass ids
through a hash, so any app, user or session name is safe inside a Redis key.

Not atomic across records: a state delta that touches ``app:`` or ``user:`` keys is
a read-modify-write of that record (the event itself and the session's own state
are one atomic script). `list_sessions` reads an append-only registry per app and
skips sessions that expired or were deleted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions import _session_util
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State

from agent_lib.errors import SessionExists, SessionNotFound
from agent_lib.sessions.items import History, SessionItems
from agent_lib.sessions.manager import SessionManager

__all__ = ["HourglassSessionService"]


def _sid(kind: str, *parts: str) -> str:
    """A valid Hourglass id for ADK's free-form names (44 characters, URL-safe)."""
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return f"adk{kind}-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _check(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a non-empty string, got {value!r}")
    return value


class HourglassSessionService(BaseSessionService):
    """ADK sessions, their events and app/user state in a Hourglass `SessionManager`."""

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions
        self._items = SessionItems(sessions)

    # --- scoped state --------------------------------------------------------------

    async def _scoped(self, sid: str) -> dict[str, Any]:
        record = await self.sessions.get(sid)
        return {} if record is None else dict(record.data.get("state", {}))

    async def _merge_scoped(self, sid: str, delta: dict[str, Any]) -> None:
        if not delta:
            return
        record = await self.sessions.get(sid)
        if record is None:
            try:
                await self.sessions.create({"state": delta}, session_id=sid)
                return
            except SessionExists:
                record = await self.sessions.get(sid)
        state = {} if record is None else dict(record.data.get("state", {}))
        state.update(delta)
        try:
            await self.sessions.update(sid, {"state": state})
        except SessionNotFound:
            await self.sessions.create({"state": state}, session_id=sid)

    async def _with_scoped_state(self, session: Session) -> Session:
        app = await self._scoped(_sid("a", session.app_name))
        user = await self._scoped(_sid("u", session.app_name, session.user_id))
        for key, value in app.items():
            session.state[State.APP_PREFIX + key] = value
        for key, value in user.items():
            session.state[State.USER_PREFIX + key] = value
        return session

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return await self._scoped(_sid("u", _check("app_name", app_name), user_id))

    # --- sessions ------------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        _check("app_name", app_name)
        _check("user_id", user_id)
        session_id = (session_id.strip() if session_id else None) or str(uuid.uuid4())
        deltas = _session_util.extract_state_delta(state or {})
        now = time.time()
        record = {
            "app": app_name,
            "user": user_id,
            "id": session_id,
            "state": deltas["session"],
            "last_update_time": now,
        }
        sid = _sid("s", app_name, user_id, session_id)
        try:
            await self.sessions.create(record, session_id=sid)
        except SessionExists:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from None
        await self._items.append(
            _sid("a", app_name), [{"user": user_id, "id": session_id}], data={"state": {}}
        )
        await self._merge_scoped(_sid("a", app_name), deltas["app"])
        await self._merge_scoped(_sid("u", app_name, user_id), deltas["user"])
        session = Session(
            app_name=app_name,
            user_id=user_id,
            id=session_id,
            state=dict(deltas["session"]),
            last_update_time=now,
        )
        return await self._with_scoped_state(session)

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        session_id = session_id.strip() if session_id else session_id
        limit = None if config is None else config.num_recent_events
        history = await self._items.read(
            _sid("s", app_name, user_id, session_id), limit, with_data=True
        )
        if history is None:
            return None
        events = [Event.model_validate(item) for item in history.items]
        if config is not None and config.after_timestamp is not None:
            # As InMemorySessionService: keep what follows the newest older event.
            i = len(events) - 1
            while i >= 0 and events[i].timestamp >= config.after_timestamp:
                i -= 1
            events = events[i + 1 :]
        return await self._with_scoped_state(self._session(history, events))

    @staticmethod
    def _session(history: History, events: list[Event]) -> Session:
        data = history.data
        return Session(
            app_name=data["app"],
            user_id=data["user"],
            id=data["id"],
            state=dict(data["state"]),
            events=events,
            last_update_time=data["last_update_time"],
        )

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        registry = await self._items.read(_sid("a", app_name), renew=False)
        if registry is None:
            return ListSessionsResponse()
        seen: set[tuple[str, str]] = set()
        found: list[Session] = []
        for entry in registry.items:
            key = (entry["user"], entry["id"])
            if key in seen or (user_id is not None and entry["user"] != user_id):
                continue
            seen.add(key)
            history = await self._items.read(
                _sid("s", app_name, *key), 0, with_data=True, renew=False
            )
            if history is not None:
                found.append(await self._with_scoped_state(self._session(history, [])))
        found.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=found)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        session_id = session_id.strip() if session_id else session_id
        await self._items.clear(_sid("s", app_name, user_id, session_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        """Apply the event's state delta with ADK's prefix rules, then store the event
        and the session's own state in one atomic script (``temp:`` keys never)."""
        if event.partial:
            return event
        await super().append_event(session=session, event=event)
        session.last_update_time = event.timestamp
        deltas = _session_util.extract_state_delta(
            event.actions.state_delta if event.actions else {}
        )
        own = {
            key: value
            for key, value in session.state.items()
            if not key.startswith((State.APP_PREFIX, State.USER_PREFIX, State.TEMP_PREFIX))
        }
        record = {
            "app": session.app_name,
            "user": session.user_id,
            "id": session.id,
            "state": own,
            "last_update_time": event.timestamp,
        }
        try:
            await self._items.append(
                _sid("s", session.app_name, session.user_id, session.id),
                [event.model_dump(mode="json", exclude_none=True)],
                data=record,
                must_exist=True,
            )
        except SessionNotFound:
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
        await self._merge_scoped(_sid("a", session.app_name), deltas["app"])
        await self._merge_scoped(_sid("u", session.app_name, session.user_id), deltas["user"])
        return event
