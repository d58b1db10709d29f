"""The operator's recommendation loop: every ``interval`` seconds, each tuned profile.

One loop for the operator (like the resync), not a kopf timer per resource (whose
finalizer would block deleting a profile while the operator is down). Each round asks
Prometheus `QUERIES_PER_ROUND` queries per profile whose ``spec.tuning.mode`` is not
``Off``: with the default 300 s interval, 36 queries per tuned profile per hour.

Nothing here fails a reconcile: Prometheus unreachable, a query refused or too few
samples set ``Tuned=False`` with the reason, and the last recommendation stays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from agent_lib.config.inheritance import resolve_profiles
from agent_lib.config.specs import parse_resource
from agent_lib.config.timeout_profiles import TimeoutProfile, TuningSpec
from hourglass_operator import tuning
from hourglass_operator.status import Condition, with_condition

QUERY_TIMEOUT_S = 10.0
_log = logging.getLogger("hourglass_operator")

StatusWriter = Callable[
    [str, Mapping[str, Any], Callable[[Mapping[str, Any]], dict[str, Any]]],
    Awaitable[dict[str, Any]],
]
"""(namespace, body, change): apply ``change`` to the resource's status and write it."""


class PrometheusError(RuntimeError):
    """Prometheus could not be asked, or refused the query; the message says why."""


class PrometheusClient:
    """The standard HTTP query API (``/api/v1/query``) over aiohttp: no heavy client."""

    def __init__(self, url: str, timeout_s: float = QUERY_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.queries = 0

    async def vector(self, promql: str, label: str = "name") -> dict[str, float]:
        """``label value -> sample value`` of an instant vector."""
        self.queries += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(f"{self.url}/api/v1/query", params={"query": promql}) as response,
            ):
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise PrometheusError(f"{self.url} unreachable: {type(error).__name__}") from error
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error") if isinstance(body, dict) else "not JSON"
            raise PrometheusError(f"{self.url} refused the query: {reason}")
        out: dict[str, float] = {}
        for item in body["data"]["result"]:
            key = item.get("metric", {}).get(label, "")
            try:
                out[key] = float(item["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                out[key] = math.nan
        return out


async def observe(
    client: PrometheusClient, spec: TuningSpec, selector: str
) -> dict[str, tuning.Observation]:
    results = {}
    for key, promql in tuning.queries(spec, selector).items():
        results[key] = await client.vector(promql)
    return tuning.observations(results)


def tuned_profiles(
    namespace: str, bodies: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], TuningSpec, dict[str, float]]]:
    """``(body, tuning, resolved timeouts)`` of each valid profile whose mode is not Off."""
    models: dict[str, TimeoutProfile] = {}
    raw: dict[str, Mapping[str, Any]] = {}
    for body in bodies:
        if body.get("kind") != "TimeoutProfile":
            continue
        model, problems = parse_resource(dict(body))
        if isinstance(model, TimeoutProfile) and not problems:
            models[model.name] = model
            raw[model.name] = body
    resolved = resolve_profiles(namespace, models.values()).profiles
    out = []
    for name, model in sorted(models.items()):
        spec = model.spec.tuning
        if spec is not None and spec.mode != "Off" and name in resolved:
            out.append((raw[name], spec, dict(resolved[name].timeouts)))
    return out


