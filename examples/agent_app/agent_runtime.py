"""The agent's work: a turn calls the model, maybe a tool, and polls a background job.

Before the migration every wait here had its own hard-coded constant::

    LLM_TIMEOUT = 30          # seconds, same in dev and prod
    TOOL_TIMEOUT = 10
    POLL_INTERVAL = 1.0       # fixed, no backoff, no overall limit
    reply = await asyncio.wait_for(llm.complete(prompt), LLM_TIMEOUT)

Now each wait is a named deadline of the active TimeoutProfile (``llmCall``,
``toolCall``, ``request``) read from the `TimeoutManager` at the moment of the call,
so an edited profile applies to the next call without a restart; nested deadlines
never outlive the request's; and every expiry is counted in ``/metrics``.

The model is a stand-in (`FakeLLM`): it sleeps a configurable time instead of calling
a model API, which is the only part of a real agent that cannot run in a test here.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_lib import TimeoutManager

LEGACY_TIMEOUTS: Mapping[str, float] = {
    "request": 60.0,
    "connect": 5.0,
    "llmCall": 30.0,
    "toolCall": 10.0,
}
"""The constants this service hard-coded before Hourglass (HOURGLASS_LEGACY_TIMEOUTS=1)."""

DEFAULT_LLM_DELAY_S = 0.05


@dataclass(frozen=True)
class Turn:
    message: str
    reply: str
    tool: str | None
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "reply": self.reply, "tool": self.tool}


class FakeLLM:
    """Stand-in for a model API: answers after ``delay`` seconds (``FAKE_LLM_DELAY``).

    It exists so that the example runs with no model and no network; a real agent
    calls its provider's client here, passing ``timeouts.remaining()`` as the HTTP
    timeout.
    """

    def __init__(self, delay: float | None = None) -> None:
        self.delay = (
            delay
            if delay is not None
            else float(os.environ.get("FAKE_LLM_DELAY", DEFAULT_LLM_DELAY_S))
        )

    async def complete(
        self, history: Sequence[Mapping[str, Any]], message: str, delay: float | None
    ) -> str:
        await asyncio.sleep(self.delay if delay is None else delay)
        return f"echo #{len(history) + 1}: {message}"


async def run_tool(name: str, argument: str) -> str:
    """A local tool (word count); real tools call other services under ``toolCall``."""
    await asyncio.sleep(0)
    return f"{name}: {len(argument.split())} words"


class FakeJob:
    """Stand-in for a long-running job on another service (a batch, a build, a crawl)
    that the agent can only poll; it finishes ``seconds`` after it starts."""

    def __init__(self, seconds: float) -> None:
        self.done_at = time.monotonic() + seconds

    def done(self) -> bool:
        return time.monotonic() >= self.done_at


class AgentRuntime:
    """Runs one turn under the ``request`` deadline, the model under ``llmCall``,
    the tool under ``toolCall``."""

    def __init__(self, timeouts: TimeoutManager, llm: FakeLLM | None = None) -> None:
        self.timeouts = timeouts
        self.llm = llm or FakeLLM()

    async def run_turn(
        self, history: Sequence[Mapping[str, Any]], message: str, llm_delay: float | None = None
    ) -> Turn:
        started = time.monotonic()
        async with self.timeouts.deadline("request"):
            async with self.timeouts.deadline("llmCall"):
                reply = await self.llm.complete(history, message, llm_delay)
            tool = None
            if message.startswith("/count "):
                async with self.timeouts.deadline("toolCall"):
                    tool = await run_tool("count", message.removeprefix("/count "))
            elif message.startswith("/wait "):
                seconds = _seconds(message.removeprefix("/wait "))
                tool = (
                    "usage: /wait SECONDS"
                    if seconds is None
                    else await self.wait_for_job(FakeJob(seconds))
                )
        return Turn(message, reply, tool, time.monotonic() - started)

    async def wait_for_job(self, job: FakeJob) -> str:
        """Poll with the profile's backoff (interval, multiplier, jitter, maxDuration),
        formerly ``while not job.done(): await asyncio.sleep(POLL_INTERVAL)``."""
        await self.timeouts.apoll(job.done, name="jobPoll")
        return "job finished"


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value <= 3600 else None
