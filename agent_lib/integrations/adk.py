"""Google ADK's ``BaseSessionService`` on a `SessionManager` (extra ``hourglass[adk]``).

Change one line::

    session_service = InMemorySessionService()              # before
    session_service = HourglassSessionService(sessions)     # after

Each ADK session (scoped by app, user and id) is one Hourglass session: its metadata in
the payload, its events in the item list beside it, so the namespace's SessionPolicy
(TTL, lifetime, caps, memory, cleanup) applies. Its state lives in shared records
(``agent_lib.sessions.stores.records``), field by field: the session's own state in one
record, ``app:`` state in one per app, ``user:`` state in one per (app, user);
``temp:`` keys are never stored. Every write is one atomic script: ``create_session``
stores the session, its state and the app/user records all or nothing, and
``append_event`` stores the event, the session's metadata and the event's delta to all
three records at once, so two writers (or two copies of one session) never lose each
other's keys. The app record's owners are the app's sessions (what `list_sessions`
reads); the app and user records count toward no cap, are never evicted, and live as
long as any of their sessions: the cleanup after the last one ends removes them. ADK's
strings become Hourglass ids through a hash, so any app, user or session name is safe
inside a Redis key.
"""

from __future__ import annotations

import base64
import contextlib
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
from agent_lib.sessions.items import ALREADY_STORED, History, Record, RecordUpdate, SessionItems
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


def _ids(app_name: str, user_id: str, session_id: str) -> tuple[str, str, str]:
    """The session's Hourglass id (also its own state record's), the app record's and the
    user record's."""
    return (
        _sid("s", app_name, user_id, session_id),
        _sid("a", app_name),
        _sid("u", app_name, user_id),
    )


