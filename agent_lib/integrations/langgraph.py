"""LangGraph's checkpointer (``BaseCheckpointSaver``) on a `SessionManager`.

Install with the extra ``hourglass[langgraph]``, then change one line::

    checkpointer = InMemorySaver()                  # before (or RedisSaver(...))
    checkpointer = HourglassSaver(sessions)         # after
    graph = builder.compile(checkpointer=checkpointer)

A LangGraph thread is one Hourglass session, so the namespace's SessionPolicy governs
it: idle TTL, absolute lifetime, ``max_sessions``/``max_memory`` with LRU eviction,
the scheduled cleanup. Its checkpoints and pending writes are the session's named
entries (``agent_lib.sessions.entries``: LangGraph's own serde, binary, no base64 or
JSON), so their bytes count in the session's size, they share its hash tag, and they
go with it (expiry, eviction, ``delete_thread``) atomically. Every call is one round
trip on plain Redis, Valkey, Cluster or Sentinel: no RediSearch or RedisJSON.

An entry's name is ``<ns> RS <checkpoint id> US`` (the checkpoint's *group*) then
``c`` for the checkpoint or ``w<task> RS <idx>`` for a pending write, so the newest
checkpoint of a namespace, with its writes, is one range read of O(log n + its
writes), and ``delete_for_runs``/``prune`` remove whole groups, their bytes with them.
Bounds: a thread holds at most ``max_memory`` bytes (LRU eviction of whole threads
past it; without ``max_memory``, the idle TTL and the lifetime bound it), each
checkpoint or write at most ``max_payload`` (1 MiB by default; a bigger one raises
`PayloadTooLarge`). ``list(None)`` and ``delete_for_runs`` reach every thread through
the namespace's own index of live sessions (the ids with the threads' ``lg-`` prefix),
so a put writes nothing beside the thread's session; a checkpoint holds its thread id,
which its session id (a hash) does not give back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import random
import re
import struct
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

from agent_lib.errors import ConfigError, SessionNotFound
from agent_lib.sessions.entries import EntryPut, SessionEntries
from agent_lib.sessions.manager import SessionManager

__all__ = ["HourglassSaver"]

_T = TypeVar("_T")
_SID_PREFIX = "lg-"
_SID_SHAPE = re.compile(r"lg-[A-Za-z0-9_-]{43}\Z")
_NS_END, _GROUP_END = b"\x1e", b"\x1f"
_ESCAPES = {"%": "%25", "\0": "%00", "\x1e": "%1E", "\x1f": "%1F"}
_ESCAPE = str.maketrans(_ESCAPES)
_NEEDS_ESCAPE = re.compile("[%\0\x1e\x1f]")
_ESCAPED = re.compile("%(25|00|1E|1F)")


@functools.lru_cache(maxsize=4096)
def _sid(thread_id: str) -> str:
    """A valid Hourglass id for LangGraph's free-form thread ids (46 characters)."""
    digest = hashlib.sha256(thread_id.encode()).digest()
    return _SID_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _thread_id(config: RunnableConfig) -> str:
    value = (config.get("configurable") or {}).get("thread_id")
    if value is None or value == "":
        raise ConfigError("configurable.thread_id", "is required by the checkpointer")
    return str(value)


def _ns(config: RunnableConfig) -> str:
    return str(config["configurable"].get("checkpoint_ns", ""))


def _escape(text: str) -> bytes:
    """``text`` as part of an entry name: no separator, no NUL, decodable by `_unescape`."""
    return (text.translate(_ESCAPE) if _NEEDS_ESCAPE.search(text) else text).encode()


def _unescape(part: bytes) -> str:
    text = part.decode()
    if "%" not in text:
        return text
    return _ESCAPED.sub(lambda found: chr(int(found.group(1), 16)), text)


def _ns_prefix(ns: str) -> bytes:
    return _escape(ns) + _NS_END


def _group(ns: str, checkpoint_id: str) -> bytes:
    """The name prefix a checkpoint and its pending writes share."""
    return _ns_prefix(ns) + _escape(checkpoint_id) + _GROUP_END


def _pack(*parts: bytes) -> bytes:
    """``parts`` behind one header: their count (a byte), then each length."""
    return b"".join((_header(len(parts)).pack(len(parts), *map(len, parts)), *parts))


def _unpack(blob: bytes) -> list[bytes]:
    header = _header(blob[0])
    lengths = header.unpack_from(blob)[1:]
    parts, at = [], header.size
    for length in lengths:
        parts.append(blob[at : at + length])
        at += length
    return parts


