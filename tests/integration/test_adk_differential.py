"""HourglassSessionService against ADK's own InMemorySessionService, call for call.

ADK's sdist ships no tests, so hypothesis writes the call sequences: create (with
session, ``app:``, ``user:`` and ``temp:`` state), get (with and without
`GetSessionConfig`), list (by app, by user), delete, and ``append_event`` with session,
``app:``, ``user:`` and ``temp:`` deltas, from the first or the second copy a caller
holds of a session, and the same event appended again. Every result is compared: the
session a call returns, the caller's copy after ``append_event`` (or after it raised),
the exception's class, listings and user state. Run on a real valkey-server and on the
in-process store.

Differences kept on purpose (not compared): each service stamps ``last_update_time``
of a new session from its own clock, so listings are compared as sets. No cleanup runs
here: InMemorySessionService keeps ``app:``/``user:`` state forever, Hourglass until
the cleanup after the app's (the user's) last session ends.

On the code before issue 25 it fails in each of these ways; shrunk::

    state.create(app='a', sid='s1', state={}, user='u1')
    state.append(copy=0, ...); state.append_again(same_objects=False)
    -> the event is stored twice (InMemorySessionService skips an equal event)

    state.create(app='a', sid='s1', state={}, user='u1')
    state.fetch_copy(...)  # a second copy of a/u1/s1, then appends from both copies
    -> get_session: InMemory {'k': True, 'j': None, ...}, Hourglass lost 'j'

    state.create(app='a', sid='s1', state={}, user='u1')
    state.delete(app='a', sid='s1', user='u1')
    state.append(copy=0, data=data(...), delta={})
    -> SessionNotFoundError, but the caller's copy already held the event
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions import InMemorySessionService
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.session import Session
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from agent_lib.integrations.adk import HourglassSessionService
from agent_lib.sessions.manager import SessionManager
from tests.fixtures.redis_server import RedisProcess, fresh_namespace

_T = TypeVar("_T")
APPS = st.sampled_from(["a", "b"])
USERS = st.sampled_from(["u1", "u2"])
SIDS = st.sampled_from(["s1", "s2", "s3"])
KEYS = st.sampled_from(["k", "j", "app:flag", "app:n", "user:lang", "user:n", "temp:t"])
VALUES = st.one_of(st.integers(-3, 3), st.text("xyé", max_size=3), st.none(), st.booleans())
STATES = st.dictionaries(KEYS, VALUES, max_size=3)
CONFIGS = st.one_of(
    st.none(),
    st.builds(
        GetSessionConfig,
        num_recent_events=st.one_of(st.none(), st.integers(0, 3)),
        after_timestamp=st.one_of(st.none(), st.floats(0, 12, allow_nan=False)),
    ),
)
_ERRORS = (AlreadyExistsError, SessionNotFoundError)


def _view(session: Session | None) -> Any:
    """What a caller sees of a session, but the creation time (each service's clock)."""
    if session is None:
        return None
    events = [e.model_dump(mode="json", exclude_none=True) for e in session.events]
    return (session.app_name, session.user_id, session.id, session.state, events)


def _dated(session: Session) -> Any:
    """With ``last_update_time``, for sessions whose time comes from their events."""
    return (_view(session), session.last_update_time if session.events else None)


class AdkSideBySide(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.services: list[BaseSessionService] = []
        # copies a caller holds: (app, user, sid) -> [(reference copy, our copy), ...]
        self.copies: dict[tuple[str, str, str], list[tuple[Session, Session]]] = {}
        self.clock = 1.0
        self.last: tuple[Event, ...] | None = None

    def _run(self, coro: Awaitable[_T]) -> _T:
        return self.loop.run_until_complete(coro)

    def _both(self, call: Callable[[BaseSessionService], Awaitable[Any]]) -> list[Any]:
        """``call`` on both services; returns both results (an exception's class name)."""
        got: list[Any] = []
        for service in self.services:
            try:
                got.append(self._run(call(service)))
            except _ERRORS as error:
                got.append(type(error).__name__)
        return got

    @initialize()
    def open_services(self) -> None:
        sm = SessionManager.from_url(self.url, namespace=fresh_namespace(), max_lifetime=None)
        self.services = [InMemorySessionService(), HourglassSessionService(sm)]

    def teardown(self) -> None:
        if self.services:
            ours = self.services[1]
            assert isinstance(ours, HourglassSessionService)
            self._run(ours.sessions.close())
        self.loop.close()

    def _hold(self, key: tuple[str, str, str], got: list[Any]) -> None:
        if all(isinstance(s, Session) for s in got):
            held = self.copies.setdefault(key, [])
            held.append((got[0], got[1]))
            del held[:-2]  # a caller holds one or two copies

    @rule(app=APPS, user=USERS, sid=SIDS, state=STATES)
    def create(self, app: str, user: str, sid: str, state: dict[str, Any]) -> None:
        got = self._both(
            lambda s: s.create_session(
                app_name=app, user_id=user, session_id=sid, state=dict(state)
            )
        )
        ref, ours = (x if isinstance(x, str) else _view(x) for x in got)
        assert ref == ours
        self._hold((app, user, sid), got)

    @rule(app=APPS, user=USERS, sid=SIDS, config=CONFIGS)
    def get(self, app: str, user: str, sid: str, config: GetSessionConfig | None) -> None:
        got = self._both(
            lambda s: s.get_session(app_name=app, user_id=user, session_id=sid, config=config)
        )
        assert _view(got[0]) == _view(got[1])
        if got[0] is not None:
            assert got[0].last_update_time == got[1].last_update_time or not got[0].events

    @precondition(lambda self: bool(self.copies))
    @rule(data=st.data())
    def fetch_copy(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.copies)))
        got = self._both(
            lambda s: s.get_session(app_name=key[0], user_id=key[1], session_id=key[2])
        )
        self._hold(key, got)

    @precondition(lambda self: bool(self.copies))
    @rule(data=st.data(), delta=STATES, copy=st.integers(0, 1))
    def append(self, data: st.DataObject, delta: dict[str, Any], copy: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.copies)))
        held = self.copies[key]
        pair = held[min(copy, len(held) - 1)]
        self.clock += 1.0
        events = tuple(_event(self.clock, delta) for _ in pair)
        self._append(pair, events)
        self.last = events

    @precondition(lambda self: self.last is not None and bool(self.copies))
    @rule(data=st.data(), same_objects=st.booleans())
    def append_again(self, data: st.DataObject, same_objects: bool) -> None:
        """The last event once more: the same objects, or equal new ones."""
        assert self.last is not None
        key = data.draw(st.sampled_from(sorted(self.copies)))
        pair = self.copies[key][-1]
        events = self.last if same_objects else tuple(e.model_copy(deep=True) for e in self.last)
        self._append(pair, events)

    def _append(self, pair: tuple[Session, Session], events: tuple[Event, ...]) -> None:
        got: list[Any] = []
        for service, session, event in zip(self.services, pair, events, strict=True):
            try:
                returned = self._run(service.append_event(session, event))
                got.append(returned.model_dump(mode="json", exclude_none=True))
            except _ERRORS as error:
                got.append(type(error).__name__)
        assert got[0] == got[1]
        assert _dated(pair[0]) == _dated(pair[1]), "the caller's copies differ"

    @rule(app=APPS, user=USERS, sid=SIDS)
    def delete(self, app: str, user: str, sid: str) -> None:
        self._both(lambda s: s.delete_session(app_name=app, user_id=user, session_id=sid))

    @rule(app=APPS, user=st.one_of(st.none(), USERS))
    def list(self, app: str, user: str | None) -> None:
        got = self._both(lambda s: s.list_sessions(app_name=app, user_id=user))
        ref, ours = (sorted(map(_dated, r.sessions), key=_by_name) for r in got)
        assert ref == ours

    @rule(app=APPS, user=USERS)
    def user_state(self, app: str, user: str) -> None:
        got = self._both(lambda s: s.get_user_state(app_name=app, user_id=user))
        assert got[0] == got[1]


def _by_name(dated: Any) -> tuple[str, str]:
    return (dated[0][1], dated[0][2])


def _event(ts: float, delta: dict[str, Any]) -> Event:
    return Event(
        id=f"e{ts:g}",
        invocation_id="inv",
        author="agent",
        timestamp=ts,
        actions=EventActions(state_delta=dict(delta)),
    )


@pytest.fixture(params=["redis", "memory"])
def url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    return redis_server.url if request.param == "redis" else "memory://"


def test_same_answers_as_in_memory_session_service(url: str) -> None:
    AdkSideBySide.url = url
    run = AdkSideBySide.TestCase
    run.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()
