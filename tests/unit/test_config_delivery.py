"""Config delivery: every change reaches the agent, reverts included, from either source.

The examples replay what a platform team does (a timeout set, changed and rolled back)
through the mounted file alone, through the API alone and through both. The state
machine below does what a cluster does, in any order, and checks the invariants the
arbiter (`agent_lib.timeouts._arbiter`) promises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from agent_lib import TimeoutManager, atomic_swap
from agent_lib.config import CONFIG_KEY, REVISION_KEY, next_revision, parse_revision
from agent_lib.config.revision import revision_to_write
from agent_lib.errors import ConfigError
from agent_lib.timeouts._arbiter import Stamp, supersedes
from agent_lib.timeouts._pod_report import Applied
from agent_lib.timeouts._sources import ConfigVersion, content_hash
from tests.fixtures.timeouts import wait_until

POLLING = {"interval": 1, "maxInterval": 5, "multiplier": 2, "jitter": 0, "maxDuration": 30}
INVALID = "profiles: ["


def bundle(llm_call: float) -> str:
    return yaml.safe_dump(
        {
            "namespace": "agents-prod",
            "defaultProfile": "prod",
            "profiles": {"prod": {"timeouts": {"llmCall": llm_call}, "polling": POLLING}},
        }
    )


def replace_file(folder: Path, content: str) -> None:
    """An atomic rename of hourglass.yaml, as an editor or a deploy script does it."""
    tmp = folder / ".hourglass.yaml.tmp"
    tmp.write_text(content)
    os.replace(tmp, folder / CONFIG_KEY)


# --- the revision itself ------------------------------------------------------------------


def test_revisions_grow_keep_for_unchanged_content_and_survive_a_lost_configmap() -> None:
    first = revision_to_write(None, "a", now=1000.0)
    assert first == 1_000_000
    same = {CONFIG_KEY: "a", REVISION_KEY: str(first)}
    assert revision_to_write(same, "a", now=2000.0) == first, "a resync makes no new version"
    second = revision_to_write(same, "b", now=1000.0)  # the clock stood still
    assert second == first + 1
    revert = revision_to_write({CONFIG_KEY: "b", REVISION_KEY: str(second)}, "a", now=999.0)
    assert revert == second + 1, "a revert is a new version, even with a clock behind"
    # The ConfigMap deleted and written again from nothing: the clock keeps it above.
    assert revision_to_write(None, "a", now=1001.0) > second
    assert next_revision(None, 0) == 1


@pytest.mark.parametrize("text", ["-1", "1e5", "12 3", "9" * 20, "١٢"])
def test_a_malformed_revision_names_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_revision(text)
    assert raised.value.field == REVISION_KEY
    assert parse_revision(" 42\n") == 42 and parse_revision("") is None


def test_render_prints_no_revision_and_writers_add_one() -> None:
    from agent_lib.config import render_config
    from agent_lib.config.timeout_profiles import TimeoutProfile

    profile = TimeoutProfile.model_validate(
        {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "TimeoutProfile",
            "metadata": {"name": "prod", "namespace": "agents-prod"},
            "spec": {"default": True, "timeouts": {"llmCall": "30s"}},
        }
    )
    rendered = render_config("agents-prod", [profile])
    assert REVISION_KEY not in rendered.configmap["data"]
    stored = rendered.configmap_at(7)
    assert stored["data"] == {CONFIG_KEY: rendered.content, REVISION_KEY: "7"}
    assert stored["metadata"]["annotations"] == rendered.configmap["metadata"]["annotations"]


# --- the one rule -------------------------------------------------------------------------


def stamp(origin: str, revision: int | None, digest: str) -> Stamp:
    return Stamp(origin, revision, digest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("candidate", "current", "api_in_use", "applies"),
    [
        (stamp("file", 3, "a"), stamp("file", 2, "b"), False, True),
        (stamp("file", 1, "a"), stamp("file", 2, "b"), False, True),  # the file alone
        (stamp("file", 1, "a"), stamp("api", 2, "b"), True, False),  # kubelet behind
        (stamp("file", 3, "a"), stamp("api", 2, "b"), True, True),  # API cut off
        (stamp("api", 3, "a"), stamp("file", 2, "b"), True, True),  # restart, stale file
        (stamp("api", 2, "c"), stamp("file", 2, "b"), True, True),  # edited by hand
        (stamp("file", 2, "c"), stamp("api", 2, "b"), True, False),
        (stamp("file", 2, "b"), stamp("api", 2, "b"), True, False),  # nothing new
        (stamp("api", 1, "a"), stamp("builtin", None, "x"), True, True),
        (stamp("api", None, "a"), stamp("api", 5, "b"), True, True),  # an older operator
        (stamp("file", None, "a"), stamp("api", None, "b"), True, True),  # never replaced
    ],
)
def test_supersedes(candidate: Stamp, current: Stamp, api_in_use: bool, applies: bool) -> None:
    assert supersedes(candidate, current, api_in_use=api_in_use) is applies


def test_without_revisions_replaced_content_from_the_file_waits_for_the_api() -> None:
    """Bundles from operators older than revisions keep the behaviour they had."""
    old = stamp("file", None, "a")
    assert not supersedes(old, stamp("api", None, "b"), api_in_use=True, replaced=frozenset("a"))


# --- reverts through the file, as users do them --------------------------------------------


@pytest.mark.parametrize("layout", ["rename", "kubelet", "kubelet+revision"])
def test_a_revert_through_the_file_applies(tmp_path: Path, layout: str) -> None:
    """The issue's repro: 10, 20, 10 again (and 30, 10 again). On the code before revisions
    the manager stayed on 20 and ignored the second 10 as well, with no log and no error."""
    folder = tmp_path / "hourglass"
    folder.mkdir()
    revision = 0

    def write(value: int) -> None:
        nonlocal revision
        revision += 1
        if layout == "rename":
            replace_file(folder, bundle(value))
        elif layout == "kubelet":
            atomic_swap(folder, {CONFIG_KEY: bundle(value)})
        else:
            atomic_swap(folder, {CONFIG_KEY: bundle(value), REVISION_KEY: str(revision)})

    write(10)
    with TimeoutManager(folder, environ={}) as tm:
        for value in (20, 10, 30, 10):
            write(value)
            wait_until(lambda value=value: tm.get("llmCall") == value, timeout=10)
        assert tm.last_error is None
        assert tm.current.revision == (revision if layout == "kubelet+revision" else None)


def test_a_restarted_agent_never_rolls_back_to_a_stale_file(tmp_path: Path) -> None:
    """Before revisions a restarted agent forgot what it had replaced: the API gave it 20,
    then kubelet's late copy of 10 rolled it back."""
    folder = tmp_path / "hourglass"
    folder.mkdir()
    tm = TimeoutManager(folder, environ={})
    tm._apply_api(ConfigVersion("api", bundle(20).encode(), 2, "api:ns/cm@9", "9"))
    atomic_swap(folder, {CONFIG_KEY: bundle(10), REVISION_KEY: "1"})
    assert tm.reload() is False and tm.get("llmCall") == 20
    atomic_swap(folder, {CONFIG_KEY: bundle(10), REVISION_KEY: "3"})  # the revert, by file
    assert tm.reload() is True and tm.get("llmCall") == 10 and tm.current.revision == 3