@functools.cache
def _header(count: int) -> struct.Struct:
    return struct.Struct(f">B{count}I")


@dataclass
class _Stored:
    """One checkpoint as read: its fields (packed: parent, run id, checkpoint, metadata,
    thread id) and its writes by (task, idx)."""

    ns: str
    checkpoint_id: str
    fields: list[bytes] = field(default_factory=list)
    writes: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.fields[1].decode() if self.fields else ""

    @property
    def thread_id(self) -> str | None:
        return self.fields[6].decode() if len(self.fields) > 6 else None


def _parse(entries: Sequence[tuple[bytes, bytes]]) -> list[_Stored]:
    """Checkpoints (with their writes) from entries, newest id first; a group whose
    checkpoint is missing (writes only) is left out."""
    groups: dict[bytes, _Stored] = {}
    for name, value in entries:
        ns_end = name.index(_NS_END)
        group_end = name.index(_GROUP_END, ns_end)
        group = name[: group_end + 1]
        stored = groups.get(group)
        if stored is None:
            ns, cid = _unescape(name[:ns_end]), _unescape(name[ns_end + 1 : group_end])
            stored = groups[group] = _Stored(ns, cid)
        member = name[group_end + 1 :]
        if member == b"c":
            stored.fields = _unpack(value)
        else:
            task, _, idx = member[1:].rpartition(_NS_END)
            stored.writes[(_unescape(task), int(idx))] = _unpack(value)
    found = [stored for stored in groups.values() if stored.fields]
    return sorted(found, key=lambda stored: stored.checkpoint_id, reverse=True)


class HourglassSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints and pending writes as the entries of Hourglass sessions.

    Async methods run in the caller's event loop (any loop, any thread); the sync ones
    (``graph.invoke``) run them in a private loop thread, so they must not be called
    from inside a running loop (use ``ainvoke`` there).
    """

    def __init__(self, sessions: SessionManager, *, serde: SerializerProtocol | None = None):
        super().__init__(serde=serde)
        self.sessions = sessions
        self._entries = SessionEntries(sessions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    # --- entries ----------------------------------------------------------------------

    def _dump(self, value: Any) -> tuple[bytes, bytes]:
        kind, blob = self.serde.dumps_typed(value)
        return kind.encode(), blob

    def _load(self, kind: bytes, blob: bytes) -> Any:
        return self.serde.loads_typed((kind.decode(), blob))

    async def _read(
        self, thread_id: str, prefix: bytes = b"", *, latest: bool = False, renew: bool = True
    ) -> list[_Stored]:
        read = await self._entries.read(
            _sid(thread_id), prefix=prefix, latest_group=latest, renew=renew
        )
        return [] if read is None else _parse(read.entries)

    async def _threads(self) -> AsyncIterator[tuple[str, list[_Stored]]]:
        """Every live thread with a checkpoint and its checkpoints (not renewed), in the
        order of their session ids; a session of another kind is left alone."""
        for sid in await self._entries.session_ids(_SID_PREFIX):
            if not _SID_SHAPE.match(sid):
                continue
            read = await self._entries.read(sid, renew=False)
            stored = [] if read is None else _parse(read.entries)
            thread_id = next((s.thread_id for s in stored if s.thread_id is not None), None)
            if thread_id is not None and _sid(thread_id) == sid:
                yield thread_id, stored

    def _tuple(self, thread_id: str, stored: _Stored) -> CheckpointTuple:
        parent, _, cp_kind, cp_blob, md_kind, md_blob = stored.fields[:6]
        ordered = sorted(
            stored.writes.items(), key=lambda kv: writes_sort_key(kv[1][1].decode(), *kv[0])
        )
        ns, cid = stored.ns, stored.checkpoint_id
        return CheckpointTuple(
            config=_config(thread_id, ns, cid),
            checkpoint=self._load(cp_kind, cp_blob),
            metadata=self._load(md_kind, md_blob),
            parent_config=_config(thread_id, ns, parent.decode()) if parent else None,
            pending_writes=[
                (task, w[2].decode(), self._load(w[3], w[4])) for (task, _), w in ordered
            ],
        )

    # --- async API --------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, ns = _thread_id(config), _ns(config)
        cid = get_checkpoint_id(config)
        if cid is None:
            found = await self._read(thread_id, _ns_prefix(ns), latest=True)
        else:
            found = await self._read(thread_id, _group(ns, cid))
        return self._tuple(thread_id, found[0]) if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        before_id = get_checkpoint_id(before) if before else None
        cid_wanted = None if config is None else get_checkpoint_id(config)
        async for thread_id, found_in_thread in self._listed(config):
            for stored in found_in_thread:
                if cid_wanted and stored.checkpoint_id != cid_wanted:
                    continue
                if before_id and stored.checkpoint_id >= before_id:
                    continue
                found = self._tuple(thread_id, stored)
                if filter and not all(found.metadata.get(k) == v for k, v in filter.items()):
                    continue
                if limit is not None:
                    if limit <= 0:
                        return
                    limit -= 1
                yield found

    async def _listed(
        self, config: RunnableConfig | None
    ) -> AsyncIterator[tuple[str, list[_Stored]]]:
        """The checkpoints ``list`` looks through: of the config's thread (under its
        namespace and checkpoint id when given), or of every thread."""
        if config is None:
            async for pair in self._threads():
                yield pair
            return
        thread_id, prefix = _thread_id(config), b""
        ns_wanted = config["configurable"].get("checkpoint_ns")
        cid_wanted = get_checkpoint_id(config)
        if ns_wanted is not None:
            prefix = _ns_prefix(str(ns_wanted))
            if cid_wanted:
                prefix = _group(str(ns_wanted), cid_wanted)
        yield thread_id, await self._read(thread_id, prefix)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, ns = _thread_id(config), _ns(config)
        full = get_checkpoint_metadata(config, metadata)
        parent = config["configurable"].get("checkpoint_id") or ""
        run = full.get("run_id")
        value = _pack(
            str(parent).encode(),
            b"" if run is None else str(run).encode(),
            *self._dump(checkpoint),
            *self._dump(full),
            thread_id.encode(),
        )
        put = EntryPut(_group(ns, checkpoint["id"]) + b"c", value)
        await self._entries.write(_sid(thread_id), [put])
        return _config(thread_id, ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id, ns = _thread_id(config), _ns(config)
        group = _group(ns, str(config["configurable"]["checkpoint_id"]))
        puts: dict[bytes, EntryPut] = {}
        for idx, (channel, value) in enumerate(writes):
            index = WRITES_IDX_MAP.get(channel, idx)
            name = group + b"w" + _escape(task_id) + _NS_END + str(index).encode()
            packed = _pack(
                task_id.encode(), task_path.encode(), channel.encode(), *self._dump(value)
            )
            # a regular write is kept once (the first wins); special ones (idx < 0) replace
            if index < 0 or name not in puts:
                puts[name] = EntryPut(name, packed, replace=index < 0)
        if puts:
            await self._entries.write(_sid(thread_id), list(puts.values()))

    async def adelete_thread(self, thread_id: str) -> None:
        await self.sessions.delete(_sid(str(thread_id)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        wanted = {str(run) for run in run_ids}
        if not wanted:
            return
        async for thread_id, stored in self._threads():
            gone = [_group(s.ns, s.checkpoint_id) for s in stored if s.run_id in wanted]
            await self._drop(thread_id, gone)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        read = await self._entries.read(_sid(str(source_thread_id)))
        if read is None or not read.entries:
            return
        target = str(target_thread_id)
        puts = [EntryPut(name, _owned(name, value, target)) for name, value in read.entries]
        await self._entries.write(_sid(target), puts, drop=[b""])

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ConfigError("strategy", f"must be 'keep_latest' or 'delete', got {strategy!r}")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            kept: set[str] = set()
            gone = []
            for stored in await self._read(thread_id, renew=False):  # newest first
                if stored.ns in kept:
                    gone.append(_group(stored.ns, stored.checkpoint_id))
                kept.add(stored.ns)
            await self._drop(thread_id, gone)

    async def _drop(self, thread_id: str, groups: list[bytes]) -> None:
        if groups:
            with contextlib.suppress(SessionNotFound):  # gone meanwhile: nothing to drop
                await self._entries.write(_sid(thread_id), [], drop=groups, must_exist=True)

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


def _owned(name: bytes, value: bytes, thread_id: str) -> bytes:
    """An entry copied to ``thread_id``: a checkpoint names its new thread."""
    if not name.endswith(_GROUP_END + b"c"):
        return value
    return _pack(*_unpack(value)[:6], thread_id.encode())
