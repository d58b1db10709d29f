"""The reference agent service: sessions in Redis, timeouts from the platform, live.

Run it next to ``hourglass local`` (which prints the two variables it needs)::

    hourglass local &                      # HOURGLASS_CONFIG_DIR=... REDIS_URL=...
    set -a; . .hourglass/env; set +a
    python -m examples.agent_app.main --port 8080

At start it builds a `SessionManager` from ``REDIS_URL`` and the mounted SessionPolicy,
and an `AsyncTimeoutManager` on the mounted ``hourglass.yaml`` with the environment's
profile; it serves the session endpoints, ``/healthz``, ``/timeouts`` and ``/metrics``.

Compatibility with the pre-Hourglass service, for a gradual rollout:

- ``HOURGLASS_LEGACY_TIMEOUTS=1`` applies the old hard-coded constants
  (`agent_runtime.LEGACY_TIMEOUTS`) over whatever the profile says: the rollback switch.
- The old variables still work, each with a deprecation warning, when the new one is
  not set: ``AGENT_LLM_TIMEOUT`` -> ``HOURGLASS_TIMEOUT_LLM_CALL``, ``AGENT_TOOL_TIMEOUT``
  -> ``HOURGLASS_TIMEOUT_TOOL_CALL``, ``AGENT_REQUEST_TIMEOUT`` ->
  ``HOURGLASS_TIMEOUT_REQUEST``, ``AGENT_SESSION_TTL`` -> ``SESSION_TTL_SECONDS``,
  ``AGENT_REDIS_URL`` -> ``REDIS_URL``, ``AGENT_ENV`` -> ``HOURGLASS_PROFILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import warnings
from collections.abc import Mapping, MutableMapping
from typing import Any

import prometheus_client
from aiohttp import web

from agent_lib import AsyncTimeoutManager, SessionManager
from agent_lib.errors import SessionStoreUnavailable
from examples.agent_app.agent_endpoint import (
    RUNTIME_KEY,
    SESSIONS_KEY,
    add_routes,
    errors_middleware,
)
from examples.agent_app.agent_runtime import LEGACY_TIMEOUTS, AgentRuntime

log = logging.getLogger("agent_app")

LEGACY_VARIABLES: Mapping[str, str] = {
    "AGENT_LLM_TIMEOUT": "HOURGLASS_TIMEOUT_LLM_CALL",
    "AGENT_TOOL_TIMEOUT": "HOURGLASS_TIMEOUT_TOOL_CALL",
    "AGENT_REQUEST_TIMEOUT": "HOURGLASS_TIMEOUT_REQUEST",
    "AGENT_SESSION_TTL": "SESSION_TTL_SECONDS",
    "AGENT_REDIS_URL": "REDIS_URL",
    "AGENT_ENV": "HOURGLASS_PROFILE",
}
"""Old variable -> the variable that replaces it (the new one wins when both are set)."""

LEGACY_ENVIRONMENTS: Mapping[str, str] = {
    "production": "prod",
    "development": "dev",
    "local": "dev",
}
"""Old ``AGENT_ENV`` values -> profile names (``staging``/``prod``/``dev`` pass through)."""

TIMEOUTS_KEY: web.AppKey[AsyncTimeoutManager] = web.AppKey("timeouts", AsyncTimeoutManager)
LEGACY_FLAG = "HOURGLASS_LEGACY_TIMEOUTS"

REQUESTS = prometheus_client.Counter(
    "agent_app_requests", "HTTP requests served, by route and status.", ["route", "status"]
)
COUNT_TIMEOUT_S = 2.0


def translate_legacy(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with each old variable mapped to its replacement.

    Every old variable found is reported once, as a `DeprecationWarning` and a log line
    naming the variable to use instead.
    """
    result = dict(environ)
    for old, new in LEGACY_VARIABLES.items():
        value = environ.get(old, "").strip()
        if not value:
            continue
        if old == "AGENT_ENV":
            value = LEGACY_ENVIRONMENTS.get(value.lower(), value.lower())
        message = f"{old} is deprecated; set {new} instead"
        if environ.get(new, "").strip():
            message += f" ({new} is set and wins)"
        else:
            result[new] = value
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning(message)
    return result


