from __future__ import annotations

import pytest

from agent_lib.durations import MAX_DURATION_SECONDS, format_duration, parse_duration
from agent_lib.errors import DurationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        ("250us", 0.00025),
        ("7d", 7 * 86400.0),
        ("45", 45.0),
        (45, 45.0),
        (0.25, 0.25),
    ],
)
def test_accepts_go_durations_and_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10x", "not a duration"),
        ("1m 30s", "not a duration"),
        ("", "empty"),
        ("-5s", "must be positive, got '-5s'"),
        (0, "positive"),
        (-1, "positive"),
        ("31d", "longer than the maximum"),
        (True, "expected a duration"),
        ([1], "expected a duration"),
        (float("nan"), "finite"),
        ("9" * 80 + "s", "too long"),
    ],
)
def test_refuses_with_field_and_reason(value: object, reason: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(value, field="spec.timeouts.llmCall")
    assert caught.value.field == "spec.timeouts.llmCall"
    assert reason in caught.value.reason


def test_maximum_is_thirty_days() -> None:
    assert parse_duration("720h") == MAX_DURATION_SECONDS
    with pytest.raises(DurationError):
        parse_duration("720h1s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "1m30s"), (0.5, "500ms"), (7200, "2h"), (1.25, "1.25s"), (3661.5, "1h1m1.5s")],
)
def test_format_is_the_inverse_of_parse(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1001ms", "1.1s", "100ms", "3m0.3s", "7ns"])
def test_no_float_artefacts_reach_the_rendered_value(text: str) -> None:
    seconds = parse_duration(text)
    assert len(repr(seconds)) <= 12, repr(seconds)