class HourglassSessionService(BaseSessionService):
    """ADK sessions, their events and app/user state in a Hourglass `SessionManager`."""

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions
        self._items = SessionItems(sessions)

    # --- state ---------------------------------------------------------------------

    @staticmethod
    def _writes(
        ids: tuple[str, str, str], owner: list[str], deltas: dict[str, dict[str, Any]], *, new: bool
    ) -> list[RecordUpdate]:
        """The records one write touches: the session's own state (emptied first by a
        create), the app's and the user's; the session is an owner of each."""
        own, app, user = ids
        return [
            RecordUpdate(own, deltas["session"], owner=owner, reset=new),
            RecordUpdate(app, deltas["app"], owner=owner),
            RecordUpdate(user, deltas["user"], owner=owner),
        ]

    @staticmethod
    def _state(ids: tuple[str, str, str], records: dict[str, Record], base: Any) -> dict[str, Any]:
        """The state a caller sees: ``base`` (state a payload held before issue 25, or a
        new session's), the session's own record, then ``app:`` and ``user:`` keys."""
        own, app, user = (records.get(i) for i in ids)
        state: dict[str, Any] = {}
        if isinstance(base, dict):
            state.update(base)
        state.update({} if own is None else own.fields)
        for prefix, record in ((State.APP_PREFIX, app), (State.USER_PREFIX, user)):
            if record is not None:
                state.update({prefix + key: value for key, value in record.fields.items()})
        return state

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        rid = _sid("u", _check("app_name", app_name), user_id)
        found = await self._items.read_records([rid])
        return dict(found[rid].fields) if rid in found else {}

    # --- sessions ------------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """One atomic script: the session, its state and the app/user state, or nothing."""
        _check("app_name", app_name)
        _check("user_id", user_id)
        session_id = (session_id.strip() if session_id else None) or str(uuid.uuid4())
        deltas = _session_util.extract_state_delta(state or {})
        now = time.time()
        ids = _ids(app_name, user_id, session_id)
        meta = {"app": app_name, "user": user_id, "id": session_id, "last_update_time": now}
        try:
            await self._items.append(
                ids[0],
                [],
                data=meta,
                must_not_exist=True,
                records=self._writes(ids, [user_id, session_id], deltas, new=True),
            )
        except SessionExists:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from None
        records = await self._items.read_records(ids[1:])
        return Session(
            app_name=app_name,
            user_id=user_id,
            id=session_id,
            state=self._state(ids, records, deltas["session"]),
            last_update_time=now,
        )

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
        ids = _ids(app_name, user_id, session_id)
        history = await self._items.read(ids[0], limit, with_data=True, records=ids)
        if history is None:
            return None
        if history.data.get("state"):
            await self._migrate(ids, history)
        events = [Event.model_validate(item) for item in history.items]
        if config is not None and config.after_timestamp is not None:
            # As InMemorySessionService: keep what follows the newest older event.
            i = len(events) - 1
            while i >= 0 and events[i].timestamp >= config.after_timestamp:
                i -= 1
            events = events[i + 1 :]
        return self._session(ids, history, events)

    async def _migrate(self, ids: tuple[str, str, str], history: History) -> None:
        """Move the state a session's payload held before shared records existed into its
        own record (keys the record already has win) and list it as an owner of its app's
        and user's records; once per such session, on its first `get_session`."""
        data = history.data
        own = history.records.get(ids[0])
        kept = {k: v for k, v in data["state"].items() if own is None or k not in own.fields}
        owner = [data["user"], data["id"]]
        meta = {key: data[key] for key in ("app", "user", "id", "last_update_time")}
        updates = [
            RecordUpdate(ids[0], kept, owner=owner),
            RecordUpdate(ids[1], owner=owner),
            RecordUpdate(ids[2], owner=owner),
        ]
        with contextlib.suppress(SessionNotFound):  # ended meanwhile: nothing to move
            await self._items.append(ids[0], [], data=meta, must_exist=True, records=updates)

    def _session(self, ids: tuple[str, str, str], history: History, events: list[Event]) -> Session:
        data = history.data
        return Session(
            app_name=data["app"],
            user_id=data["user"],
            id=data["id"],
            state=self._state(ids, history.records, data.get("state")),
            events=events,
            last_update_time=data["last_update_time"],
        )

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The sessions that are owners of the app's record (of the user's, given one),
        without events; those that ended since are skipped."""
        registry = _sid("a", app_name) if user_id is None else _sid("u", app_name, user_id)
        found = await self._items.read_records([registry], owners=True)
        if registry not in found:
            return ListSessionsResponse()
        sessions: list[Session] = []
        for owner in found[registry].owners.values():
            ids = _ids(app_name, *owner)
            history = await self._items.read(ids[0], 0, with_data=True, renew=False, records=ids)
            if history is not None:
                sessions.append(self._session(ids, history, []))
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Remove the session and its events; its records' entries go at the next cleanup
        (a session created again with this id starts from an empty state)."""
        session_id = session_id.strip() if session_id else session_id
        await self._items.clear(_sid("s", app_name, user_id, session_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store the event, the session's metadata and the event's state delta (session,
        ``app:`` and ``user:`` keys; ``temp:`` never) in one atomic script, then apply
        the event to ``session`` as ADK's base class does. Raises `SessionNotFoundError`
        before touching ``session``; an event already stored (same id, equal content)
        is returned unchanged, as InMemorySessionService does."""
        if event.partial:
            return event
        delta = event.actions.state_delta if event.actions else {}
        kept = {k: v for k, v in delta.items() if not k.startswith(State.TEMP_PREFIX)}
        stored = event.model_copy(
            update={"actions": event.actions.model_copy(update={"state_delta": kept})}
        )
        ids = _ids(session.app_name, session.user_id, session.id)
        meta = {
            "app": session.app_name,
            "user": session.user_id,
            "id": session.id,
            "last_update_time": event.timestamp,
        }
        deltas = _session_util.extract_state_delta(kept)
        try:
            length = await self._items.append(
                ids[0],
                [stored.model_dump(mode="json", exclude_none=True)],
                data=meta,
                must_exist=True,
                skip_stored=True,
                records=self._writes(ids, [session.user_id, session.id], deltas, new=False),
            )
        except SessionNotFound:
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
        if length == ALREADY_STORED:
            return event
        await super().append_event(session=session, event=event)
        session.last_update_time = event.timestamp
        return event