def test_hourglass_local_publishes_a_growing_revision(tmp_path: Path) -> None:
    from hourglass_cli._local_runtime import _published_data

    folder = tmp_path / "config"
    atomic_swap(folder, {CONFIG_KEY: bundle(10), REVISION_KEY: "5"})
    assert _published_data(folder) == {CONFIG_KEY: bundle(10), REVISION_KEY: "5"}


# --- the cluster, modelled ------------------------------------------------------------------


@dataclass
class _Written:
    content: str
    revision: int
    valid: bool

    @property
    def digest(self) -> str:
        return content_hash(self.content.encode())


class _PodAnnotations:
    """Stands in for the agent's API link (`ClusterLink`): the pod's annotations as the
    agent patches them, and whether an API watch exists. The API server itself cannot run
    inside a hypothesis example; the real watch and patch run in the control-plane tests."""

    def __init__(self, api: bool) -> None:
        self.watch = object() if api else None
        self.annotations: Applied | None = None
        self.state = "watching" if api else "off"

    def report(self, state: Applied) -> None:
        self.annotations = state

    def stop(self) -> None:
        pass


@dataclass
class _Agent:
    manager: TimeoutManager
    pod: _PodAnnotations
    api_seen: int = -1
    """Index of the last written version the API watch delivered to this agent."""
    high_water: int | None = None
    applied_digests: list[str] = field(default_factory=list)


