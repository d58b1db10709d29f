"""The pure namespace reconcile: what gets written, and what an invalid resource changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hourglass_operator.reconcile import ResourceKey, owner_of, plan_namespace
from hourglass_operator.status import condition_of

from agent_lib.config.bundle import render_config
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.timeout_profiles import TimeoutProfile

NS = "agents-dev"


def _tp(name: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": generation},
        "spec": spec,
    }


def _sp(name: str, spec: dict[str, Any], created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "SessionPolicy",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": spec,
    }


def _good() -> list[dict[str, Any]]:
    return [
        _tp("base", {"default": True, "timeouts": {"request": "30s", "llmCall": "1m"}}),
        _tp("slow", {"extends": "base", "timeouts": {"llmCall": "5m"}}),
        _sp("sessions", {"ttl": "10m", "store": {"urlSecretRef": {"name": "redis", "key": "url"}}}),
    ]


def _settle(bodies: list[dict[str, Any]], now: str = "T0") -> list[dict[str, Any]]:
    """The bodies as they are once the plan's statuses were written."""
    plan = plan_namespace(NS, bodies, image="img", now=now)
    settled = copy.deepcopy(bodies)
    for body in settled:
        key = ResourceKey(body["kind"], body["metadata"]["name"])
        if key in plan.statuses:
            body["status"] = plan.statuses[key]
    return settled


def test_configmap_is_exactly_what_render_config_returns() -> None:
    bodies = _good()
    plan = plan_namespace(NS, bodies, image="img", now="T0")
    profiles = [TimeoutProfile.model_validate(b) for b in bodies if b["kind"] == "TimeoutProfile"]
    policies = [SessionPolicy.model_validate(b) for b in bodies if b["kind"] == "SessionPolicy"]
    expected = render_config(NS, profiles, policies, owners=[owner_of(b) for b in bodies])
    assert plan.rendered is not None
    assert plan.rendered.configmap == expected.configmap
    assert plan.rendered.hash == expected.hash
    assert not plan.problems


def test_every_resource_gets_valid_ready_and_the_hash() -> None:
    plan = plan_namespace(NS, _good(), image="img", now="T0")
    assert plan.rendered is not None
    assert set(plan.statuses) == {
        ResourceKey("TimeoutProfile", "base"),
        ResourceKey("TimeoutProfile", "slow"),
        ResourceKey("SessionPolicy", "sessions"),
    }
    for status in plan.statuses.values():
        assert status["observedGeneration"] == 1
        assert status["configHash"] == plan.rendered.hash
        for type_ in ("Valid", "Ready"):
            condition = condition_of(status, type_)
            assert condition is not None
            assert condition["status"] == "True"
            assert condition["lastTransitionTime"] == "T0"
    assert {(e.type, e.reason) for e in plan.events} == {("Normal", "Rendered")}


def test_nothing_to_write_once_settled() -> None:
    settled = _settle(_good())
    plan = plan_namespace(NS, settled, image="img", now="T1")
    assert plan.statuses == {}
    assert plan.events == []
    assert plan.rendered is not None


