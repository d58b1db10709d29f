"""Work that must eventually succeed, outside kopf's per-handler retries.

kopf never retries ``on.event`` handlers: a drift repair, a ``lastCleanup`` record or a
re-render after a deletion that fails once would wait for the next unrelated event.
`Retrier` runs each such job until it succeeds, with growing delays, and keeps at most
one run per key (a new request for a key that is running makes it run once more, so
that the latest state is what counts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hourglass_operator.controller import retry_delay

_log = logging.getLogger("hourglass_operator")

Job = Callable[[], Awaitable[object]]


class Retrier:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def submit(self, key: str, job: Job) -> None:
        """Run ``job`` until it returns without raising; deduplicated by ``key``."""
        task = self._tasks.get(key)
        if task is not None and not task.done():
            self._again.add(key)
            return
        self._tasks[key] = asyncio.get_running_loop().create_task(
            self._run(key, job), name=f"hourglass-retry:{key}"
        )

    def pending(self) -> int:
        return sum(not t.done() for t in self._tasks.values())

    async def _run(self, key: str, job: Job) -> None:
        failures = 0
        try:
            while True:
                self._again.discard(key)
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    failures += 1
                    delay = float(getattr(error, "delay", 0) or retry_delay(failures, False))
                    _log.warning(
                        "%s failed (try %d, again in %.0fs): %s", key, failures, delay, error
                    )
                    await asyncio.sleep(delay)
                    continue
                if key not in self._again:
                    return
                failures = 0
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
