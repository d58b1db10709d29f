"""Per-document and namespace-wide validation, located at file:line."""

from __future__ import annotations

import textwrap

import pytest

from agent_lib.config import load_text, parse_documents, parse_resource
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.timeout_profiles import TimeoutProfile
from tests.unit._helpers import document


def _profile(name: str, **spec: object) -> dict[str, object]:
    return document("TimeoutProfile", name, **spec)


def _policy(name: str, **spec: object) -> dict[str, object]:
    return document("SessionPolicy", name, **spec)


def _problems(*documents: dict[str, object]) -> list[str]:
    parsed = parse_documents(load_text(_yaml(*documents), "specs.yaml").documents)
    return [str(p) for p in parsed.problems]


def _yaml(*documents: dict[str, object]) -> str:
    import yaml

    return yaml.safe_dump_all(documents, sort_keys=False)


def test_a_valid_profile_parses_to_seconds() -> None:
    resource, problems = parse_resource(
        _profile("p", timeouts={"llmCall": "1m30s", "connect": 2}, polling={"interval": "500ms"})
    )
    assert problems == []
    assert isinstance(resource, TimeoutProfile)
    assert resource.spec.timeouts == {"llmCall": 90.0, "connect": 2.0}
    assert resource.spec.polling is not None and resource.spec.polling.interval == 0.5


def test_session_policy_defaults_and_memory_bytes() -> None:
    resource, problems = parse_resource(_policy("s", maxMemory="512Mi"))
    assert problems == []
    assert isinstance(resource, SessionPolicy)
    assert resource.spec.ttl == 1800.0
    assert resource.spec.max_memory_bytes == 512 * 2**20


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        (_profile("p", timeouts={"llmCall": "10x"}), "spec.timeouts.llmCall", "not a duration"),
        (_profile("p", timeouts={"llmCall": "0s"}), "spec.timeouts.llmCall", "positive"),
        (_profile("p", timeouts={"LLM": "1s"}), "spec.timeouts.LLM", "lowerCamelCase"),
        (_profile("p", timeouts={"x": "40d"}), "spec.timeouts.x", "maximum"),
        (
            _profile("p", polling={"interval": "10s", "maxInterval": "1s"}),
            "spec.polling",
            "interval (10s) must not exceed maxInterval (1s)",
        ),
        (
            _profile("p", polling={"maxInterval": "10m", "maxDuration": "1m"}),
            "spec.polling",
            "maxInterval (10m) must not exceed maxDuration (1m)",
        ),
        (_profile("p", polling={"multiplier": 0.5}), "spec.polling.multiplier", "greater than"),
        (_profile("p", polling={"jitter": 1.5}), "spec.polling.jitter", "less than"),
        (_profile("p", extends="Not_A_Name"), "spec.extends", "does not match"),
        (_profile("p", timeoutz={}), "spec.timeoutz", "unknown field"),
        (_policy("s", ttl="2h", maxLifetime="1h"), "spec", "maxLifetime (1h) must be at least ttl"),
        (_policy("s", maxMemory="lots"), "spec.maxMemory", "not a quantity"),
        (_policy("s", maxSessions=0), "spec.maxSessions", "greater than"),
        (_policy("s", cleanup={"schedule": "daily"}), "spec.cleanup.schedule", "cron"),
        (_policy("s", cleanup={"batchSize": 0}), "spec.cleanup.batchSize", "greater than"),
        (_policy("s", store={"keyPrefix": "a b"}), "spec.store.keyPrefix", "does not match"),
        (
            _policy("s", store={"keyPrefix": "redis://user:secret@redis:6379"}),
            "spec.store.keyPrefix",
            "put the URL in a Secret",
        ),
        (
            _profile("p", timeouts={"x": "1s"}, note="rediss://:pw@host"),
            "spec.note",
            "credentials must not be written inline",
        ),
    ],
)
def test_each_bad_field_is_named_with_its_reason(
    document: dict[str, object], field: str, reason: str
) -> None:
    resource, problems = parse_resource(document)
    assert resource is None
    assert [p.field for p in problems] == [field]
    assert reason.lower() in problems[0].reason.lower()


