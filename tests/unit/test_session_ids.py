"""Session ids, namespaces and key prefixes: anything that could address other keys is refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_lib.errors import ConfigError, InvalidSessionId
from agent_lib.sessions._ids import (
    SESSION_ID_PATTERN,
    new_session_id,
    validate_key_prefix,
    validate_namespace,
    validate_session_id,
)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc*defgh", "glob wildcard"),
        ("abcdefgh?", "glob wildcard"),
        ("abc[defgh", "character class"),
        ("abc]defgh", "character class"),
        ("{abcdefgh}", "hash tag"),
        ("abcd:efgh", "key separator"),
        ("abcd efgh", "whitespace"),
        ("abcd\tefgh", "whitespace"),
        ("abcdéfgh", "ASCII"),
        ("x" * 129, "length"),
        ("abcd.efgh", "allowed characters"),
        ("", "length"),
    ],
)
def test_bad_session_ids_say_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidSessionId) as caught:
        validate_session_id(value)
    assert caught.value.field == "session_id"
    assert reason in caught.value.reason


@pytest.mark.parametrize("value", [None, 12345678, b"abcdefgh", ["abcdefgh"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidSessionId, match="must be a string"):
        validate_session_id(value)


@given(st.text(max_size=140))
def test_accepted_ids_match_the_documented_pattern(value: str) -> None:
    try:
        validate_session_id(value)
    except InvalidSessionId:
        assert not re.fullmatch(SESSION_ID_PATTERN, value)
    else:
        assert re.fullmatch(SESSION_ID_PATTERN, value)
        assert not set(value) & set("*?[]{}: ")


def test_generated_ids_are_valid_and_distinct() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(validate_session_id(i) == i for i in ids)


@pytest.mark.parametrize("bad", ["", "a{b}", "a:b", "-leading", "x" * 64, "sp ace", "ü"])
def test_namespaces_and_prefixes_are_checked(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_namespace(bad)
    assert caught.value.field == "namespace"
    with pytest.raises(ConfigError) as caught:
        validate_key_prefix(bad)
    assert caught.value.field == "keyPrefix"


def test_short_client_ids_are_fine() -> None:
    assert validate_session_id("s1") == "s1"


def test_good_namespaces_pass_unchanged() -> None:
    assert validate_namespace("agents-prod") == "agents-prod"
    assert validate_key_prefix("hg.v2_x") == "hg.v2_x"
