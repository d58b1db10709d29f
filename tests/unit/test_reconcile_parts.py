"""The operator's pure parts besides the namespace plan: CronJob, conditions, webhook, settings."""

from __future__ import annotations

from typing import Any

import pytest
from hourglass_operator.cronjob import CRONJOB_NAME, SPEC_HASH_ANNOTATION, build_cronjob
from hourglass_operator.errors import OperatorConfigError
from hourglass_operator.settings import DEFAULT_IMAGE, OperatorSettings
from hourglass_operator.status import Condition, build_status, merge_conditions
from hourglass_operator.webhook import admission_problems

from agent_lib.config.session_config import SessionPolicy

OWNER = {"apiVersion": "hourglass.dev/v1alpha1", "kind": "SessionPolicy", "name": "p", "uid": "u1"}


def _policy(spec: dict[str, Any]) -> SessionPolicy:
    return SessionPolicy.model_validate(
        {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "SessionPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": spec,
        }
    )


def test_cronjob_is_hardened_and_never_carries_the_secret() -> None:
    policy = _policy(
        {
            "store": {"urlSecretRef": {"name": "redis", "key": "url"}},
            "cleanup": {"schedule": "*/10 * * * *", "suspend": True},
        }
    )
    cronjob = build_cronjob(policy, "ns", OWNER, "img:1")
    assert cronjob["metadata"]["name"] == CRONJOB_NAME
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["suspend"], spec["concurrencyPolicy"]) == (
        "*/10 * * * *",
        True,
        "Forbid",
    )
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == [
        "hourglass",
        "cleanup",
        "--namespace",
        "ns",
        "--policy",
        "/etc/hourglass/hourglass.yaml",
        "--json",
    ]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "redis",
        "key": "url",
        "optional": False,
    }
    assert "value" not in container["env"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["terminationMessagePolicy"] == "File"


def test_cronjob_without_secret_has_no_redis_env_and_hash_tracks_the_spec() -> None:
    one = build_cronjob(_policy({}), "ns", OWNER, "img:1")
    (container,) = one["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["env"] == []
    same = build_cronjob(_policy({}), "ns", OWNER, "img:1")
    other = build_cronjob(_policy({"cleanup": {"suspend": True}}), "ns", OWNER, "img:1")
    digest = one["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert same["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == digest
    assert other["metadata"]["annotations"][SPEC_HASH_ANNOTATION] != digest


def test_conditions_keep_transition_time_unless_status_flips() -> None:
    first = merge_conditions([], [Condition("Ready", True, "Rendered", "m")], 1, "T0")
    same = merge_conditions(first, [Condition("Ready", True, "Rendered", "m2")], 2, "T1")
    flipped = merge_conditions(same, [Condition("Ready", False, "NotRendered", "m3")], 3, "T2")
    assert first[0]["lastTransitionTime"] == same[0]["lastTransitionTime"] == "T0"
    assert same[0]["observedGeneration"] == 2 and same[0]["message"] == "m2"
    assert flipped[0]["lastTransitionTime"] == "T2" and flipped[0]["status"] == "False"


def test_build_status_keeps_foreign_keys() -> None:
    status = build_status(
        {"lastCleanup": {"job": "j"}, "configHash": "old"},
        generation=4,
        conditions=[Condition("Valid", False, "InvalidSpec", "spec.ttl: bad")],
        config_hash=None,
        now="T",
    )
    assert status["lastCleanup"] == {"job": "j"}
    assert status["configHash"] == "old"
    assert status["observedGeneration"] == 4


def _tp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }


def test_webhook_refuses_bad_fields_and_a_second_default() -> None:
    problems = admission_problems(_tp("a", {"timeouts": {"request": "-1s"}}))
    assert [p.field for p in problems] == ["spec.timeouts.request"]
    siblings = [_tp("b", {"default": True})]
    second = admission_problems(_tp("a", {"default": True}), siblings)
    assert [p.field for p in second] == ["spec.default"]
    # A child may be admitted before its parent: inheritance is the operator's to report.
    assert admission_problems(_tp("a", {"extends": "later"})) == []
    assert admission_problems(_tp("a", {"default": True}), [_tp("a", {"default": True})]) == []


def test_settings_from_env() -> None:
    assert OperatorSettings.from_env({}).image == DEFAULT_IMAGE
    settings = OperatorSettings.from_env(
        {
            "HOURGLASS_OPERATOR_IMAGE": "r/i:2",
            "HOURGLASS_METRICS_PORT": "0",
            "HOURGLASS_WEBHOOK": "true",
        }
    )
    assert (settings.image, settings.metrics_port, settings.webhook) == ("r/i:2", 0, True)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"HOURGLASS_METRICS_PORT": "http"}, "HOURGLASS_METRICS_PORT"),
        ({"HOURGLASS_WEBHOOK_PORT": "70000"}, "HOURGLASS_WEBHOOK_PORT"),
        ({"HOURGLASS_WEBHOOK": "maybe"}, "HOURGLASS_WEBHOOK"),
        ({"HOURGLASS_OPERATOR_IMAGE": "a b"}, "HOURGLASS_OPERATOR_IMAGE"),
        ({"HOURGLASS_LOG_FORMAT": "xml"}, "HOURGLASS_LOG_FORMAT"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(OperatorConfigError) as error:
        OperatorSettings.from_env(env)
    assert error.value.field == field


def test_json_log_lines_carry_the_object() -> None:
    import json
    import logging

    from hourglass_operator.logs import JsonFormatter

    record = logging.makeLogRecord(
        {
            "name": "kopf.objects",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "Handler %s failed",
            "args": ("x",),
            "k8s_ref": {"kind": "TimeoutProfile", "namespace": "ns", "name": "a", "uid": "u"},
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Handler x failed"
    assert entry["level"] == "warning"
    assert entry["object"] == {"kind": "TimeoutProfile", "namespace": "ns", "name": "a"}


def test_one_config_hash_series_per_namespace() -> None:
    from hourglass_operator import metrics
    from prometheus_client import generate_latest

    metrics.set_config_hash("ns-hash", "aaaa")
    metrics.set_config_hash("ns-hash", "bbbb")
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'hash="bbbb",namespace="ns-hash"' in text
    assert 'hash="aaaa",namespace="ns-hash"' not in text
    metrics.set_config_hash("ns-hash", None)
    assert 'namespace="ns-hash"' not in generate_latest(metrics.REGISTRY).decode()


def test_webhook_without_tls_material_is_refused() -> None:
    with pytest.raises(OperatorConfigError) as error:
        OperatorSettings(webhook=True).check()
    assert error.value.field == "HOURGLASS_WEBHOOK"
    assert OperatorSettings(webhook=True, webhook_insecure=True).check().webhook


def test_cli_refuses_conflicting_flags() -> None:
    from click.testing import CliRunner

    from hourglass_cli.operator import operator

    runner = CliRunner()
    both = runner.invoke(operator, ["--all-namespaces", "--namespace", "a"])
    assert both.exit_code == 2 and "--all-namespaces" in both.output
    peering = runner.invoke(operator, ["-A", "--peering", "p", "--standalone"])
    assert peering.exit_code == 2 and "--standalone" in peering.output
    webhook = runner.invoke(operator, ["-A", "--webhook"], env={"HOURGLASS_WEBHOOK_CERT": ""})
    assert webhook.exit_code == 2 and "HOURGLASS_WEBHOOK_CERT" in webhook.output


def test_long_policy_names_still_make_valid_label_values() -> None:
    import re

    from hourglass_operator.cronjob import POLICY_LABEL, policy_label

    long_name = "a" * 40 + "." + "b" * 100
    value = policy_label(long_name)
    assert len(value) <= 63
    assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)
    assert policy_label(long_name + "c") != value
    assert policy_label("short") == "short"
    cronjob = build_cronjob(_policy({}), "ns", OWNER, "img")
    assert cronjob["metadata"]["labels"][POLICY_LABEL] == "p"


def test_status_merge_patch_removes_what_the_new_status_drops() -> None:
    from hourglass_operator.status import merge_patch

    old = {"lastCleanup": {"job": "a", "summary": {"scanned": 3, "expired": 1}}, "configHash": "h"}
    new = {"lastCleanup": {"job": "b", "summary": {"message": "failed"}}}
    patch = merge_patch(old, new)
    assert patch == {
        "configHash": None,
        "lastCleanup": {
            "job": "b",
            "summary": {"scanned": None, "expired": None, "message": "failed"},
        },
    }
