"""Item bytes stay in a session's accounted size through ``update``, pops never drive a
size below zero, and reads take SQLiteSession's limits (examples for issue 25's items 3
and 4 on the in-process store; `tests/integration/test_store_differential.py` runs the
same rules against a real valkey-server side by side)."""

from __future__ import annotations

from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager
from agent_lib.sessions.stores.base import Limits
from agent_lib.sessions.stores.items import item_bytes, items_part
from agent_lib.sessions.stores.memory import MemoryStore


def _manager(**limits: object) -> SessionManager:
    store = MemoryStore(limits=Limits(ttl_s=3600, **limits), sweep_interval=None)  # type: ignore[arg-type]
    return SessionManager(store)


def _store(sm: SessionManager) -> MemoryStore:
    assert isinstance(sm.store, MemoryStore)
    return sm.store


async def test_update_keeps_item_bytes_and_pop_takes_back_what_append_added() -> None:
    async with _manager() as sm:
        items = SessionItems(sm)
        created = await sm.create({"d": 1}, session_id="conv")
        alone = (await _store(sm).accounted()).sessions["conv"]
        turns = [{"t": "x" * 5000}, {"t": "y" * 5000}]
        await items.append("conv", turns)
        added = items_part(item_bytes([b'{"t":"' + b"x" * 5000 + b'"}'] * 2), 2)
        assert (await _store(sm).accounted()).sessions["conv"] == alone + added
        await sm.update("conv", {"d": 1})
        assert (await _store(sm).accounted()).sessions["conv"] == alone + added
        assert await items.pop("conv") == turns[1]
        assert await items.pop("conv") == turns[0]
        accounted = await _store(sm).accounted()
        assert accounted.sessions["conv"] == alone == accounted.total
        assert created.version == 1


async def test_updated_and_popped_conversations_leave_the_cap_honest() -> None:
    cap = 32 * 1024
    async with _manager(max_memory=cap) as sm:
        items = SessionItems(sm)
        for n in range(10):
            await items.append(f"c{n}", [{"t": "z" * 5000}], data={"n": n})
            await sm.update(f"c{n}", {"n": n})
            await items.pop(f"c{n}")
        for n in range(59):
            await sm.create({"pad": "p" * 1000}, session_id=f"s{n}")
        accounted = await _store(sm).accounted()
        assert 0 <= accounted.total <= cap
        assert accounted.total == sum(accounted.sessions.values())
        assert await sm.count() < 59 + 10


async def test_limits_follow_sqlite_session() -> None:
    async with _manager() as sm:
        items = SessionItems(sm)
        await items.append("conv", [1, 2, 3])
        for limit in (None, -1, -100, 3, 4, 2**63 - 1, 2**64):
            history = await items.read("conv", limit)
            assert history is not None and history.items == [1, 2, 3], limit
        for limit, expected in ((0, []), (1, [3]), (2, [2, 3])):
            history = await items.read("conv", limit)
            assert history is not None and history.items == expected, limit
