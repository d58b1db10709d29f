"""HourglassSaver, LangGraph's checkpointer on Hourglass sessions (real valkey-server):
LangGraph's own conformance suite (``langgraph-checkpoint-conformance`` from PyPI, all
8 capabilities), a real graph run with ``invoke`` and ``ainvoke`` from two event loops
in turn and read back by a second process, and the SessionPolicy applied to threads.
"""

from __future__ import annotations

import asyncio
import json
import operator
import subprocess
import sys
from collections.abc import AsyncGenerator
from typing import Annotated, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.graph import END, START, StateGraph

from agent_lib.integrations.langgraph import HourglassSaver, _sid
from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager
from tests.fixtures.redis_server import RedisProcess, fresh_namespace


async def test_conformance_all_eight_capabilities(redis_server: RedisProcess) -> None:
    managers: list[SessionManager] = []

    @checkpointer_test(name="HourglassSaver")
    async def hourglass() -> AsyncGenerator[BaseCheckpointSaver[str], None]:
        sm = SessionManager.from_url(redis_server.url, namespace=fresh_namespace())
        managers.append(sm)
        yield HourglassSaver(sm)
        await sm.close()

    report = await validate(hourglass)
    report.print_report()
    assert {cap.value for cap in ALL_CAPABILITIES} == set(report.results)
    for name, result in report.results.items():
        assert result.detected and result.passed is True, (name, result.failures)
        assert result.tests_failed == 0 and result.tests_passed > 0, name
    assert report.conformance_level() == "FULL"
    assert len(managers) == 8


class _Chat(TypedDict):
    turns: Annotated[list[str], operator.add]


def _graph(saver: HourglassSaver):  # type: ignore[no-untyped-def]
    builder = StateGraph(_Chat)
    builder.add_node("reply", lambda state: {"turns": [f"reply {len(state['turns'])}"]})
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


_READ_BACK = """
import asyncio, json, sys
from agent_lib.integrations.langgraph import HourglassSaver, _sid
from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager
sm = SessionManager.from_url(sys.argv[1], namespace=sys.argv[2])
saver = HourglassSaver(sm)
found = saver.get_tuple({"configurable": {"thread_id": sys.argv[3]}})
print(json.dumps(found.checkpoint["channel_values"]["turns"]))
print(len(list(saver.list({"configurable": {"thread_id": sys.argv[3]}}))))
"""


def test_a_real_graph_from_two_loops_read_back_by_another_process(
    redis_server: RedisProcess,
) -> None:
    namespace = fresh_namespace()
    sm = SessionManager.from_url(redis_server.url, namespace=namespace)
    graph = _graph(HourglassSaver(sm))
    config = {"configurable": {"thread_id": "conversation 1"}}
    graph.invoke({"turns": ["hi"]}, config)  # sync: the saver's own loop thread
    asyncio.run(graph.ainvoke({"turns": ["again"]}, config))  # a first loop
    asyncio.run(graph.ainvoke({"turns": ["and again"]}, config))  # a second loop
    expected = ["hi", "reply 1", "again", "reply 3", "and again", "reply 5"]
    assert graph.get_state(config).values["turns"] == expected
    out = subprocess.run(
        [sys.executable, "-c", _READ_BACK, redis_server.url, namespace, "conversation 1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert json.loads(out[0]) == expected
    assert int(out[1]) == 9  # three runs of input, reply and end-of-run checkpoints
    asyncio.run(sm.close())


async def test_a_thread_expires_with_its_checkpoints(redis_server: RedisProcess) -> None:
    async with SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), ttl=0.5
    ) as sm:
        saver = HourglassSaver(sm)
        graph = _graph(saver)
        config = {"configurable": {"thread_id": "short"}}
        await graph.ainvoke({"turns": ["hi"]}, config)
        assert await saver.aget_tuple(config) is not None
        await asyncio.sleep(0.8)
        assert await saver.aget_tuple(config) is None
        assert [t async for t in saver.alist(config)] == []
        await sm.cleanup()
        assert await sm.count() == 0, "the thread's checkpoints went with its session"


