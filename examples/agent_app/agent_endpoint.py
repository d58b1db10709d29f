"""HTTP endpoints that open, continue and close agent sessions.

Before the migration this module kept every conversation in a module-level dict,
which grew without bound, was lost on every restart and could not be shared by two
replicas::

    _sessions: dict[str, dict] = {}

    async def open_session(request):
        sid = uuid.uuid4().hex
        _sessions[sid] = {"history": [], "created": time.time()}
        return web.json_response({"id": sid}, status=201)

    async def send_message(request):
        session = _sessions[request.match_info["sid"]]        # KeyError -> 500
        reply = await runtime.run_turn(session["history"], ...)
        session["history"].append(...)                        # never expires

Now the sessions live in a `SessionManager` (Redis/Valkey in every environment, or
``memory://`` in a unit test): they expire on the SessionPolicy's TTL, survive a
restart, are shared by every replica, and an unknown or malformed id is a 404/400
instead of a crash.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_lib import SessionManager
from agent_lib.errors import DeadlineExceeded, InvalidSessionId, SessionStoreUnavailable
from examples.agent_app.agent_runtime import AgentRuntime

SESSIONS_KEY: web.AppKey[SessionManager] = web.AppKey("sessions", SessionManager)
RUNTIME_KEY: web.AppKey[AgentRuntime] = web.AppKey("runtime", AgentRuntime)
MAX_HISTORY = 50
"""Turns kept per session; older ones are dropped so a session stays small."""


def _error(status: int, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Typed agent_lib errors become HTTP answers, never a 500 with a traceback."""
    try:
        response: web.StreamResponse = await handler(request)
    except InvalidSessionId as error:
        return _error(400, "invalid session id", detail=error.reason)
    except DeadlineExceeded as error:
        return _error(504, "deadline exceeded", timeout=error.name, budget_s=error.budget)
    except SessionStoreUnavailable as error:
        return _error(503, "session store unavailable", detail=str(error))
    return response


async def open_session(request: web.Request) -> web.Response:
    body = await _json(request)
    sessions = request.app[SESSIONS_KEY]
    session = await sessions.create({"history": [], "user": body.get("user")})
    return web.json_response({"id": session.id, "created_at": session.created_at}, status=201)


async def get_session(request: web.Request) -> web.Response:
    session = await request.app[SESSIONS_KEY].get(request.match_info["sid"])
    if session is None:
        return _error(404, "no such session (never opened, closed, or expired)")
    return web.json_response(
        {"id": session.id, "data": session.data, "last_access": session.last_access}
    )


async def send_message(request: web.Request) -> web.Response:
    """One agent turn: load the session, run the model (and a tool), store the turn."""
    sessions = request.app[SESSIONS_KEY]
    runtime = request.app[RUNTIME_KEY]
    session = await sessions.get(request.match_info["sid"])
    if session is None:
        return _error(404, "no such session (never opened, closed, or expired)")
    body = await _json(request)
    message = str(body.get("message", ""))
    turn = await runtime.run_turn(
        session.data.get("history", []), message, llm_delay=_delay(body.get("llm_delay"))
    )
    history = [*session.data.get("history", []), turn.as_dict()][-MAX_HISTORY:]
    await sessions.update(session.id, {**session.data, "history": history})
    return web.json_response({"reply": turn.reply, "tool": turn.tool, "elapsed_s": turn.elapsed_s})


async def close_session(request: web.Request) -> web.Response:
    deleted = await request.app[SESSIONS_KEY].delete(request.match_info["sid"])
    if not deleted:
        return _error(404, "no such session (never opened, closed, or expired)")
    return web.Response(status=204)


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _delay(value: object) -> float | None:
    """The fake model's delay a request asks for (tests use it to provoke a timeout)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 600:
        raise web.HTTPBadRequest(text="llm_delay must be a number of seconds in [0, 600]")
    return float(value)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sessions", open_session)
    app.router.add_get("/sessions/{sid}", get_session)
    app.router.add_post("/sessions/{sid}/messages", send_message)
    app.router.add_delete("/sessions/{sid}", close_session)
