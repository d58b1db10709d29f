"""A corrupt ServiceAccount token file on the real control plane (issue 27, finding 3).

A real Pod-bound token with a CR LF in the middle: before, ``http.client`` refused the
header quoting it, the API watch logged that with a traceback on every retry, and the
pod reporter's thread died printing it, so the annotations never came. Now the client
refuses the file by name, nothing prints the token, and once kubelet writes a good
token again both the watch and the annotations recover.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fixtures.agent_pods import APPLIED_HASH, AgentPod, agent_rbac

pytestmark = [pytest.mark.usefixtures("real_cluster"), pytest.mark.timeout(120)]


def test_a_token_with_a_line_break_never_reaches_a_log_and_the_agent_recovers(
    real_cluster: Any,
) -> None:
    ns = real_cluster.namespace()
    real_cluster.apply(agent_rbac(ns))
    pod = AgentPod(real_cluster, ns, "agent-0", env={"HOURGLASS_CONFIG_WATCH": "api"})
    good = real_cluster.token("hourglass-agent", ns, bound_pod="agent-0")
    pod.write_account(good[:40] + "\r\n" + good[40:])
    try:
        pod.start()
        real_cluster.wait_for(
            lambda: pod.last_api_state() == "retrying", timeout=30, what="the watch to retry"
        )
        time.sleep(3)  # a few retries of the watch and of the pod report
        logged = pod.stderr_text()
        assert str(pod.account_dir / "token") in logged, pod.stderr_tail()
        for piece in (good[:40], good[40:], good[-24:]):
            assert piece not in logged
        assert not pod.annotations().get(APPLIED_HASH)

        pod.write_account(good)  # kubelet rotates the file: a good token again
        real_cluster.wait_for(
            lambda: pod.annotations().get(APPLIED_HASH),
            timeout=90,
            what="the pod report to write once the token is good (its thread alive)",
        )
        real_cluster.wait_for(
            lambda: pod.last_api_state() == "watching", timeout=60, what="the watch to recover"
        )
        assert good[-24:] not in pod.stderr_text()
    finally:
        pod.stop()
        real_cluster.delete("namespaces", None, ns)
