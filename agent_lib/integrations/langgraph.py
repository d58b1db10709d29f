"""LangGraph's checkpointer (``BaseCheckpointSaver``) on a `SessionManager`.

Install with the extra ``hourglass[langgraph]``, then change one line::

    checkpointer = InMemorySaver()                  # before (or RedisSaver(...))
    checkpointer = HourglassSaver(sessions)         # after
    graph = builder.compile(checkpointer=checkpointer)

A LangGraph thread is one Hourglass session, so the namespace's SessionPolicy governs
it: idle TTL, absolute lifetime, ``max_sessions``/``max_memory`` with LRU eviction,
the scheduled cleanup. Its checkpoints and pending writes are the session's items
(LangGraph's own serde, base64 in JSON), so their bytes count in the session's size,
they share its hash tag, and they go with it (expiry, eviction, ``delete_thread``)
atomically. Every call is one round trip on plain Redis, Valkey, Cluster or Sentinel:
no RediSearch or RedisJSON.

The items are a log: ``put``/``put_writes`` append a record, reads fold the log.
``delete_for_runs`` and ``prune(strategy="keep_latest")`` append a record that hides
what they remove; its bytes stay accounted until the thread goes (``prune(...,
strategy="delete")`` and ``delete_thread`` remove the session at once). A thread holds
at most ``max_memory`` bytes (LRU eviction of whole threads past it) and one record
at most ``max_payload`` (1 MiB by default; a bigger checkpoint raises
`PayloadTooLarge`). ``list(None)`` and ``delete_for_runs`` reach every thread through
a registry session of this namespace (``lg-threads``), which its TTL and lifetime
bound as any session: threads started before it last expired are not listed there.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agent_lib.errors import ConfigError
from agent_lib.sessions.items import SessionItems
from agent_lib.sessions.manager import SessionManager

__all__ = ["HourglassSaver"]

_T = TypeVar("_T")
_DATA = {"framework": "langgraph"}
_REGISTRY = "lg-threads"


def _sid(thread_id: str) -> str:
    """A valid Hourglass id for LangGraph's free-form thread ids (46 characters)."""
    digest = hashlib.sha256(thread_id.encode()).digest()
    return "lg-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _thread_id(config: RunnableConfig) -> str:
    value = (config.get("configurable") or {}).get("thread_id")
    if value is None or value == "":
        raise ConfigError("configurable.thread_id", "is required by the checkpointer")
    return str(value)


@dataclass
class _Thread:
    """A thread's log, folded: checkpoints by (ns, id), writes by (ns, id) then (task, idx)."""

    checkpoints: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    writes: dict[tuple[str, str], dict[tuple[str, int], dict[str, Any]]] = field(
        default_factory=dict
    )


def _fold(items: Sequence[dict[str, Any]]) -> _Thread:
    thread = _Thread()
    for record in items:
        kind = record.get("k")
        if kind == "c":
            thread.checkpoints[(record["ns"], record["id"])] = record
        elif kind == "w":
            stored = thread.writes.setdefault((record["ns"], record["c"]), {})
            key = (record["t"], int(record["i"]))
            if key[1] >= 0 and key in stored:
                continue  # a regular write is kept once; special ones (idx < 0) replace
            stored[key] = record
        elif kind == "x":
            for ns, cid in record["ids"]:
                thread.checkpoints.pop((ns, cid), None)
                thread.writes.pop((ns, cid), None)
    return thread


class HourglassSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints and pending writes as the items of Hourglass sessions.

    Async methods run in the caller's event loop (any loop, any thread); the sync ones
    (``graph.invoke``) run them in a private loop thread, so they must not be called
    from inside a running loop (use ``ainvoke`` there).
    """

    def __init__(self, sessions: SessionManager, *, serde: SerializerProtocol | None = None):
        super().__init__(serde=serde)
        self.sessions = sessions
        self._items = SessionItems(sessions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    # --- records ----------------------------------------------------------------------

    def _dump(self, value: Any) -> list[str]:
        kind, blob = self.serde.dumps_typed(value)
        return [kind, base64.b64encode(blob).decode()]

    def _load(self, typed: list[str]) -> Any:
        return self.serde.loads_typed((typed[0], base64.b64decode(typed[1])))

    async def _thread(self, thread_id: str) -> _Thread | None:
        history = await self._items.read(_sid(thread_id))
        return None if history is None else _fold(history.items)

    def _tuple(self, thread_id: str, thread: _Thread, ns: str, cid: str) -> CheckpointTuple:
        record = thread.checkpoints[(ns, cid)]
        stored = thread.writes.get((ns, cid), {})
        ordered = sorted(stored.items(), key=lambda kv: writes_sort_key(kv[1]["path"], *kv[0]))
        parent = record.get("p")
        return CheckpointTuple(
            config=_config(thread_id, ns, cid),
            checkpoint=self._load(record["cp"]),
            metadata=self._load(record["md"]),
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=[(w["t"], w["ch"], self._load(w["v"])) for _, w in ordered],
        )

    # --- async API --------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id = _thread_id(config)
        ns = str(config["configurable"].get("checkpoint_ns", ""))
        thread = await self._thread(thread_id)
        if thread is None:
            return None
        cid = get_checkpoint_id(config)
        if cid is None:
            ids = [c for n, c in thread.checkpoints if n == ns]
            if not ids:
                return None
            cid = max(ids)
        if (ns, cid) not in thread.checkpoints:
            return None
        return self._tuple(thread_id, thread, ns, cid)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if config is not None:
            thread_ids = [_thread_id(config)]
            ns_wanted = config["configurable"].get("checkpoint_ns")
            cid_wanted = get_checkpoint_id(config)
        else:
            thread_ids, ns_wanted, cid_wanted = await self._registered(), None, None
        before_id = get_checkpoint_id(before) if before else None
        for thread_id in thread_ids:
            thread = await self._thread(thread_id)
            if thread is None:
                continue
            keys = sorted(thread.checkpoints, key=lambda key: key[1], reverse=True)
            for ns, cid in keys:
                if ns_wanted is not None and ns != ns_wanted:
                    continue
                if cid_wanted and cid != cid_wanted:
                    continue
                if before_id and cid >= before_id:
                    continue
                found = self._tuple(thread_id, thread, ns, cid)
                if filter and not all(found.metadata.get(k) == v for k, v in filter.items()):
                    continue
                if limit is not None:
                    if limit <= 0:
                        return
                    limit -= 1
                yield found

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id = _thread_id(config)
        ns = str(config["configurable"].get("checkpoint_ns", ""))
        full = get_checkpoint_metadata(config, metadata)
        record = {
            "k": "c",
            "ns": ns,
            "id": checkpoint["id"],
            "p": config["configurable"].get("checkpoint_id"),
            "cp": self._dump(checkpoint),
            "md": self._dump(full),
            "run": full.get("run_id"),
        }
        length = await self._items.append(_sid(thread_id), [record], data=_DATA)
        if length == 1:  # a new thread (or one that had gone): list(None) must find it
            await self._items.append(_REGISTRY, [thread_id], data=_DATA)
        return _config(thread_id, ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id = _thread_id(config)
        ns = str(config["configurable"].get("checkpoint_ns", ""))
        cid = str(config["configurable"]["checkpoint_id"])
        records = [
            {
                "k": "w",
                "ns": ns,
                "c": cid,
                "t": task_id,
                "path": task_path,
                "i": WRITES_IDX_MAP.get(channel, idx),
                "ch": channel,
                "v": self._dump(value),
            }
            for idx, (channel, value) in enumerate(writes)
        ]
        if records:
            await self._items.append(_sid(thread_id), records, data=_DATA)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._items.clear(_sid(str(thread_id)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        wanted = {str(run) for run in run_ids}
        if not wanted:
            return
        for thread_id in await self._registered():
            thread = await self._thread(thread_id)
            if thread is None:
                continue
            gone = [list(key) for key, c in thread.checkpoints.items() if c.get("run") in wanted]
            await self._hide(thread_id, gone)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        history = await self._items.read(_sid(str(source_thread_id)))
        if history is None or not history.items:
            return
        target = str(target_thread_id)
        await self._items.clear(_sid(target))
        await self._items.append(_sid(target), history.items, data=_DATA)
        await self._items.append(_REGISTRY, [target], data=_DATA)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ConfigError("strategy", f"must be 'keep_latest' or 'delete', got {strategy!r}")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            thread = await self._thread(thread_id)
            if thread is None:
                continue
            latest: dict[str, str] = {}
            for ns, cid in thread.checkpoints:
                latest[ns] = max(latest.get(ns, cid), cid)
            await self._hide(
                thread_id, [[ns, c] for ns, c in thread.checkpoints if latest[ns] != c]
            )

    async def _hide(self, thread_id: str, keys: list[list[str]]) -> None:
        if keys:
            await self._items.append(
                _sid(thread_id), [{"k": "x", "ids": keys}], data=_DATA, must_exist=True
            )

    async def _registered(self) -> list[str]:
        history = await self._items.read(_REGISTRY, renew=False)
        return list(dict.fromkeys(history.items)) if history else []

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<counter>.<random>`` as LangGraph's own savers make them (sortable strings)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"  # noqa: S311 - not a secret

    # --- sync API: the async methods on a private loop thread --------------------------

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "HourglassSaver's sync methods block: inside an event loop use the async "
                "ones (graph.ainvoke, aget_tuple, ...)"
            )
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="hourglass-langgraph", daemon=True
                ).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            found = self.alist(config, filter=filter, before=before, limit=limit)
            return [item async for item in found]

        yield from self._run(collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._run(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._run(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._run(self.aprune(thread_ids, strategy=strategy))


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }
