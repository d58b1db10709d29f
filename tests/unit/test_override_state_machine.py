"""`TimeoutManager.override` under any interleaving of blocks: nested, out of order,
concurrent in threads and in asyncio tasks.

A model keeps the blocks still open, in the order they were opened; after every step
the manager's snapshot must equal builtin < env < constructor overrides < open blocks
(latest wins), with ``origins`` naming the layer of every value. Threads and tasks
open and close their own blocks inside one step while an observer checks every
snapshot it sees; at the end, with every block closed, no override is left.

On the code before issue 26 (each undo restored a copy of the whole override dict,
and a value equal to the one below did not change ``origins``) this fails within the
settings below; hypothesis shrinks to, among others: ``open(request=1); open(request=1);
close both in order`` -> an override left for good; ``open(request=120)`` (the
built-in value) -> ``origins["request"] == "builtin"``; and two tasks whose blocks
``request=1`` / ``request=120`` overlap -> the second one's value gone while it is open.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from agent_lib import TimeoutConfig, TimeoutManager
from agent_lib.timeouts.manager import _Undo

NO_EXPLAIN = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)
"""Hypothesis' explain phase traces every line, far too slow on Python 3.11 to report
a failure within the test timeout."""

NAMES = ("request", "connect", "llmCall", "toolCall")
ENV = {"HOURGLASS_TIMEOUT_TOOL_CALL": "45s"}
PLAIN = TimeoutManager(config_dir="/nonexistent", environ={}).current
"""The built-in layer alone: what a value falls back to."""

values = st.dictionaries(
    st.sampled_from(NAMES),
    st.one_of(st.sampled_from([1.0, 2.0, 3.0]), st.sampled_from(NAMES).map(PLAIN.__getitem__)),
    min_size=1,
    max_size=3,
)


def expected(blocks: list[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, str]]:
    timeouts = dict(PLAIN.timeouts)
    origins = dict.fromkeys(timeouts, "builtin")
    for layer, layer_values in (
        ("env", {"toolCall": 45.0}),
        *(("override", block) for block in blocks),
    ):
        timeouts.update(layer_values)
        origins.update(dict.fromkeys(layer_values, layer))
    return timeouts, origins


def assert_truthful(snapshot: TimeoutConfig) -> None:
    """Whatever blocks are open, each value is the one its origin's layer gives."""
    assert snapshot.origins.keys() == snapshot.timeouts.keys()
    for name, origin in snapshot.origins.items():
        if origin == "builtin":
            assert snapshot.timeouts[name] == PLAIN.timeouts[name]
        elif origin == "env":
            assert (name, snapshot.timeouts[name]) == ("toolCall", 45.0)
        else:
            assert origin == "override"


class OverrideBlocks(RuleBasedStateMachine):
    undos = Bundle("undos")

    def __init__(self) -> None:
        super().__init__()
        self.tm = TimeoutManager(config_dir="/nonexistent", environ=ENV)
        self.open: dict[int, tuple[_Undo, Mapping[str, float]]] = {}
        """The blocks not closed yet, in the order they were opened."""

    @rule(target=undos, block=values)
    def open_block(self, block: dict[str, float]) -> _Undo:
        undo = self.tm.override(block)
        self.open[id(undo)] = (undo, block)
        return undo

    @rule(undo=consumes(undos), twice=st.booleans())
    def close_block(self, undo: _Undo, twice: bool) -> None:
        with undo:  # leaving the block as a context, as code does
            pass
        if twice:
            undo.undo()
        del self.open[id(undo)]

    @rule(blocks=st.lists(values, min_size=2, max_size=4), data=st.data())
    def blocks_in_threads(self, blocks: list[dict[str, float]], data: st.DataObject) -> None:
        """Each block opened and closed by its own thread, in an order hypothesis picks
        (opened in list order, closed in ``order``), while an observer reads snapshots."""
        order = data.draw(st.permutations(range(len(blocks))), label="close order")
        threads = [_BlockThread(self.tm, block) for block in blocks]
        with _Observer(self.tm):
            for thread in threads:
                thread.start()
                thread.step()
                self.check_own(thread.block)
            for index in order:
                threads[index].step()
                threads[index].join(10)
                still_open = [t.block for t in threads if t.state == "open"]
                timeouts, origins = expected([b for _u, b in self.open.values()] + still_open)
                assert dict(self.tm.current.origins) == origins
                assert dict(self.tm.current.timeouts) == timeouts

    @rule(blocks=st.lists(st.tuples(values, st.integers(0, 3)), min_size=2, max_size=4))
    def blocks_in_tasks(self, blocks: list[tuple[dict[str, float], int]]) -> None:
        """Concurrent tasks, each in its own ``with`` block, yielding a few times inside."""

        async def run(block: dict[str, float], yields: int) -> None:
            with self.tm.override(block):
                for _ in range(yields):
                    self.check_own(block)
                    assert_truthful(self.tm.current)
                    await asyncio.sleep(0)

        async def all_tasks() -> None:
            await asyncio.gather(*(run(block, yields) for block, yields in blocks))

        asyncio.run(all_tasks())

    def check_own(self, block: Mapping[str, float]) -> None:
        """Inside a block, its names are overrides (another block may hold the value)."""
        snapshot = self.tm.current
        for name in block:
            assert snapshot.origins[name] == "override"

    @invariant()
    def snapshot_matches_the_model(self) -> None:
        timeouts, origins = expected([block for _undo, block in self.open.values()])
        assert dict(self.tm.current.timeouts) == timeouts
        assert dict(self.tm.current.origins) == origins
        assert all(self.tm.get(name) == value for name, value in timeouts.items())

    def teardown(self) -> None:
        """Close what is still open, in the order opened: no override is left."""
        for undo, _block in list(self.open.values()):
            undo.undo()
        assert "override" not in self.tm.current.origins.values()
        assert dict(self.tm.current.timeouts) == expected([])[0]


class _BlockThread(threading.Thread):
    """A thread that opens ``block`` on its first `step` and closes it on the second."""

    def __init__(self, tm: TimeoutManager, block: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.tm, self.block = tm, block
        self.state = "new"
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)

    def run(self) -> None:
        self._go.acquire()
        with self.tm.override(self.block):
            self.state = "open"
            self._done.release()
            self._go.acquire()
        self.state = "closed"
        self._done.release()

    def step(self) -> None:
        self._go.release()
        assert self._done.acquire(timeout=10), "the block thread did not answer"


class _Observer:
    """Checks every snapshot it sees from another thread while concurrent blocks run."""

    def __init__(self, tm: TimeoutManager) -> None:
        self.tm = tm
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                assert_truthful(self.tm.current)
            except BaseException as error:
                self.errors.append(error)
                return

    def __enter__(self) -> _Observer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)
        assert not self.errors, self.errors


OverrideBlocks.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=15,
    deadline=None,
    phases=NO_EXPLAIN,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOverrideBlocks = OverrideBlocks.TestCase