class Tuner:
    """One round per call of `run_round`; `run_forever` repeats it."""

    def __init__(
        self,
        write_status: StatusWriter,
        prometheus_url: str | None,
        selector: str = tuning.DEFAULT_SELECTOR,
        interval_s: float = 300.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._write = write_status
        self.client = PrometheusClient(prometheus_url) if prometheus_url else None
        self.selector = selector
        self.interval_s = interval_s
        self._clock = clock

    async def run_round(self, namespace: str, bodies: Sequence[Mapping[str, Any]]) -> bool:
        """Tune every tuned profile of ``namespace``; True when an applied value moved."""
        moved = False
        tuned = tuned_profiles(namespace, bodies)
        for body, spec, timeouts in tuned:
            moved |= await self._tune(namespace, body, spec, timeouts)
        names = {str(body.get("metadata", {}).get("name")) for body, _, _ in tuned}
        for body in bodies:
            if body.get("kind") == "TimeoutProfile" and body["metadata"].get("name") not in names:
                await self._untuned(namespace, body)
        return moved

    async def _untuned(self, namespace: str, body: Mapping[str, Any]) -> None:
        """A profile whose tuning was turned Off (or made invalid): its Tuned condition, if
        any, says so; the recommendations stay for reference, and nothing is applied."""
        generation = int(body.get("metadata", {}).get("generation") or 0)
        stamp = tuning._stamp(self._clock())
        condition = Condition(
            tuning.TUNED, False, "TuningOff", "spec.tuning.mode is Off: the spec's values run"
        )

        def change(status: Mapping[str, Any]) -> dict[str, Any]:
            old = next(
                (c for c in status.get("conditions") or () if c.get("type") == tuning.TUNED), None
            )
            if old is None or old.get("reason") == "TuningOff":
                return dict(status)
            return with_condition(status, condition, generation, stamp)

        await self._write(namespace, body, change)

    async def _tune(
        self,
        namespace: str,
        body: Mapping[str, Any],
        spec: TuningSpec,
        timeouts: Mapping[str, float],
    ) -> bool:
        generation = int(body.get("metadata", {}).get("generation") or 0)
        now = self._clock()
        stamp = tuning._stamp(now)
        if self.client is None:
            condition = Condition(
                tuning.TUNED,
                False,
                "PrometheusNotConfigured",
                "the operator runs without --prometheus-url; no recommendation is made",
            )
            await self._write(
                namespace, body, lambda s: with_condition(s, condition, generation, stamp)
            )
            return False
        name = str(body.get("metadata", {}).get("name"))
        selector = tuning.selector_for(self.selector, namespace, name)
        try:
            seen = await observe(self.client, spec, selector)
        except PrometheusError as error:
            condition = Condition(tuning.TUNED, False, "PrometheusUnreachable", str(error))
            _log.warning(
                "tuning %s/%s: %s; keeping the last recommendation", namespace, name, error
            )
            await self._write(
                namespace, body, lambda s: with_condition(s, condition, generation, stamp)
            )
            return False
        moved: list[bool] = [False]

        def change(status: Mapping[str, Any]) -> dict[str, Any]:
            previous = dict(status.get("recommendations") or {})
            fresh, short = dict(previous), []
            for timeout, current in sorted(timeouts.items()):
                before = previous.get(timeout) or {}
                in_use = tuning._seconds(before.get("effective")) if spec.mode == "Apply" else None
                observation = seen.get(timeout, tuning.Observation(None, 0.0, 0.0))
                rec = tuning.recommend(timeout, in_use or current, observation, spec)
                if rec is None:
                    short.append(f"{timeout}: {round(observation.samples)} of {spec.min_samples}")
                    continue
                rec = tuning.Recommendation(
                    rec.name, current, rec.value, rec.observed, rec.samples, rec.censored
                )
                fresh[timeout] = tuning.entry(rec, spec, before, now)
                if fresh[timeout].get("effective") != before.get("effective"):
                    moved[0] = True
            result = dict(status)
            result["recommendations"] = fresh
            if len(short) == len(timeouts):
                condition = Condition(
                    tuning.TUNED,
                    False,
                    "TooFewSamples",
                    "samples in the window: " + ", ".join(short),
                )
            else:
                done = "applied" if spec.mode == "Apply" else "recommended"
                message = f"{len(timeouts) - len(short)} timeout(s) {done}"
                if short:
                    message += "; too few samples for " + ", ".join(short)
                reason = "Applied" if spec.mode == "Apply" else "Recommended"
                condition = Condition(tuning.TUNED, True, reason, message)
            return with_condition(result, condition, generation, stamp)

        await self._write(namespace, body, change)
        return moved[0] and spec.mode == "Apply"

    async def run_forever(
        self,
        namespaces: Callable[[], Mapping[str, Sequence[Mapping[str, Any]]]],
        rerender: Callable[[str], Awaitable[None]],
        leads_in: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """Tune every namespace each interval; where ``leads_in`` says another replica
        leads, skip it (this replica's indices are frozen there)."""
        while True:
            for namespace, bodies in sorted(namespaces().items()):
                try:
                    if leads_in is not None and not await leads_in(namespace):
                        continue
                    if await self.run_round(namespace, bodies):
                        await rerender(namespace)
                except Exception:
                    _log.exception("tuning of %s failed; the next round retries it", namespace)
            await asyncio.sleep(self.interval_s)
