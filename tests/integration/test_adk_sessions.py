"""HourglassSessionService side by side with ADK's own InMemorySessionService: the same
calls on both, the same results (state prefixes app:/user:/temp:, GetSessionConfig,
listing without events), on a real valkey-server and on the in-process store."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions import InMemorySessionService
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types

from agent_lib.errors import InvalidPayload
from agent_lib.integrations.adk import HourglassSessionService
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.redis import RedisStore
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


@pytest.fixture(params=["redis", "memory"])
def url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    return redis_server.url if request.param == "redis" else "memory://"


def _event(n: int, ts: float, delta: dict[str, Any] | None = None, **extra: Any) -> Event:
    return Event(
        id=f"e{n}",
        invocation_id=f"inv{n}",
        author="agent" if n % 2 else "user",
        timestamp=ts,
        content=types.Content(role="model", parts=[types.Part(text=f'turn {n} ✓ "q" \n')]),
        actions=EventActions(state_delta=delta or {}),
        **extra,
    )


def _view(session: Session | None) -> Any:
    """What a caller sees, without the creation time (each service reads its own clock)."""
    if session is None:
        return None
    events = [e.model_dump(mode="json", exclude_none=True) for e in session.events]
    return (session.app_name, session.user_id, session.id, session.state, events)


async def _both(url: str, **options: Any) -> tuple[InMemorySessionService, HourglassSessionService]:
    sm = SessionManager.from_url(url, namespace=fresh_namespace(), **options)
    return InMemorySessionService(), HourglassSessionService(sm)


async def test_same_results_as_in_memory_service(url: str) -> None:
    ref, ours = await _both(url)
    try:
        for service in (ref, ours):
            await service.create_session(
                app_name="app", user_id="u1", session_id="s1",
                state={"k": 1, "app:theme": "dark", "user:lang": "fr", "temp:scratch": 9},
            )  # fmt: skip
            await service.create_session(app_name="app", user_id="u2", session_id="s2")
        created = [
            _view(await s.get_session(app_name="app", user_id="u1", session_id="s1"))
            for s in (ref, ours)
        ]
        assert created[0] == created[1]
        assert "temp:scratch" not in created[1][3]

        deltas = [
            {"k": 2, "temp:t": "x"},
            {"app:theme": "light", "user:lang": "de"},
            {"user:seen": True, "n": [1, 2]},
            {},
            {"k": 3},
        ]
        for n, delta in enumerate(deltas):
            for service in (ref, ours):
                live = await service.get_session(app_name="app", user_id="u1", session_id="s1")
                assert live is not None
                await service.append_event(live, _event(n, 1000.0 + n, dict(delta)))
                assert "temp:t" in live.state or n != 0  # temp: applies in memory only

        async def compare(**kwargs: Any) -> None:
            got = [_view(await s.get_session(**kwargs)) for s in (ref, ours)]
            assert got[0] == got[1], kwargs

        ids = {"app_name": "app", "user_id": "u1", "session_id": "s1"}
        await compare(**ids)
        await compare(**ids, config=GetSessionConfig(num_recent_events=2))
        await compare(**ids, config=GetSessionConfig(num_recent_events=0))
        await compare(**ids, config=GetSessionConfig(after_timestamp=1002.0))
        await compare(**ids, config=GetSessionConfig(num_recent_events=3, after_timestamp=1003.5))
        await compare(app_name="app", user_id="u2", session_id="s2")  # app: state is shared
        await compare(app_name="app", user_id="u1", session_id="missing")
        await compare(app_name="other", user_id="u1", session_id="s1")

        for user in ("u1", "u2", None, "nobody"):
            listed = [await s.list_sessions(app_name="app", user_id=user) for s in (ref, ours)]
            views = [[_view(x) for x in r.sessions] for r in listed]
            assert sorted(views[0]) == sorted(views[1]) if views[0] else views[1] == []
            assert all(not x.events for r in listed for x in r.sessions)
        assert await ours.get_user_state(app_name="app", user_id="u1") == (
            await ref.get_user_state(app_name="app", user_id="u1")
        )

        for service in (ref, ours):
            await service.delete_session(app_name="app", user_id="u1", session_id="s1")
            await service.delete_session(app_name="app", user_id="u1", session_id="s1")
        await compare(**ids)
        after = [await s.list_sessions(app_name="app") for s in (ref, ours)]
        assert [x.id for x in after[0].sessions] == [x.id for x in after[1].sessions] == ["s2"]
    finally:
        await ours.sessions.close()


async def test_errors_match_in_memory_service(url: str) -> None:
    ref, ours = await _both(url)
    try:
        for service in (ref, ours):
            await service.create_session(app_name="a", user_id="u", session_id="dup")
            with pytest.raises(AlreadyExistsError):
                await service.create_session(app_name="a", user_id="u", session_id="dup")
            ghost = Session(app_name="a", user_id="u", id="ghost")
            with pytest.raises(SessionNotFoundError):
                await service.append_event(ghost, _event(1, 1.0))
            partial = _event(2, 2.0, {"k": 1}, partial=True)
            live = await service.get_session(app_name="a", user_id="u", session_id="dup")
            assert live is not None
            assert await service.append_event(live, partial) is partial
            again = await service.get_session(app_name="a", user_id="u", session_id="dup")
            assert again is not None and again.events == [] and again.state == {}
            with pytest.raises(ValueError):
                GetSessionConfig(num_recent_events=-1)
    finally:
        await ours.sessions.close()


async def test_free_form_names_are_safe_keys(redis_server: RedisProcess) -> None:
    ours = HourglassSessionService(
        SessionManager.from_url(redis_server.url, namespace=fresh_namespace())
    )
    try:
        hostile = "{tag}*?[x]: é \n" * 3
        made = await ours.create_session(app_name=hostile, user_id=hostile, session_id="a:b{c}")
        got = await ours.get_session(app_name=hostile, user_id=hostile, session_id="a:b{c}")
        assert got is not None and got.id == made.id == "a:b{c}"
        store = ours.sessions.store
        assert isinstance(store, RedisStore)
        keys = [k.decode() for k in await store.client.keys("*")]
        assert not any(hostile.strip() in k or "a:b{c}" in k for k in keys)
    finally:
        await ours.sessions.close()


async def test_policy_applies_expired_session_and_cleanup(redis_server: RedisProcess) -> None:
    sm = SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=0.4, max_lifetime=None
    )
    ours = HourglassSessionService(sm)
    try:
        live = await ours.create_session(app_name="a", user_id="u", session_id="s")
        for n in range(3):
            await ours.append_event(live, _event(n, 10.0 + n, {"n": n}))
        assert await sm.count() >= 1
        await asyncio.sleep(0.6)
        assert await ours.get_session(app_name="a", user_id="u", session_id="s") is None
        assert (await ours.list_sessions(app_name="a")).sessions == []
        report = await sm.cleanup()
        assert report.expired >= 1
        assert await sm.count() == 0
    finally:
        await sm.close()


async def test_two_copies_and_concurrent_writers_lose_no_key(url: str) -> None:
    ours = HourglassSessionService(SessionManager.from_url(url, namespace=fresh_namespace()))
    try:
        await ours.create_session(app_name="a", user_id="u", session_id="s", state={"k": 0})
        ids = {"app_name": "a", "user_id": "u", "session_id": "s"}
        a, b = await ours.get_session(**ids), await ours.get_session(**ids)
        assert a is not None and b is not None
        await ours.append_event(a, _event(1, 1.0, {"a": 1, "app:x": 1, "user:y": 1}))
        await ours.append_event(b, _event(2, 2.0, {"b": 2, "app:z": 2, "user:w": 2}))
        copies = [await ours.get_session(**ids) for _ in range(8)]
        await asyncio.gather(
            *(
                ours.append_event(c, _event(10 + n, 10.0 + n, {f"c{n}": n, f"app:c{n}": n}))
                for n, c in enumerate(copies)
                if c is not None
            )
        )
        stored = await ours.get_session(**ids)
        assert stored is not None
        expected = {"k": 0, "a": 1, "b": 2, "app:x": 1, "app:z": 2, "user:y": 1, "user:w": 2}
        expected |= {f"c{n}": n for n in range(8)} | {f"app:c{n}": n for n in range(8)}
        assert stored.state == expected
        assert len(stored.events) == 10
    finally:
        await ours.sessions.close()


async def test_app_and_user_records_count_toward_no_cap(url: str) -> None:
    sm = SessionManager.from_url(url, namespace=fresh_namespace(), max_sessions=4)
    ours = HourglassSessionService(sm)
    try:
        for n in range(4):
            await ours.create_session(
                app_name="a", user_id=f"u{n % 2}", session_id=f"s{n}", state={"app:flag": 1}
            )
        listed = (await ours.list_sessions(app_name="a")).sessions
        assert sorted(s.id for s in listed) == ["s0", "s1", "s2", "s3"]
        assert all(s.state["app:flag"] == 1 for s in listed)
        await ours.create_session(app_name="a", user_id="u0", session_id="s4")
        listed = (await ours.list_sessions(app_name="a")).sessions
        assert sorted(s.id for s in listed) == ["s1", "s2", "s3", "s4"]  # s0 was the LRU one
        assert all(s.state["app:flag"] == 1 for s in listed)
        assert await sm.count() == 4
    finally:
        await sm.close()


async def test_app_state_lives_while_any_session_does(redis_server: RedisProcess) -> None:
    sm = SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=60, max_lifetime=1.0
    )
    ours = HourglassSessionService(sm)
    try:
        first = await ours.create_session(app_name="a", user_id="u", state={"app:flag": 1})
        await asyncio.sleep(0.6)
        second = await ours.create_session(app_name="a", user_id="u")
        await asyncio.sleep(0.6)  # the first is past its lifetime, the second is not
        report = await sm.cleanup()
        assert report.lifetime_ended == 1
        assert report.to_dict()["records_removed"] == 1  # the first session's own state
        listed = (await ours.list_sessions(app_name="a")).sessions
        assert [s.id for s in listed] == [second.id] and listed[0].state == {"app:flag": 1}
        assert await ours.get_session(app_name="a", user_id="u", session_id=first.id) is None
        await asyncio.sleep(0.6)
        report = await sm.cleanup()
        assert report.to_dict()["records_removed"] == 3  # app, user, the second's own state
        accounted = await sm.store.accounted()
        assert accounted.total == 0 and accounted.records == {} and accounted.sessions == {}
        assert (await ours.list_sessions(app_name="a")).sessions == []
    finally:
        await sm.close()


async def test_append_to_a_deleted_session_leaves_the_callers_copy_alone(url: str) -> None:
    ours = HourglassSessionService(SessionManager.from_url(url, namespace=fresh_namespace()))
    try:
        live = await ours.create_session(app_name="a", user_id="u", session_id="s", state={"k": 1})
        await ours.delete_session(app_name="a", user_id="u", session_id="s")
        with pytest.raises(SessionNotFoundError):
            await ours.append_event(live, _event(1, 5.0, {"k": 2, "temp:t": 1}))
        assert live.events == [] and live.state == {"k": 1}
        again = await ours.create_session(app_name="a", user_id="u", session_id="s")
        assert again.state == {}  # a session created again starts from an empty state
    finally:
        await ours.sessions.close()


async def test_create_session_is_all_or_nothing(url: str) -> None:
    ours = HourglassSessionService(SessionManager.from_url(url, namespace=fresh_namespace()))
    try:
        with pytest.raises(InvalidPayload):
            await ours.create_session(
                app_name="a", user_id="u", session_id="s", state={"k": 1, "app:bad": object()}
            )
        assert await ours.get_session(app_name="a", user_id="u", session_id="s") is None
        made = await ours.create_session(
            app_name="a", user_id="u", session_id="s", state={"k": 1, "user:ok": 2}
        )
        assert made.state == {"k": 1, "user:ok": 2}
    finally:
        await ours.sessions.close()


async def test_an_event_stored_twice_is_kept_once(url: str) -> None:
    ref, ours = await _both(url)
    try:
        for service in (ref, ours):
            live = await service.create_session(app_name="a", user_id="u", session_id="s")
            event = _event(1, 1.0, {"n": 1})
            await service.append_event(live, event)
            await service.append_event(live, event)
            await service.append_event(live, event.model_copy(deep=True))
            await service.append_event(live, _event(1, 1.0, {"n": 2}))  # same id, new content
        got = [
            _view(await s.get_session(app_name="a", user_id="u", session_id="s"))
            for s in (ref, ours)
        ]
        assert got[0] == got[1] and len(got[1][4]) == 2
    finally:
        await ours.sessions.close()


async def test_a_session_stored_by_the_earlier_layout_keeps_its_state(url: str) -> None:
    """Before shared records, a session's own state sat in its payload: the first
    get_session moves it into the session's record and lists the session."""
    from agent_lib.integrations.adk import _sid
    from agent_lib.sessions.items import SessionItems

    sm = SessionManager.from_url(url, namespace=fresh_namespace())
    ours = HourglassSessionService(sm)
    try:
        old = {"app": "a", "user": "u", "id": "s", "state": {"k": 1, "j": 2}}
        event = _event(1, 1.0, {"k": 1}).model_dump(mode="json", exclude_none=True)
        await SessionItems(sm).append(
            _sid("s", "a", "u", "s"), [event], data={**old, "last_update_time": 1.0}
        )
        live = await ours.get_session(app_name="a", user_id="u", session_id="s")
        assert live is not None and live.state == {"k": 1, "j": 2} and len(live.events) == 1
        await ours.append_event(live, _event(2, 2.0, {"j": 3, "n": 4}))
        again = await ours.get_session(app_name="a", user_id="u", session_id="s")
        assert again is not None and again.state == {"k": 1, "j": 3, "n": 4}
        listed = (await ours.list_sessions(app_name="a")).sessions
        assert [s.id for s in listed] == ["s"] and listed[0].state == again.state
    finally:
        await sm.close()


async def test_every_write_adds_to_the_namespace_total(url: str) -> None:
    """app: writes once replaced a record's size and could lower the total (issue 25)."""
    sm = SessionManager.from_url(url, namespace=fresh_namespace())
    ours = HourglassSessionService(sm)
    try:
        totals = [0]
        for n in range(4):
            state = {"app:big": "x" * (400 - 100 * n), f"user:k{n}": n, "k": n}
            live = await ours.create_session(app_name="a", user_id="u", state=state)
            await ours.append_event(live, _event(n, float(n), {"app:n": n}))
            accounted = await sm.store.accounted()
            assert accounted.total == sum(accounted.sessions.values()) + sum(
                accounted.records.values()
            )
            totals.append(accounted.total)
        assert all(after > before for before, after in itertools.pairwise(totals))
    finally:
        await sm.close()
