"""HourglassSession under the OpenAI Agents SDK's Runner on a real valkey-server (the
SDK's own scenarios run in CI through .ci/openai_agents_sdk_sessions.py)."""

from __future__ import annotations

import asyncio

import pytest
from agents import Agent, Runner
from agents.memory import Session
from agents.testing import ScriptedModel, assistant_message

from agent_lib.errors import InvalidSessionId
from agent_lib.integrations.openai_agents import HourglassSession
from agent_lib.sessions.manager import SessionManager
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


def _manager(redis_server: RedisProcess, **options: object) -> SessionManager:
    return SessionManager.from_url(redis_server.url, namespace=fresh_namespace(), **options)  # type: ignore[arg-type]


async def test_is_an_sdk_session_and_runs_with_the_runner(redis_server: RedisProcess) -> None:
    async with _manager(redis_server) as sm:
        session = HourglassSession("conv-runner", sm)
        assert isinstance(session, Session)
        model = ScriptedModel()
        agent = Agent(name="t", model=model)
        model.enqueue([assistant_message("Paris")])
        await Runner.run(agent, "Capital of France?", session=session)
        model.enqueue([assistant_message("Berlin")])
        streamed = Runner.run_streamed(agent, "And Germany?", session=session)
        async for _ in streamed.stream_events():
            pass
        assert streamed.final_output == "Berlin"
        assert any("Capital of France?" in str(i) for i in model.calls[-1].input)
        items = await session.get_items()
        assert [i.get("role") for i in items] == ["user", "assistant", "user", "assistant"]
        assert len(await session.get_items(limit=1)) == 1


async def test_expired_and_evicted_read_empty_and_never_raise(redis_server: RedisProcess) -> None:
    async with _manager(redis_server, ttl=0.3, max_sessions=1) as sm:
        a, b = HourglassSession("conv-a", sm), HourglassSession("conv-b", sm)
        await a.add_items([{"role": "user", "content": "hello"}])
        await b.add_items([{"role": "user", "content": "evicts a"}])
        assert await a.get_items() == []
        assert await a.pop_item() is None
        await a.clear_session()
        await asyncio.sleep(0.5)
        assert await b.get_items() == []
        model = ScriptedModel()
        model.enqueue([assistant_message("fresh start")])
        result = await Runner.run(Agent(name="t", model=model), "again", session=b)
        assert result.final_output == "fresh start"
        assert len(await b.get_items()) == 2


async def test_two_workers_lose_nothing(redis_server: RedisProcess) -> None:
    namespace = fresh_namespace()
    async with (
        SessionManager.from_url(redis_server.url, namespace=namespace) as one,
        SessionManager.from_url(redis_server.url, namespace=namespace) as two,
    ):
        workers = [HourglassSession("shared", one), HourglassSession("shared", two)]

        async def write(w: int) -> None:
            for i in range(30):
                await workers[w].add_items([{"role": "user", "content": f"{w}:{i}"}])

        await asyncio.gather(write(0), write(1))
        contents = [item["content"] for item in await workers[0].get_items()]
        assert sorted(contents) == sorted(f"{w}:{i}" for w in (0, 1) for i in range(30))


def test_bad_session_id_is_named(redis_server: RedisProcess) -> None:
    sm = _manager(redis_server)
    with pytest.raises(InvalidSessionId) as caught:
        HourglassSession("user:42", sm)
    assert "':'" in str(caught.value)