def test_last_transition_time_moves_only_when_status_flips() -> None:
    settled = _settle(_good())
    settled[1]["metadata"]["generation"] = 2
    settled[1]["spec"]["timeouts"]["llmCall"] = "6m"
    plan = plan_namespace(NS, settled, image="img", now="T1")
    status = plan.statuses[ResourceKey("TimeoutProfile", "slow")]
    assert status["observedGeneration"] == 2
    assert condition_of(status, "Ready")["lastTransitionTime"] == "T0"  # type: ignore[index]
    assert condition_of(status, "Ready")["observedGeneration"] == 2  # type: ignore[index]

    settled[1]["spec"]["timeouts"]["llmCall"] = "never"
    settled[1]["metadata"]["generation"] = 3
    plan = plan_namespace(NS, settled, image="img", now="T2")
    status = plan.statuses[ResourceKey("TimeoutProfile", "slow")]
    assert condition_of(status, "Valid")["lastTransitionTime"] == "T2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "offender", "reason", "field"),
    [
        (
            lambda b: b[1]["spec"]["timeouts"].update(llmCall="fast"),
            "slow",
            "InvalidSpec",
            "spec.timeouts.llmCall",
        ),
        (
            lambda b: b[1]["spec"].update(extends="ghost"),
            "slow",
            "InheritanceError",
            "spec.extends",
        ),
        (lambda b: b[0]["spec"].update(extends="slow"), "base", "InheritanceError", "spec.extends"),
        (lambda b: b[1]["spec"].update(default=True), "slow", "MultipleDefaults", "spec.default"),
        (
            lambda b: b[2]["spec"].update(ttl="2h", maxLifetime="1h"),
            "sessions",
            "InvalidSpec",
            "spec",
        ),
    ],
    ids=["bad-duration", "missing-parent", "cycle", "second-default", "lifetime-below-ttl"],
)
def test_an_invalid_resource_keeps_the_last_good_config(
    change: Any, offender: str, reason: str, field: str
) -> None:
    settled = _settle(_good())
    change(settled)
    plan = plan_namespace(NS, settled, image="img", now="T1")
    assert plan.rendered is None
    assert plan.cronjob is None
    assert not plan.remove_configmap and not plan.remove_cronjob
    key = next(k for k in plan.statuses if k.name == offender)
    valid = condition_of(plan.statuses[key], "Valid")
    assert valid is not None
    assert (valid["status"], valid["reason"]) == ("False", reason)
    assert field in valid["message"]
    assert any(e.key == key and e.type == "Warning" and field in e.message for e in plan.events)
    # Resources not at fault keep their status (the old ConfigMap still serves them).
    named = {(p.kind, p.name) for p in plan.problems}
    untouched = [b for b in settled if (b["kind"], b["metadata"]["name"]) not in named]
    assert untouched
    for body in untouched:
        assert ResourceKey(body["kind"], body["metadata"]["name"]) not in plan.statuses


def test_a_changed_sibling_of_an_invalid_resource_is_blocked_not_invalid() -> None:
    settled = _settle(_good())
    settled[1]["spec"]["timeouts"]["llmCall"] = "fast"
    settled[1]["metadata"]["generation"] = 2
    settled[2]["spec"]["ttl"] = "20m"
    settled[2]["metadata"]["generation"] = 2
    plan = plan_namespace(NS, settled, image="img", now="T1")
    status = plan.statuses[ResourceKey("SessionPolicy", "sessions")]
    assert condition_of(status, "Valid")["status"] == "True"  # type: ignore[index]
    ready = condition_of(status, "Ready")
    assert ready is not None and ready["reason"] == "Blocked"
    assert "TimeoutProfile/slow" in ready["message"]


def test_a_new_second_default_is_at_fault_not_the_old_one() -> None:
    settled = _settle(_good())
    settled[1]["spec"]["default"] = True
    settled[1]["metadata"]["generation"] = 2
    plan = plan_namespace(NS, settled, image="img", now="T1")
    assert {p.name for p in plan.problems} == {"base", "slow"}
    assert ResourceKey("TimeoutProfile", "base") not in plan.statuses
    valid = condition_of(plan.statuses[ResourceKey("TimeoutProfile", "slow")], "Valid")
    assert valid is not None and valid["reason"] == "MultipleDefaults"


def test_two_new_defaults_are_both_at_fault() -> None:
    bodies = _good()
    bodies[1]["spec"]["default"] = True
    plan = plan_namespace(NS, bodies, image="img", now="T0")
    for name in ("base", "slow"):
        valid = condition_of(plan.statuses[ResourceKey("TimeoutProfile", name)], "Valid")
        assert valid is not None and valid["reason"] == "MultipleDefaults"


def test_a_second_session_policy_is_refused_by_age() -> None:
    bodies = [
        _sp("first", {"ttl": "10m"}, created="2026-01-01T00:00:00Z"),
        _sp("second", {"ttl": "20m"}, created="2026-02-01T00:00:00Z"),
    ]
    plan = plan_namespace(NS, list(reversed(bodies)), image="img", now="T0")
    assert plan.rendered is not None
    assert plan.rendered.config.session_policy.name == "first"  # type: ignore[union-attr]
    valid = condition_of(plan.statuses[ResourceKey("SessionPolicy", "second")], "Valid")
    assert valid is not None and valid["reason"] == "MultipleSessionPolicies"
    first = condition_of(plan.statuses[ResourceKey("SessionPolicy", "first")], "Valid")
    assert first is not None and first["status"] == "True"


