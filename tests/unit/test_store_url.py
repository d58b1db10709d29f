"""Store URLs are shown by their shape: a password, wherever it sits, is never printed."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_lib.errors import ConfigError
from agent_lib.sessions.store_url import check_store_url, mask_url

MARK = "ZQX"  # starts every generated secret, and appears in no URL template below
SECRETS = st.text(min_size=0, max_size=30).map(lambda text: MARK + text)
TEMPLATES = [
    "redis://user:{}@host:6379/0",
    "redis://:{}@host:6379/0",
    "redis://{}@host:6379/0",
    "rediss://user:{}@[::1]:6380/1",
    "redis://host:6379/0?password={}",
    "redis+sentinel://:{}@a:26379,b:26379/mymaster",
    "redis+cluster://user:{}@a:7000,b:7001",
    "{}",
]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:s3cret@h:6379/0", "redis://u:***@h:6379/0"),
        ("redis://s3cret@h", "redis://***@h"),
        ("redis://h:1/0?password=s3cret&db=1", "redis://h:1/0?password=***&db=1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("memory://", "memory://"),
        ("s3cret", "(not a URL)"),
        ("redis://:s3/cret@h:6379/0", "redis://(not shown: not a valid URL)"),
    ],
)
def test_mask_url_examples(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@settings(max_examples=150, deadline=None)
@given(secret=SECRETS, template=st.sampled_from(TEMPLATES), encode=st.booleans())
def test_no_secret_survives_masking_or_an_error(secret: str, template: str, encode: bool) -> None:
    url = template.format(quote(secret, safe="") if encode else secret)
    assert MARK not in mask_url(url)
    try:
        check_store_url(url, "REDIS_URL")
    except ConfigError as error:
        assert MARK not in str(error)
        assert str(error).startswith("REDIS_URL: ")
