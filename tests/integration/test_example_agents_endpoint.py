"""The example app's Agents SDK endpoint: a real Runner with HourglassSession on a real
valkey-server, the model scripted with agents.testing.ScriptedModel (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from agents.testing import ScriptedModel, assistant_message
from aiohttp.test_utils import TestClient, TestServer

from examples.agent_app.agents_endpoint import MODEL_KEY
from examples.agent_app.main import build_app
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


@pytest.fixture
async def client_and_model(
    redis_server: RedisProcess, tmp_path: object
) -> AsyncIterator[tuple[TestClient[object, object], ScriptedModel]]:
    env = {
        "REDIS_URL": redis_server.url,
        "HOURGLASS_NAMESPACE": fresh_namespace(),
        "HOURGLASS_CONFIG_DIR": str(tmp_path),
    }
    app = build_app(env)
    model = ScriptedModel()
    app[MODEL_KEY] = model
    async with TestClient(TestServer(app)) as client:
        yield client, model


async def test_conversation_keeps_history_across_turns(
    client_and_model: tuple[TestClient[object, object], ScriptedModel],
) -> None:
    client, model = client_and_model
    model.enqueue([assistant_message("San Francisco")])
    first = await client.post("/agents/conv-1/messages", json={"message": "Golden Gate?"})
    assert first.status == 200, await first.text()
    assert (await first.json()) == {"reply": "San Francisco", "items": 2}

    model.enqueue([assistant_message("California")])
    second = await client.post("/agents/conv-1/messages", json={"message": "Which state?"})
    assert (await second.json())["items"] == 4
    seen = model.calls[-1].input
    assert any("Golden Gate?" in str(item) for item in seen)  # the history reached the model

    other = await client.get("/agents/conv-2")
    assert (await other.json()) == {"items": []}
    history = await (await client.get("/agents/conv-1")).json()
    assert [item.get("role") for item in history["items"]] == ["user", "assistant"] * 2


async def test_bad_requests_are_named(
    client_and_model: tuple[TestClient[object, object], ScriptedModel],
) -> None:
    client, _ = client_and_model
    empty = await client.post("/agents/conv-1/messages", json={"message": ""})
    assert empty.status == 400
    hostile = await client.post("/agents/a*b/messages", json={"message": "hi"})
    assert hostile.status == 400
    assert (await hostile.json())["error"] == "invalid session id"
