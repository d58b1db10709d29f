"""Hostile session ids, payloads and namespaces against SessionManager (memory:// store).

Anything that could smuggle a Redis key pattern (``*``, ``?``, ``[``), a Cluster hash
tag (``{...}``), our key separator, control bytes or non-ASCII into a key is refused
with `InvalidSessionId` by every call, before the store sees it; payloads that are too
big or not JSON are refused and nothing is stored. The Redis variant of the key check
is in tests/integration/test_hostile_session_keys.py.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_lib import SessionManager
from agent_lib.errors import (
    ConfigError,
    InvalidPayload,
    InvalidSessionId,
    PayloadTooLarge,
)
from agent_lib.sessions._ids import SESSION_ID_PATTERN
from tests.unit._helpers import report_case_counts

CASES: Counter[str] = Counter()
MAX_PAYLOAD = 4096
SMUGGLERS = [
    "*",
    "sess*",
    "abcdefgh*",
    "abcdefg?",
    "abcd[a-z]efgh",
    "{hourglass:default}:lru",
    "abcdefgh{x}",
    "abcdefgh}",
    "a:b:c:d:e:f",
    "../../etc/passwd",
    "abcdefgh\r\nFLUSHALL",
    "abcdefgh\x00",
    "abcdefgh ",
    "sessioné1234",
    "\uff21\uff22\uff23\uff24\uff25\uff26\uff27\uff28",  # fullwidth ABCDEFGH
    "\ud800abcdefgh",
    "",
    "x" * 129,
    "x" * 100_000,
]


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report_case_counts(request, "hypothesis session cases run", CASES, ": valid")


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    sm = SessionManager.from_url("memory://", namespace="hostile", max_payload=MAX_PAYLOAD)
    async with sm:
        yield sm


async def _assert_refused_everywhere(sm: SessionManager, session_id: Any) -> None:
    before = await sm.count()
    calls = [
        sm.create({"x": 1}, session_id=session_id),
        sm.get(session_id),
        sm.touch(session_id),
        sm.update(session_id, {"x": 2}),
        sm.delete(session_id),
    ]
    for call in calls:
        with pytest.raises(InvalidSessionId) as caught:
            await call
        assert caught.value.field == "session_id" and caught.value.reason
    assert await sm.count() == before


@pytest.mark.parametrize("session_id", SMUGGLERS, ids=range(len(SMUGGLERS)))
async def test_smuggling_ids_are_refused_by_every_call(
    manager: SessionManager, session_id: str
) -> None:
    await _assert_refused_everywhere(manager, session_id)


@pytest.mark.parametrize(
    ("session_id", "reason"),
    [
        ("abcdefgh*", "glob wildcard"),
        ("abcdefgh{x}", "hash tag"),
        ("a:b:c:d:e:f", "key separator"),
        ("sessioné1234", "ASCII"),
        ("abcdefgh\r\nx", "whitespace"),
        ("x" * 129, "length"),
    ],
)
async def test_refusals_say_why(manager: SessionManager, session_id: str, reason: str) -> None:
    with pytest.raises(InvalidSessionId) as caught:
        await manager.create(session_id=session_id)
    assert reason in caught.value.reason


@pytest.mark.parametrize("session_id", [b"abcdefgh12", 12345678, None.__class__, ["abcdefgh"]])
async def test_non_string_ids_are_refused(manager: SessionManager, session_id: Any) -> None:
    await _assert_refused_everywhere(manager, session_id)


@_settings(300)
@given(session_id=st.text(max_size=140) | st.from_regex(SESSION_ID_PATTERN, fullmatch=True))
async def test_any_text_id_is_either_valid_or_refused(
    manager: SessionManager, session_id: str
) -> None:
    CASES["session ids: arbitrary text"] += 1
    if re.fullmatch(SESSION_ID_PATTERN, session_id) is None:
        await _assert_refused_everywhere(manager, session_id)
        return
    CASES["session ids: valid"] += 1
    await manager.delete(session_id)
    created = await manager.create({"id": session_id}, session_id=session_id)
    assert created.id == session_id
    got = await manager.get(session_id)
    assert got is not None and got.data == {"id": session_id}
    assert await manager.delete(session_id)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@_settings(300)
@given(data=JSON)
async def test_json_payloads_round_trip_or_are_refused_for_size(
    manager: SessionManager, data: Any
) -> None:
    CASES["payloads: JSON-like"] += 1
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) > MAX_PAYLOAD:
        before = await manager.count()
        with pytest.raises(PayloadTooLarge):
            await manager.create(data)
        assert await manager.count() == before
        return
    session = await manager.create(data)
    got = await manager.get(session.id)
    assert got is not None and got.data == ({} if data is None else data)
    await manager.delete(session.id)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe raw bytes",
        {"text": "lone surrogate \ud800"},
        {"nan": math.nan},
        {"inf": math.inf},
        {1, 2, 3},
        {"key": object()},
        {("tuple", "key"): 1},
    ],
    ids=["bytes", "surrogate", "nan", "inf", "set", "object", "tuple-key"],
)
async def test_non_json_payloads_are_refused_and_nothing_is_stored(
    manager: SessionManager, data: Any
) -> None:
    with pytest.raises(InvalidPayload) as caught:
        await manager.create(data)
    assert caught.value.field == "data" and caught.value.reason
    assert await manager.count() == 0


async def test_huge_payloads_are_refused_on_create_and_update(manager: SessionManager) -> None:
    session = await manager.create({"small": True})
    huge = {"blob": "x" * (10 * 1024 * 1024)}
    with pytest.raises(PayloadTooLarge) as caught:
        await manager.create(huge)
    assert caught.value.limit == MAX_PAYLOAD and caught.value.size > 10 * 1024 * 1024
    with pytest.raises(PayloadTooLarge):
        await manager.update(session.id, huge)
    got = await manager.get(session.id)
    assert got is not None and got.data == {"small": True}
    assert await manager.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("namespace", "ns*"),
        ("namespace", "{tag}"),
        ("namespace", "a:b"),
        ("namespace", ""),
        ("namespace", "é"),
        ("namespace", "n" * 64),
        ("key_prefix", "hg}"),
        ("key_prefix", "hg?"),
        ("key_prefix", "hg prefix"),
    ],
)
def test_hostile_namespaces_and_prefixes_are_refused(field: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SessionManager.from_url("memory://", **{field: value})
    assert caught.value.field == field and caught.value.reason