def test_credentials_never_reach_the_message() -> None:
    _, problems = parse_resource(_policy("s", store={"keyPrefix": "redis://u:hunter2@h"}))
    assert problems and all("hunter2" not in str(p) for p in problems)


def test_problems_carry_file_and_line() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: hourglass.dev/v1alpha1
        kind: TimeoutProfile
        metadata:
          name: p
        spec:
          timeouts:
            connect: 1s
            llmCall: soon
        """
    )
    parsed = parse_documents(load_text(text, "p.yaml").documents)
    assert [str(p) for p in parsed.problems] == [
        "p.yaml:8: TimeoutProfile/p: spec.timeouts.llmCall: 'soon' is not a duration: use a "
        "number with a unit (ns, us, ms, s, m, h, d) such as '500ms', '1m30s', '2h', "
        "or plain seconds"
    ]


def test_other_api_groups_are_ignored_and_unknown_kinds_reported() -> None:
    foreign = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert parse_resource(foreign) == (None, [])
    unknown = {"apiVersion": "hourglass.dev/v1alpha1", "kind": "Nope", "metadata": {"name": "x"}}
    _, problems = parse_resource(unknown)
    assert problems[0].field == "kind"


def test_inheritance_problems_are_reported() -> None:
    problems = _problems(
        _profile("orphan", extends="missing"),
        _profile("a", extends="b"),
        _profile("b", extends="a"),
    )
    assert any("orphan: spec.extends: parent TimeoutProfile 'missing'" in p for p in problems)
    assert any("inheritance cycle: a -> b -> a" in p for p in problems)
    assert any("inheritance cycle: b -> a -> b" in p for p in problems)


def test_children_of_an_invalid_parent_point_at_its_error() -> None:
    problems = _problems(
        _profile("base", timeouts={"llmCall": "soon"}),
        _profile("dev", extends="base"),
        _profile("tuned", extends="dev"),
        _profile("orphan", extends="ghost"),
    )
    base_error = next(p for p in problems if "TimeoutProfile/base:" in p)
    where = base_error.split(": TimeoutProfile/base: ")[0]  # specs.yaml:<line of llmCall>
    assert where.startswith("specs.yaml:")
    children = {
        p.split(": spec.extends: ")[0].split("/")[-1]: p for p in problems if "extends" in p
    }
    assert children["dev"].endswith(
        "spec.extends: parent TimeoutProfile 'base' is invalid: "
        f"fix its own error first ({where}: spec.timeouts.llmCall)"
    )
    assert children["tuned"].endswith(
        "spec.extends: ancestor 'dev' extends 'base', which is invalid: "
        f"fix its own error first ({where}: spec.timeouts.llmCall)"
    )
    assert not any("'base' does not exist" in p for p in problems)
    assert any(
        "orphan: spec.extends: parent TimeoutProfile 'ghost' does not exist" in p for p in problems
    )


def test_two_defaults_and_two_policies_in_one_namespace() -> None:
    problems = _problems(
        _profile("one", default=True),
        _profile("two", default=True),
        _policy("first"),
        _policy("second"),
    )
    defaults = [p for p in problems if "spec.default" in p]
    assert len(defaults) == 2
    assert any("SessionPolicy/second" in p and "one SessionPolicy" in p for p in problems)


def test_same_names_in_other_namespaces_do_not_clash() -> None:
    first = _profile("p", default=True)
    second = _profile("p", default=True)
    second["metadata"] = {"name": "p", "namespace": "other"}
    assert _problems(first, second) == []


def test_duplicate_definition_is_reported() -> None:
    problems = _problems(_profile("p"), _profile("p"))
    assert len(problems) == 1 and "defined twice" in problems[0]


def test_inherited_polling_is_checked_once_resolved() -> None:
    problems = _problems(
        _profile("parent", polling={"maxInterval": "2s"}),
        _profile("child", extends="parent", polling={"interval": "5s"}),
    )
    assert len(problems) == 1
    assert (
        "TimeoutProfile/child: spec.polling: interval (5s) must not exceed maxInterval"
        in (problems[0])
    )
    assert "inherited from 'parent'" in problems[0]
