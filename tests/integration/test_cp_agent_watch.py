"""The fast path on the real control plane: agent_lib processes run "as" Pods (tokens bound
to Pending Pod objects), watch ``hourglass-config`` through kube-apiserver and annotate
their own Pods. The operator renders the ConfigMap under its own ServiceAccount where the
operator is the point; elsewhere the test writes the ConfigMap itself, as the operator
would, to control exactly what the agents receive.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_lib.config import REVISION_KEY
from agent_lib.config.bundle import CONFIG_KEY, CONFIGMAP_NAME, HASH_ANNOTATION
from agent_lib.timeouts.reload import atomic_swap
from tests.fixtures.agent_pods import (
    APPLIED_HASH,
    APPLIED_PROFILE,
    CONFIG_ERROR,
    AgentPod,
    TcpProxy,
    agent_rbac,
)
from tests.fixtures.operator_process import OperatorProcess
from tests.integration._resources import _profile, _yaml
from tests.integration._rollout import admit_rejected_hash

pytestmark = pytest.mark.usefixtures("real_cluster")

POLLING = {"interval": 1, "maxInterval": 5, "multiplier": 2, "jitter": 0, "maxDuration": 30}


@pytest.fixture
def ns(real_cluster: Any) -> str:
    """A fresh namespace. Left in place: deleting it would leave its TimeoutProfiles'
    finalizers to whichever operator runs next, in a terminating namespace."""
    return str(real_cluster.namespace())


@pytest.fixture
def pods() -> Iterator[list[AgentPod]]:
    started: list[AgentPod] = []
    try:
        yield started
    finally:
        for pod in started:
            pod.stop()


def _bundle(ns: str, request: float, *, extra: dict[str, Any] | None = None) -> str:
    """A ``hourglass.yaml`` as the operator renders it: profile ``prod`` (default) + extras."""
    profiles = {"prod": {"timeouts": {"request": request}, "polling": POLLING}}
    for name, timeouts in (extra or {}).items():
        profiles[name] = {"timeouts": timeouts, "polling": POLLING}
    return yaml.safe_dump(
        {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "HourglassConfig",
            "namespace": ns,
            "defaultProfile": "prod",
            "profiles": profiles,
        },
        sort_keys=False,
    )


def _digest(content: str) -> str:
    import hashlib

    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _write_configmap(cluster: Any, ns: str, content: str) -> str:
    """Create or replace ``hourglass-config`` as the operator would; returns its hash."""
    digest = _digest(content)
    cluster.apply(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": CONFIGMAP_NAME,
                    "namespace": ns,
                    "annotations": {HASH_ANNOTATION: digest},
                },
                "data": {CONFIG_KEY: content},
            }
        )
    )
    return digest


def _rendered(cluster: Any, ns: str, seconds: float) -> tuple[str, str]:
    """Wait until the operator has rendered ``request == seconds``: (hash, content)."""

    def rendered() -> tuple[str, str] | None:
        cm = cluster.get("configmaps", ns, CONFIGMAP_NAME)
        if cm is None:
            return None
        content = cm["data"][CONFIG_KEY]
        if yaml.safe_load(content)["profiles"]["prod"]["timeouts"].get("request") != seconds:
            return None
        return str(cm["metadata"]["annotations"][HASH_ANNOTATION]), content

    return cluster.wait_for(rendered, what=f"request={seconds}s rendered in {ns}")


def _start(cluster: Any, ns: str, names: list[str], pods: list[AgentPod], **kw: Any) -> None:
    new = [AgentPod(cluster, ns, name, **kw) for name in names]
    pods.extend(new)
    for pod in new:
        pod.start()


def _running(cluster: Any, pods: list[AgentPod], digest: str, what: str) -> None:
    cluster.wait_for(
        lambda: all(p.last()["hash"] == digest for p in pods), timeout=20, what=f"agents {what}"
    )


def _annotated(cluster: Any, pods: list[AgentPod], digest: str, what: str) -> None:
    cluster.wait_for(
        lambda: all(p.annotations().get(APPLIED_HASH) == digest for p in pods),
        timeout=20,
        what=f"pod annotations {what}",
    )


def _settle(seconds: float = 1.0) -> None:
    """Time for the agents' file watch (inotify, 20 ms step) to act on what was written;
    used only before asserting that something did NOT happen."""
    time.sleep(seconds)


def test_a_profile_patch_reaches_three_pods_through_the_api(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    real_cluster.apply(agent_rbac(ns))
    real_cluster.apply(
        _yaml(_profile(ns, "prod", {"default": True, "timeouts": {"request": "10s"}}))
    )
    operator = OperatorProcess(real_cluster, name="agentwatch").start(timeout=60)
    try:
        first, first_content = _rendered(real_cluster, ns, 10)

        # No mounted folder at all: the API path alone brings the config.
        _start(real_cluster, ns, ["agent-0", "agent-1", "agent-2"], pods)
        _running(real_cluster, pods, first, "on the first render")
        _annotated(real_cluster, pods, first, "on the first render")
        for pod in pods:
            assert pod.last()["source"].startswith(f"api:{ns}/hourglass-config@")
            assert pod.last()["timeouts"]["request"] == 10
            assert pod.annotations()[APPLIED_PROFILE] == "prod"
            assert CONFIG_ERROR not in pod.annotations()
            assert not pod.config_dir.exists()

        real_cluster.patch(
            "timeoutprofiles", ns, "prod", {"spec": {"timeouts": {"request": "42s"}}}
        )
        second, second_content = _rendered(real_cluster, ns, 42)
        _running(real_cluster, pods, second, "after the patch")
        _annotated(real_cluster, pods, second, "after the patch")
        assert all(p.last()["timeouts"]["request"] == 42 for p in pods)
    finally:
        operator.stop()

    # kubelet writes the mounted folder late, with the older content: nothing rolls back.
    for pod in pods:
        atomic_swap(pod.config_dir, {CONFIG_KEY: first_content})
    _settle()
    # then it catches up with the same content as the API: nothing changes either.
    for pod in pods:
        atomic_swap(pod.config_dir, {CONFIG_KEY: second_content})
    _settle()
    for pod in pods:
        assert pod.alive(), pod.stderr_tail()
        assert [c["hash"] for c in pod.changes()][-1] == second
        assert first not in [c["hash"] for c in pod.changes()[-1:]]
        assert pod.annotations()[APPLIED_HASH] == second
        assert CONFIG_ERROR not in pod.annotations()
        assert sum(c["hash"] == second for c in pod.changes()) == 1, pod.changes()


def test_a_revert_reaches_agents_through_the_api_the_file_and_both(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    """The operator renders 10, 20, then 10 again. Before revisions, an agent reading the
    file stayed on 20: the revert's content had been seen before, so it looked old. Now
    the revert is a new revision, and every path applies it."""
    real_cluster.apply(agent_rbac(ns))
    real_cluster.apply(
        _yaml(_profile(ns, "prod", {"default": True, "timeouts": {"request": "10s"}}))
    )
    operator = OperatorProcess(real_cluster, name="revert").start(timeout=60)
    try:
        _start(real_cluster, ns, ["via-api"], pods)
        _start(real_cluster, ns, ["via-file"], pods, env={"HOURGLASS_CONFIG_WATCH": "file"})
        _start(real_cluster, ns, ["via-both"], pods)
        kubelet_fed = [p for p in pods if p.name != "via-api"]
        revisions: list[int] = []
        for seconds in (10, 20, 10):
            if seconds != 10 or revisions:
                real_cluster.patch(
                    "timeoutprofiles",
                    ns,
                    "prod",
                    {"spec": {"timeouts": {"request": f"{seconds}s"}}},
                )
            digest, _ = _rendered(real_cluster, ns, seconds)
            cm = real_cluster.get("configmaps", ns, CONFIGMAP_NAME)
            revisions.append(int(cm["data"][REVISION_KEY]))
            for pod in kubelet_fed:  # kubelet: the ConfigMap's data, revision included
                atomic_swap(pod.config_dir, cm["data"])
            _running(real_cluster, pods, digest, f"on request={seconds}s")
            assert all(p.last()["timeouts"]["request"] == seconds for p in pods)
        assert revisions == sorted(set(revisions)), revisions
        _annotated(real_cluster, [pods[0], pods[2]], digest, "after the revert")
    finally:
        operator.stop()


def test_a_rejected_config_shows_on_the_pod_and_clears_after_a_good_one(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    real_cluster.apply(agent_rbac(ns))
    good = _write_configmap(real_cluster, ns, _bundle(ns, 10, extra={"canary": {"request": 5}}))
    _start(real_cluster, ns, ["agent-0", "agent-1"], pods)
    _start(real_cluster, ns, ["agent-canary"], pods, env={"HOURGLASS_PROFILE": "canary"})
    _running(real_cluster, pods, good, "on the first version")
    _annotated(real_cluster, pods, good, "on the first version")
    assert pods[2].annotations()[APPLIED_PROFILE] == "canary"

    # The canary profile disappears: only the pod that asked for it rejects the config.
    dropped = _write_configmap(real_cluster, ns, _bundle(ns, 20))
    _running(real_cluster, pods[:2], dropped, "without canary")
    _annotated(real_cluster, pods[:2], dropped, "without canary")
    canary = pods[2]
    real_cluster.wait_for(
        lambda: "profiles.canary" in canary.annotations().get(CONFIG_ERROR, ""),
        what="the canary pod's config-error",
    )
    assert "no such profile" in canary.annotations()[CONFIG_ERROR]
    assert canary.annotations()[APPLIED_HASH] == good, "the last good config stays in use"
    assert canary.last()["timeouts"]["request"] == 5
    assert all(CONFIG_ERROR not in p.annotations() for p in pods[:2])

    # A timeout name this agent_lib does not accept: every pod rejects, naming the field.
    bad = _write_configmap(
        real_cluster, ns, _bundle(ns, 30, extra={"canary": {"request": 5, "llm-call": 9}})
    )
    real_cluster.wait_for(
        lambda: all("llm-call" in p.annotations().get(CONFIG_ERROR, "") for p in pods),
        what="config-error on every pod",
    )
    for pod in pods:
        error = pod.annotations()[CONFIG_ERROR]
        assert error.startswith("profiles.canary.timeouts.llm-call"), error
        assert len(error) <= 200
        assert pod.annotations()[APPLIED_HASH] != bad
    assert [p.annotations()[APPLIED_HASH] for p in pods] == [dropped, dropped, good]

    # A good version clears config-error everywhere.
    fixed = _write_configmap(real_cluster, ns, _bundle(ns, 40, extra={"canary": {"request": 6}}))
    _annotated(real_cluster, pods, fixed, "after the fix")
    real_cluster.wait_for(
        lambda: all(CONFIG_ERROR not in p.annotations() for p in pods),
        what="config-error cleared",
    )
    assert [p.last()["timeouts"]["request"] for p in pods] == [40, 40, 6]


def test_api_cut_off_the_file_takes_over_and_nothing_rolls_back(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    real_cluster.apply(agent_rbac(ns))
    v1 = _bundle(ns, 10)
    h1 = _write_configmap(real_cluster, ns, v1)
    proxy = TcpProxy(real_cluster.plane.api_port).start()
    try:
        _start(real_cluster, ns, ["agent-0", "agent-1", "agent-2"], pods, api_port=proxy.port)
        for pod in pods:
            atomic_swap(pod.config_dir, {CONFIG_KEY: v1})
        _running(real_cluster, pods, h1, "on v1")
        v2 = _bundle(ns, 20)
        h2 = _write_configmap(real_cluster, ns, v2)
        _running(real_cluster, pods, h2, "on v2 through the API")
        _annotated(real_cluster, pods, h2, "on v2")
        assert all(p.last()["source"].startswith("api:") for p in pods)

        proxy.cut()
        real_cluster.wait_for(
            lambda: all(p.last_api_state() == "retrying" for p in pods),
            what="the agents to notice the API is gone",
        )
        # kubelet (which still reaches the API server) brings v3 through the folder.
        v3 = _bundle(ns, 30)
        h3 = _write_configmap(real_cluster, ns, v3)
        for pod in pods:
            atomic_swap(pod.config_dir, {CONFIG_KEY: v3})
        _running(real_cluster, pods, h3, "on v3 through the file")
        assert all(p.last()["source"] == str(p.config_dir / CONFIG_KEY) for p in pods)
        # A lagging folder that shows v2 again (older) changes nothing.
        for pod in pods:
            atomic_swap(pod.config_dir, {CONFIG_KEY: v2})
        _settle()
        assert all(p.last()["hash"] == h3 for p in pods)

        proxy.restore()
        # Back on the API: it has v3 too (no change), and the annotations catch up.
        _annotated(real_cluster, pods, h3, "after the API is back")
        h4 = _write_configmap(real_cluster, ns, _bundle(ns, 40))
        _running(real_cluster, pods, h4, "on v4 through the API again")
        hashes = [c["hash"] for c in pods[0].changes()]
        assert hashes.index(h4) > hashes.index(h3) > hashes.index(h2)
        assert h2 not in hashes[hashes.index(h3) :], "rolled back to v2"
    finally:
        proxy.stop()


def test_without_permission_the_agent_runs_on_the_file(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    """``auto`` in a pod whose ServiceAccount has no Role: the API refuses (403), logged once;
    the mounted file is used as before, and nothing disturbs the agent."""
    real_cluster.kubectl("create", "serviceaccount", "hourglass-agent", "-n", ns)
    content = _bundle(ns, 15)
    h1 = _write_configmap(real_cluster, ns, content)
    _start(real_cluster, ns, ["agent-0"], pods)
    (pod,) = pods
    atomic_swap(pod.config_dir, {CONFIG_KEY: content})
    _running(real_cluster, pods, h1, "through the file")
    real_cluster.wait_for(lambda: pod.last_api_state() == "retrying", what="the API refused")
    real_cluster.wait_for(lambda: "HTTP 403" in pod.stderr_text(), what="403 logged")
    _settle(2)
    assert pod.stderr_text().count("cannot watch ConfigMap") == 1, pod.stderr_text()
    assert pod.alive()
    assert APPLIED_HASH not in pod.annotations()


def test_a_rotated_token_is_read_again(real_cluster: Any, ns: str, pods: list[AgentPod]) -> None:
    """kubelet rotates the projected token in place; the agent reads the file again."""
    real_cluster.apply(agent_rbac(ns))
    h1 = _write_configmap(real_cluster, ns, _bundle(ns, 12))
    pod = AgentPod(real_cluster, ns, "agent-0")
    pod.write_account(token="not-a-token")
    pods.append(pod)
    pod.start()
    real_cluster.wait_for(lambda: "HTTP 401" in pod.stderr_text(), what="401 logged")
    assert pod.last()["hash"] != h1
    pod.write_account()  # a fresh token bound to the Pod, written the way kubelet does
    _running(real_cluster, pods, h1, "after the token rotation")
    _annotated(real_cluster, pods, h1, "after the token rotation")


def test_an_asyncio_agent_takes_the_fast_path_too(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    """``async with AsyncTimeoutManager()``: the watch runs beside the loop; async
    ``on_change`` callbacks run on the loop."""
    real_cluster.apply(agent_rbac(ns))
    h1 = _write_configmap(real_cluster, ns, _bundle(ns, 12))
    _start(real_cluster, ns, ["agent-async"], pods, env={"AGENT_ASYNC": "1"})
    _running(real_cluster, pods, h1, "on v1")
    h2 = _write_configmap(real_cluster, ns, _bundle(ns, 24))
    _running(real_cluster, pods, h2, "on v2")
    _annotated(real_cluster, pods, h2, "on v2")
    assert pods[0].last()["event"] == "change" and pods[0].last()["api"] == "watching"
    pods[0].stop()
    assert "Traceback" not in pods[0].stderr_text(), pods[0].stderr_text()


def _rollout_status(cluster: Any, ns: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("hourglass"))
    return subprocess.run(
        [exe, "rollout", "status", "-n", ns, "--timeout", "60s"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_real_agents_drive_the_rollout_status(
    real_cluster: Any, ns: str, pods: list[AgentPod]
) -> None:
    """The whole loop with real agents: patch, API watch, pod annotations, the operator's
    aggregation, `hourglass rollout status` and the condition `Applied`."""
    admit_rejected_hash(real_cluster)
    real_cluster.apply(agent_rbac(ns))
    real_cluster.apply(
        _yaml(_profile(ns, "prod", {"default": True, "timeouts": {"request": "10s"}}))
    )
    operator = OperatorProcess(real_cluster, name="agentwatch-rollout").start(timeout=60)
    try:
        _rendered(real_cluster, ns, 10)
        _start(real_cluster, ns, ["agent-0", "agent-1"], pods)
        _start(real_cluster, ns, ["agent-canary"], pods, env={"HOURGLASS_PROFILE": "prod"})
        real_cluster.patch(
            "timeoutprofiles", ns, "prod", {"spec": {"timeouts": {"request": "42s"}}}
        )
        digest, _ = _rendered(real_cluster, ns, 42)
        done = _rollout_status(real_cluster, ns)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"rollout of hash {digest} complete: 3 of 3 pods updated" in done.stdout
        real_cluster.kubectl(
            "wait", "--for=condition=Applied", "tp/prod", "-n", ns, "--timeout=30s"
        )

        # One pod asks for a profile the next version no longer has: Applied=False, Rejected.
        real_cluster.apply(_yaml(_profile(ns, "canary", {"timeouts": {"request": "5s"}})))
        real_cluster.wait_for(
            lambda: (
                "canary"
                in yaml.safe_load(
                    real_cluster.get("configmaps", ns, CONFIGMAP_NAME)["data"][CONFIG_KEY]
                )["profiles"]
            ),
            what="canary rendered",
        )
        pods[2].stop()
        pods[2].extra_env["HOURGLASS_PROFILE"] = "canary"
        pods[2].start()
        real_cluster.wait_for(
            lambda: pods[2].annotations().get(APPLIED_PROFILE) == "canary", what="canary pod"
        )
        real_cluster.delete("timeoutprofiles", ns, "canary")
        refused = _rollout_status(real_cluster, ns)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "agent-canary" in refused.stdout + refused.stderr
        assert "profiles.canary" in refused.stdout + refused.stderr

        def rejected() -> bool:
            tp = real_cluster.get("timeoutprofiles", ns, "prod") or {}
            applied = [
                c for c in tp.get("status", {}).get("conditions", []) if c["type"] == "Applied"
            ]
            return (
                bool(applied)
                and applied[0]["status"] == "False"
                and applied[0]["reason"] == "Rejected"
            )

        real_cluster.wait_for(rejected, what="Applied=False, reason Rejected")
        # The agent named the hash it refused: the one on the ConfigMap now.
        refused_hash = real_cluster.get("configmaps", ns, CONFIGMAP_NAME)["metadata"][
            "annotations"
        ]["hourglass.dev/config-hash"]
        assert pods[2].annotations()["hourglass.dev/rejected-hash"] == refused_hash
    finally:
        operator.stop()
