"""Kubernetes/Go-style durations (``500ms``, ``1m30s``, ``2h``) and plain seconds.

No well-kept library parses Go durations, so this is a small strict parser: it
accepts what ``time.ParseDuration`` accepts for positive values (units ``ns``,
``us``/``µs``, ``ms``, ``s``, ``m``, ``h``; a ``d`` suffix is also accepted since
operators write ``7d``) and refuses everything else with a reason.
"""

from __future__ import annotations

import contextlib
import math
import re

from agent_lib.errors import DurationError

MAX_DURATION_SECONDS = 30 * 24 * 3600.0
"""Upper bound for every duration in a spec: 30 days."""

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
DURATION_PATTERN = r"^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h|d))+$|^[0-9]+(\.[0-9]+)?$"
"""The same grammar as a regular expression, for the CRD schema."""


def parse_duration(
    value: object,
    *,
    field: str = "duration",
    maximum: float = MAX_DURATION_SECONDS,
    allow_zero: bool = False,
) -> float:
    """Return ``value`` in seconds, or raise `DurationError` naming ``field``."""
    if isinstance(value, bool):
        raise DurationError(field, "expected a duration such as '30s' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip(), field)
    else:
        raise DurationError(
            field, f"expected a duration such as '30s' or seconds, got {type(value).__name__}"
        )
    if math.isnan(seconds) or math.isinf(seconds):
        raise DurationError(field, "must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise DurationError(field, f"must be positive, got {value!r}")
    if seconds > maximum:
        raise DurationError(
            field, f"{value!r} is longer than the maximum of {format_duration(maximum)}"
        )
    return seconds


def _parse_text(text: str, field: str) -> float:
    if not text:
        raise DurationError(field, "empty duration")
    if len(text) > 64:
        raise DurationError(field, "duration string is too long")
    if text.startswith("-") and text[1:2].isdigit():
        # a valid duration with a minus sign: the caller says it must be positive
        with contextlib.suppress(DurationError):
            return -_parse_text(text[1:], field)
    try:
        return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else _parse_units(text, field)
    except OverflowError:
        raise DurationError(field, f"{text!r} is out of range") from None


def _parse_units(text: str, field: str) -> float:
    total = 0.0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise DurationError(
            field,
            f"{text!r} is not a duration: use a number with a unit "
            "(ns, us, ms, s, m, h, d) such as '500ms', '1m30s', '2h', or plain seconds",
        )
    # Nanoseconds are the finest unit: rounding there drops float artefacts such as
    # 1001ms -> 1.0010000000000001, which would otherwise reach the rendered config.
    return round(total, 9)


def format_duration(seconds: float) -> str:
    """Render seconds as the shortest Go-style string (``90`` -> ``1m30s``)."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    if millis == 0:
        return f"{round(seconds * 1e6)}us"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or (ms and (hours or minutes)):
        parts.append(f"{secs}.{ms:03d}".rstrip("0").rstrip(".") + "s")
    elif ms:
        parts.append(f"{ms}ms")
    return "".join(parts)
