"""Cron schedules checked by Kubernetes' own rules, and IANA time-zone names.

kube-apiserver validates a CronJob's ``schedule`` with robfig/cron v3's standard parser
and refuses any ``TZ``; croniter accepts more (``7`` for Sunday, ``L``, ``W``, ``#``),
so a schedule croniter likes could still make the CronJob write fail with 422. This is
that parser's grammar, a little stricter where croniter and Kubernetes differ on
meaning: ``?`` (robfig reads it as ``*``) and ``@every`` (no next run for croniter) are
refused with a reason.
"""

from __future__ import annotations

import re
import zoneinfo

DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {name: i for i, name in enumerate(_DAYS)}),
)
_TZ_PART = re.compile(r"^[A-Za-z0-9._+][A-Za-z0-9._+\-]{0,13}$")
"""kube-apiserver's rule for each /-separated part of a CronJob's timeZone."""


class CronError(ValueError):
    """Why a schedule is not one Kubernetes accepts."""


def check_schedule(schedule: str) -> str:
    """``schedule`` unchanged if a CronJob would accept it; CronError saying why not."""
    text = schedule.strip()
    if not text:
        raise CronError("the schedule is empty")
    if "TZ" in schedule:
        raise CronError("TZ= and CRON_TZ= are not allowed in a schedule: use spec.cleanup.timeZone")
    if text.startswith("@"):
        if text in DESCRIPTORS:
            return schedule
        raise CronError(f"{text!r:.40} is not one of {', '.join(sorted(DESCRIPTORS))}")
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise CronError(f"expected exactly 5 fields, found {len(fields)}")
    for value, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        for part in value.split(","):
            _check_range(part, name, low, high, names)
    return schedule


def _check_range(part: str, name: str, low: int, high: int, names: dict[str, int]) -> None:
    expr, slash, step_text = part.partition("/")
    if slash and (not step_text.isdigit() or int(step_text) == 0):
        raise CronError(f"{name}: step {step_text!r:.20} is not a positive number")
    if expr == "*":
        return
    if expr == "?":
        raise CronError(f"{name}: '?' is not portable; use '*'")
    start_text, dash, end_text = expr.partition("-")
    start = _value(start_text, name, low, high, names)
    end = _value(end_text, name, low, high, names) if dash else start
    if start > end:
        raise CronError(f"{name}: range {expr!r:.20} starts after it ends")


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        hint = " (L, W and # are not supported by Kubernetes)" if re.search(r"[LW#]", text) else ""
        raise CronError(f"{name}: {text!r:.20} is not a number{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is outside {low}-{high}")
    return value


def check_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this system knows (what a CronJob's timeZone takes)."""
    parts = name.split("/")
    if (
        name.lower() == "local"
        or any(p in (".", "..") or not _TZ_PART.match(p) for p in parts)
        or parts[0] in ("posix", "right")
    ):
        raise CronError(f"{name!r:.60} is not an IANA time zone name such as Europe/Paris")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronError(f"{name!r:.60} is not a known IANA time zone") from None
    return name