def test_empty_namespace_and_no_policy() -> None:
    empty = plan_namespace(NS, [], image="img", now="T0")
    assert empty.remove_configmap and empty.remove_cronjob and empty.rendered is None
    profiles_only = plan_namespace(NS, _good()[:2], image="img", now="T0")
    assert profiles_only.remove_cronjob and profiles_only.cronjob is None
    assert profiles_only.rendered is not None


def test_cronjob_follows_the_policy() -> None:
    plan = plan_namespace(NS, _good(), image="registry.test/hg:1", now="T0")
    assert plan.cronjob is not None
    assert plan.cronjob["metadata"]["ownerReferences"][0]["uid"] == "uid-sessions"
    assert (
        plan.cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.test/hg:1"
    )


def test_statuses_written_since_override_stale_bodies() -> None:
    bodies = _good()
    first = plan_namespace(NS, bodies, image="img", now="T0")
    written = {f"uid-{k.name}": s for k, s in first.statuses.items()}
    again = plan_namespace(NS, bodies, image="img", now="T1", statuses=written)
    assert again.statuses == {}


def _status_schema(plural: str) -> dict[str, Any]:
    from pathlib import Path

    import yaml

    path = (
        Path(__file__).resolve().parents[2] / "manifests" / "crds" / f"{plural}.hourglass.dev.yaml"
    )
    crd = yaml.safe_load(path.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["status"])


def test_statuses_fit_the_crd_status_schema() -> None:
    import jsonschema

    settled = _settle(_good())
    settled[1]["spec"]["timeouts"]["llmCall"] = "x" * 50_000
    plan = plan_namespace(NS, settled, image="img", now="2026-01-01T00:00:00Z")
    statuses = {**plan_namespace(NS, _good(), image="img", now="T").statuses, **plan.statuses}
    assert len(statuses) == 3
    for key, status in statuses.items():
        plural = "timeoutprofiles" if key.kind == "TimeoutProfile" else "sessionpolicies"
        jsonschema.validate(status, _status_schema(plural))
    last = {
        "job": "hourglass-cleanup-1",
        "succeeded": True,
        "completionTime": "T",
        "summary": {
            "scanned": 1,
            "expired": 0,
            "evicted": 0,
            "lifetime_ended": 0,
            "bytes_freed": 0,
            "duration_s": 0.1,
        },
    }
    jsonschema.validate({"lastCleanup": last}, _status_schema("sessionpolicies"))


def test_a_bad_new_resource_does_not_hold_up_its_namespace() -> None:
    settled = _settle(_good())
    settled[2]["spec"]["ttl"] = "20m"
    settled[2]["metadata"]["generation"] = 2
    settled.append(_tp("broken", {"timeouts": {"request": "later"}}))
    plan = plan_namespace(NS, settled, image="img", now="T1")
    assert plan.rendered is not None
    assert "broken" not in plan.rendered.config.profiles
    assert plan.rendered.config.session_policy is not None
    assert plan.rendered.config.session_policy.ttl == 1200
    owners = {o["name"] for o in plan.rendered.configmap["metadata"]["ownerReferences"]}
    assert owners == {"base", "slow", "sessions"}
    broken = plan.statuses[ResourceKey("TimeoutProfile", "broken")]
    assert condition_of(broken, "Valid")["status"] == "False"  # type: ignore[index]
    assert "not included" in condition_of(broken, "Ready")["message"]  # type: ignore[index]
    assert "configHash" not in broken


def test_a_new_second_policy_is_left_out_and_the_first_keeps_its_cronjob() -> None:
    store = {"urlSecretRef": {"name": "redis", "key": "url"}}
    first = _sp("first", {"ttl": "10m", "store": store}, created="2026-01-01T00:00:00Z")
    settled = _settle([first])
    settled.append(_sp("second", {"ttl": "20m"}, created="2026-02-01T00:00:00Z"))
    plan = plan_namespace(NS, settled, image="img", now="T1")
    assert plan.rendered is not None
    assert plan.rendered.config.session_policy.name == "first"  # type: ignore[union-attr]
    assert plan.cronjob is not None
    assert plan.cronjob["metadata"]["ownerReferences"][0]["name"] == "first"
    valid = condition_of(plan.statuses[ResourceKey("SessionPolicy", "second")], "Valid")
    assert valid is not None and valid["reason"] == "MultipleSessionPolicies"