async def test_checkpoint_bytes_count_toward_max_memory(redis_server: RedisProcess) -> None:
    """Past max_memory the least recently used thread is evicted, checkpoints and all."""
    async with SessionManager.from_url(
        redis_server.url, namespace=fresh_namespace(), max_memory="120Ki"
    ) as sm:
        saver = HourglassSaver(sm)
        graph = _graph(saver)
        big = "x" * 20_000
        for n in range(6):
            await graph.ainvoke({"turns": [big]}, {"configurable": {"thread_id": f"t{n}"}})
        first = await saver.aget_tuple({"configurable": {"thread_id": "t0"}})
        last = await saver.aget_tuple({"configurable": {"thread_id": "t5"}})
        assert first is None, "the oldest thread should have been evicted"
        assert last is not None and last.checkpoint["channel_values"]["turns"][0] == big


def test_sync_methods_refuse_a_running_loop(redis_server: RedisProcess) -> None:
    sm = SessionManager.from_url(redis_server.url, namespace=fresh_namespace())
    saver = HourglassSaver(sm)

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="async"):
            saver.get_tuple({"configurable": {"thread_id": "x"}})

    asyncio.run(inside())


def _checkpoint(n: int) -> Checkpoint:
    """A checkpoint of fixed id and time, so two threads can hold byte-identical ones."""
    checkpoint = create_checkpoint(empty_checkpoint(), None, n)
    checkpoint["id"] = f"1ef00000-0000-6000-8000-{n:012d}"
    checkpoint["ts"] = "2026-01-01T00:00:00+00:00"
    checkpoint["channel_values"] = {"notes": f"step {n} " + "x" * 2000}
    return checkpoint


async def _put(saver: HourglassSaver, thread: str, n: int, run: str, ns: str = "") -> None:
    config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
    metadata: CheckpointMetadata = {"source": "loop", "step": n, "run_id": run}  # type: ignore[typeddict-unknown-key]
    stored = await saver.aput(config, _checkpoint(n), metadata, {})
    await saver.aput_writes(stored, [("notes", f"write {n}")], task_id=f"task-{n}")


async def test_removed_checkpoints_free_their_bytes(redis_server: RedisProcess) -> None:
    """``delete_for_runs`` and ``prune`` leave a thread exactly the size of one that only
    ever held what remains (the log of the first version kept every removed byte); the
    threads compared have ids of one length, as each checkpoint holds its thread id."""
    async with SessionManager.from_url(redis_server.url, namespace=fresh_namespace()) as sm:
        saver = HourglassSaver(sm)
        for n, run in ((1, "run-1"), (2, "run-2"), (3, "run-2")):
            await _put(saver, "pruned", n, f"p-{n}")
            await _put(saver, "by-run", n, run)
        await _put(saver, "by-run", 4, "run-1", ns="child")
        await _put(saver, "run1-o", 1, "run-1")
        await _put(saver, "run1-o", 4, "run-1", ns="child")
        await _put(saver, "latest", 3, "p-3")
        await saver.adelete_for_runs(["run-2"])
        await saver.aprune(["pruned"])
        sizes = (await sm.store.accounted()).sessions
        assert sizes[_sid("by-run")] == sizes[_sid("run1-o")]
        assert sizes[_sid("pruned")] == sizes[_sid("latest")]
        left = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(None)]
        assert sorted(left) == sorted(_checkpoint(n)["id"] for n in (1, 4, 1, 4, 3, 3)), (
            "each thread keeps what was not removed, and list(None) finds every thread"
        )


async def test_a_put_writes_only_its_thread_and_list_finds_every_thread(
    redis_server: RedisProcess,
) -> None:
    """A put writes nothing beside its thread's session (the first version also wrote
    the registry record ``lg-threads`` with each new thread); ``list(None)`` and
    ``delete_for_runs`` find threads through the session index, a copied thread under
    its own id, and leave other sessions alone, even one with a thread-like id."""
    async with SessionManager.from_url(redis_server.url, namespace=fresh_namespace()) as sm:
        saver = HourglassSaver(sm)
        await _put(saver, "first", 1, "run-1")
        await _put(saver, "second", 2, "run-2")
        await saver.acopy_thread("first", "copy")
        await sm.create({"not": "a thread"}, session_id=_sid("elsewhere"))
        await sm.create(session_id="lg-other")
        found = await SessionItems(sm).read_records(["lg-threads"], owners=True)
        assert found == {}, "no registry record"
        assert (await sm.store.accounted()).records == {}
        listed = [t.config["configurable"]["thread_id"] async for t in saver.alist(None)]
        assert sorted(listed) == ["copy", "first", "second"]
        await saver.adelete_for_runs(["run-1"])
        listed = [t.config["configurable"]["thread_id"] async for t in saver.alist(None)]
        assert listed == ["second"]