class ConfigDelivery(RuleBasedStateMachine):
    """Operator writes (reverts and invalid bundles included), kubelet lagging or skipping,
    API outages, reconnects and 410s, token rotation and agent restarts, in any order.

    Invariants: an agent never applies a lower revision after a higher one; an invalid
    bundle never replaces a good one; the pod's applied-hash is what the agent runs; and
    once things settle, every agent runs the highest revision written when it is valid
    (else a valid one, with ``last_error`` set).

    With the rule from before revisions put back in place of `supersedes` (hash-based
    freshness, as at commit 326c0a5) this fails within 60 examples, on two bugs: the revert
    (write 10, 20, 10 and sync: the file-only agent stays on 20) and a rollback after a
    restart, shrunk to: write(10), write(20), agent_restarts('with-api'), kubelet_syncs(to
    the first) -> the restarted agent, on 20 from the API, rolls back to the stale file's 10.
    """

    def __init__(self) -> None:
        super().__init__()
        self.written: list[_Written] = []
        self.file_index = -1
        self.api_up = True
        self.clock = 1000.0
        self.agents: dict[str, _Agent] = {}

    @initialize(tmp=st.just(None))
    def setup(self, tmp: None) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="hourglass-delivery-"))
        for name, api in (("with-api", True), ("file-only", False)):
            self.agents[name] = self._start(api)

    def teardown(self) -> None:
        import shutil

        if hasattr(self, "folder"):
            shutil.rmtree(self.folder, ignore_errors=True)

    def _start(self, api: bool) -> _Agent:
        manager = TimeoutManager(self.folder, environ={})
        pod = _PodAnnotations(api)
        manager._link = pod  # type: ignore[assignment]
        manager._report()
        agent = _Agent(manager, pod)
        if api and self.api_up:
            self._relist(agent)
        self._observe(agent)
        return agent

    # --- what the cluster does ---------------------------------------------------------

    @rule(value=st.sampled_from([10, 20, 30]), invalid=st.booleans())
    def operator_writes(self, value: int, invalid: bool) -> None:
        previous = self.written[-1] if self.written else None
        content = INVALID if invalid and self.written else bundle(value)
        data = None if previous is None else {CONFIG_KEY: previous.content}
        if previous is not None:
            data[REVISION_KEY] = str(previous.revision)  # type: ignore[index]
        self.clock += 0.0005  # the clock moves slower than the writes: both paths of the HLC
        revision = revision_to_write(data, content, self.clock)
        if previous is not None and revision == previous.revision:
            return
        self.written.append(_Written(content, revision, content != INVALID))

    @precondition(lambda self: self.file_index < len(self.written) - 1)
    @rule(data=st.data())
    def kubelet_syncs(self, data: st.DataObject) -> None:
        """kubelet lags, then jumps to some later version (it may skip several)."""
        self.file_index = data.draw(st.integers(self.file_index + 1, len(self.written) - 1))
        version = self.written[self.file_index]
        atomic_swap(self.folder, {CONFIG_KEY: version.content, REVISION_KEY: str(version.revision)})
        for agent in self.agents.values():
            agent.manager.reload()
            self._observe(agent)

    @precondition(lambda self: self.api_up)
    @rule()
    def api_delivers_the_next_event(self) -> None:
        for agent in self._api_agents():
            if agent.api_seen < len(self.written) - 1:
                agent.api_seen += 1
                self._deliver(agent, agent.api_seen)

    @rule()
    def api_outage(self) -> None:
        self.api_up = False

    @rule(why=st.sampled_from(["reconnect", "410 Gone", "token rotated"]))
    def api_comes_back(self, why: str) -> None:
        """Every way back reads the ConfigMap again: only its latest version is seen."""
        self.api_up = True
        for agent in self._api_agents():
            self._relist(agent)

    @rule(name=st.sampled_from(["with-api", "file-only"]))
    def agent_restarts(self, name: str) -> None:
        old = self.agents[name]
        self.agents[name] = self._start(old.pod.watch is not None)

    @rule()
    def settle(self) -> None:
        self.api_comes_back("reconnect")
        for agent in self._api_agents():
            while agent.api_seen < len(self.written) - 1:
                agent.api_seen += 1
                self._deliver(agent, agent.api_seen)
        if self.written and self.file_index < len(self.written) - 1:
            self.kubelet_syncs_to_latest()
        if not self.written:
            return
        latest = self.written[-1]
        for name, agent in self.agents.items():
            manager = agent.manager
            if latest.valid:
                assert manager.current.hash == latest.digest, name
                assert manager.current.revision == latest.revision, name
            else:
                assert manager.last_error is not None, name

    def kubelet_syncs_to_latest(self) -> None:
        self.file_index = len(self.written) - 1
        version = self.written[-1]
        atomic_swap(self.folder, {CONFIG_KEY: version.content, REVISION_KEY: str(version.revision)})
        for agent in self.agents.values():
            agent.manager.reload()
            self._observe(agent)

    # --- helpers -------------------------------------------------------------------------

    def _api_agents(self) -> list[_Agent]:
        return [a for a in self.agents.values() if a.pod.watch is not None]

    def _relist(self, agent: _Agent) -> None:
        if self.written:
            agent.api_seen = len(self.written) - 1
            self._deliver(agent, agent.api_seen)

    def _deliver(self, agent: _Agent, index: int) -> None:
        version = self.written[index]
        rv = str(100 + index)
        agent.manager._apply_api(
            ConfigVersion("api", version.content.encode(), version.revision, f"api:ns/cm@{rv}", rv)
        )
        self._observe(agent)

    def _observe(self, agent: _Agent) -> None:
        """Checked after every step of every agent, not only between rules."""
        current = agent.manager.current
        if current.revision is not None:
            assert agent.high_water is None or current.revision >= agent.high_water, (
                f"rolled back from revision {agent.high_water} to {current.revision}"
            )
            agent.high_water = current.revision
        valid = {w.digest for w in self.written if w.valid}
        assert current.source == "builtin" or current.hash in valid, "an invalid bundle runs"
        assert agent.pod.annotations is not None
        assert agent.pod.annotations.hash == current.hash

    @invariant()
    def annotations_match(self) -> None:
        for agent in self.agents.values():
            if agent.pod.annotations is not None:
                assert agent.pod.annotations.hash == agent.manager.current.hash


ConfigDelivery.TestCase.settings = settings(
    max_examples=int(os.environ.get("HOURGLASS_DELIVERY_EXAMPLES", "60")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConfigDelivery = ConfigDelivery.TestCase


def test_the_issues_revert_settles_in_the_model() -> None:
    """The issue's sequence, played by hand through the machine's own rules."""
    machine = ConfigDelivery()
    machine.setup(None)
    try:
        machine.operator_writes(10, False)
        machine.operator_writes(20, False)
        machine.operator_writes(10, False)
        machine.settle()
        assert machine.agents["file-only"].manager.get("llmCall") == 10
        assert machine.agents["with-api"].manager.get("llmCall") == 10
    finally:
        machine.teardown()