def legacy_timeouts_enabled(environ: Mapping[str, str]) -> bool:
    return environ.get(LEGACY_FLAG, "").strip().lower() in ("1", "true", "yes", "on")


def build_app(environ: Mapping[str, str] | None = None) -> web.Application:
    """The aiohttp application; managers are started and stopped with it."""
    env = translate_legacy(os.environ if environ is None else environ)
    legacy = legacy_timeouts_enabled(env)
    app = web.Application(middlewares=[_count_requests, errors_middleware])
    timeouts = AsyncTimeoutManager(
        profile=env.get("HOURGLASS_PROFILE") or None,
        overrides=dict(LEGACY_TIMEOUTS) if legacy else None,
        environ=env,
    )
    app[TIMEOUTS_KEY] = timeouts
    app[SESSIONS_KEY] = SessionManager.from_env(env)
    app[RUNTIME_KEY] = AgentRuntime(timeouts)
    add_routes(app)
    if importlib.util.find_spec("agents") is not None:  # the openai-agents extra
        from examples.agent_app.agents_endpoint import add_agent_routes

        add_agent_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/timeouts", show_timeouts)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_lifecycle)
    current = timeouts.current
    log.info(
        "agent_app: profile %s (hash %s) from %s%s; sessions in %s",
        current.name,
        current.hash,
        current.source,
        " with HOURGLASS_LEGACY_TIMEOUTS" if legacy else "",
        type(app[SESSIONS_KEY].store).__name__,
    )
    return app


async def _lifecycle(app: web.Application) -> Any:
    """Watch the config folder while serving; close the session store on the way out."""
    timeouts = app[TIMEOUTS_KEY]
    await timeouts.astart()
    timeouts.on_change(_log_change)
    yield
    await timeouts.astop()
    await app[SESSIONS_KEY].close()


def _log_change(old: Any, new: Any) -> None:
    changed = {
        name: (old.timeouts.get(name), seconds)
        for name, seconds in new.timeouts.items()
        if old.timeouts.get(name) != seconds
    }
    log.info("agent_app: timeouts reloaded (hash %s -> %s): %s", old.hash, new.hash, changed)


@web.middleware
async def _count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as error:
        REQUESTS.labels(name, str(error.status)).inc()
        raise
    REQUESTS.labels(name, str(response.status)).inc()
    return response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves. A rejected config reload is reported, not fatal."""
    timeouts = request.app[TIMEOUTS_KEY]
    current = timeouts.current
    body = {
        "status": "ok",
        "profile": current.name,
        "configHash": current.hash,
        "configSource": current.source,
        "configError": timeouts.last_error,
        "legacyTimeouts": any(o == "override" for o in current.origins.values()),
    }
    return web.json_response(body)


async def show_timeouts(request: web.Request) -> web.Response:
    """The timeouts in force right now, and which layer each comes from."""
    current = request.app[TIMEOUTS_KEY].current
    return web.json_response(
        {
            "profile": current.name,
            "hash": current.hash,
            "timeouts": dict(current.timeouts),
            "origins": dict(current.origins),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition: this app's counters, the session gauges that
    ``config/monitoring_config.yaml`` alerts on, and agent_lib's timeout metrics."""
    await _sample_sessions(request.app[SESSIONS_KEY])
    body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


async def _sample_sessions(sessions: SessionManager) -> None:
    """Refresh agent_lib's session gauges at scrape time (``count()`` sets them); a slow
    or absent store leaves them as they were rather than failing the scrape."""
    try:
        await asyncio.wait_for(sessions.count(), COUNT_TIMEOUT_S)
    except (TimeoutError, SessionStoreUnavailable) as error:
        log.warning("agent_app: session count unavailable for /metrics: %s", error)


def main(argv: list[str] | None = None, environ: MutableMapping[str, str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    warnings.simplefilter("default", DeprecationWarning)
    app = build_app(os.environ if environ is None else environ)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
