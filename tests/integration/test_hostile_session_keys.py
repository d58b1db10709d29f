"""Against a real Valkey: hostile ids never reach the server, valid ids stay in their tag.

After a burst of valid and smuggling ids, every key on the server belongs to the
namespace's hash tag and has one of the four shapes of the layout.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_lib import SessionManager
from agent_lib.errors import InvalidSessionId
from agent_lib.sessions._ids import SESSION_ID_PATTERN
from tests.fixtures.redis_server import RedisProcess

NAMESPACE = "hostile-keys"
KEY_SHAPE = re.compile(
    r"^hourglass:\{hourglass:hostile-keys\}:(s:"
    + SESSION_ID_PATTERN.strip("^$")
    + r"|lru|born|sizes)$"
)


@pytest.mark.timeout(60)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ids=st.lists(st.text(max_size=40) | st.from_regex(SESSION_ID_PATTERN, fullmatch=True)))
async def test_only_namespaced_keys_reach_the_server(
    redis_server: RedisProcess, ids: list[str]
) -> None:
    async with SessionManager.from_url(redis_server.url, namespace=NAMESPACE) as sm:
        for session_id in ids:
            if re.fullmatch(SESSION_ID_PATTERN, session_id):
                await sm.delete(session_id)
                await sm.create({"id": session_id}, session_id=session_id)
                continue
            with pytest.raises(InvalidSessionId):
                await sm.create({"id": session_id}, session_id=session_id)
            with pytest.raises(InvalidSessionId):
                await sm.get(session_id)
    with redis_server.client() as client:
        keys = [k.decode() for k in client.scan_iter(count=1000)]
    strays = [k for k in keys if not KEY_SHAPE.fullmatch(k)]
    assert strays == []
    valid = {i for i in ids if re.fullmatch(SESSION_ID_PATTERN, i)}
    assert {f"hourglass:{{hourglass:{NAMESPACE}}}:s:{i}" for i in valid} <= set(keys)
