"""An OpenAI Agents SDK agent whose conversation history lives in Hourglass.

``POST /agents/{conversation}/messages`` with ``{"message": "..."}`` runs one turn of
an Agents SDK ``Agent`` with ``session=HourglassSession(conversation, sessions)``: the
SDK reads the history and appends the new items, the namespace's SessionPolicy
expires and caps them, and the model call gets its timeout from the profile
(``llmCall``), capped by the request's deadline.

Needs the extra ``hourglass[openai-agents]``; `add_agent_routes` is skipped without it.
The model is built on first use from ``OPENAI_API_KEY``; tests put a scripted model
(``agents.testing.ScriptedModel``) in ``app[MODEL_KEY]`` instead.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, Model, Runner
from aiohttp import web

from agent_lib.integrations.openai_agents import HourglassSession
from examples.agent_app.agent_endpoint import RUNTIME_KEY, SESSIONS_KEY, _error, _json
from examples.agent_app.agent_runtime import AgentRuntime

MODEL_KEY: web.AppKey[Model] = web.AppKey("agents_model", Model)
HISTORY_LIMIT = 40
"""Items of history the agent sees per turn (get_items(limit) reads only these)."""


def _default_model(app: web.Application) -> Model:
    """The real model: AsyncOpenAI with the profile's llmCall timeout (and connect)."""
    from agents import OpenAIResponsesModel
    from openai import AsyncOpenAI

    runtime: AgentRuntime = app[RUNTIME_KEY]
    client = AsyncOpenAI(timeout=runtime.timeouts.httpx_timeout("llmCall"))
    return OpenAIResponsesModel(model="gpt-4.1-mini", openai_client=client)


async def agent_message(request: web.Request) -> web.Response:
    body = await _json(request)
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return _error(400, "message must be a non-empty string")
    app = request.app
    if MODEL_KEY not in app:
        app[MODEL_KEY] = _default_model(app)
    session = HourglassSession(request.match_info["conversation"], app[SESSIONS_KEY])
    session.session_settings.limit = HISTORY_LIMIT
    agent = Agent(name="assistant", instructions="Answer briefly.", model=app[MODEL_KEY])
    runtime: AgentRuntime = app[RUNTIME_KEY]
    async with runtime.timeouts.deadline("request"):
        result = await Runner.run(agent, message, session=session)
    history = await session.get_items()
    return web.json_response({"reply": str(result.final_output), "items": len(history)})


async def agent_history(request: web.Request) -> web.Response:
    session = HourglassSession(request.match_info["conversation"], request.app[SESSIONS_KEY])
    items: list[Any] = await session.get_items()
    return web.json_response({"items": items})


def add_agent_routes(app: web.Application) -> None:
    app.router.add_post("/agents/{conversation}/messages", agent_message)
    app.router.add_get("/agents/{conversation}", agent_history)
