"""Starts and stops the recommendation loop (`hourglass_operator.tuning_loop`) with kopf."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import kopf

from hourglass_operator.controller import Controller
from hourglass_operator.settings import OperatorSettings
from hourglass_operator.tuning_loop import Tuner

PROFILE_INDEX = "hourglass_profiles"


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    controller: Callable[[], Controller],
    indices_seen: Mapping[str, Any],
    rerender: Callable[[str], Awaitable[None]],
    leads_in: Callable[[str], Awaitable[bool]],
) -> None:
    tasks: list[asyncio.Task[None]] = []

    def namespaces() -> dict[str, Sequence[Mapping[str, Any]]]:
        index = indices_seen.get(PROFILE_INDEX, {})
        return {ns: list(index[ns]) for ns in list(index)}

    @kopf.on.startup(registry=registry)
    async def start_tuning(**_: Any) -> None:
        tuner = Tuner(
            lambda ns, body, change: controller().update_status(ns, body, change),
            settings.prometheus_url,
            settings.prometheus_selector,
            settings.tuning_interval_seconds,
        )
        tasks.append(asyncio.create_task(tuner.run_forever(namespaces, rerender, leads_in)))

    @kopf.on.cleanup(registry=registry)
    async def stop_tuning(**_: Any) -> None:
        while tasks:
            task = tasks.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
