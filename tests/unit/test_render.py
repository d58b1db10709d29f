"""The render core: deterministic, fully resolved, refuses to render anything invalid."""

from __future__ import annotations

import hashlib
import random

import pytest
import yaml

from agent_lib.config import (
    CONFIG_KEY,
    CONFIGMAP_NAME,
    HASH_ANNOTATION,
    RenderError,
    parse_config,
    parse_resource,
    render_config,
)
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.timeout_profiles import TimeoutProfile
from tests.unit._helpers import document


def _profile(name: str, **spec: object) -> TimeoutProfile:
    resource, problems = parse_resource(document("TimeoutProfile", name, **spec))
    assert problems == [] and isinstance(resource, TimeoutProfile)
    return resource


def _policy(name: str, **spec: object) -> SessionPolicy:
    resource, problems = parse_resource(document("SessionPolicy", name, **spec))
    assert problems == [] and isinstance(resource, SessionPolicy)
    return resource


PROFILES = [
    _profile("base", timeouts={"connect": "5s", "llmCall": "60s"}, polling={"interval": "1s"}),
    _profile("prod", default=True, extends="base", timeouts={"llmCall": "45s", "toolCall": 20}),
    _profile("prod-strict", extends="prod", timeouts={"connect": "1s"}),
]
POLICY = _policy(
    "sessions",
    store={"urlSecretRef": {"name": "redis", "key": "url"}, "keyPrefix": "agents"},
    ttl="15m",
    maxLifetime="8h",
    maxMemory="64Mi",
)


def test_profiles_are_resolved_through_extends() -> None:
    config = render_config("agents-prod", PROFILES, [POLICY]).config
    strict = config.profiles["prod-strict"]
    assert strict.timeouts == {"connect": 1.0, "llmCall": 45.0, "toolCall": 20.0}
    assert strict.inherits_from == ["prod", "base"]
    assert strict.polling.interval == 1.0
    assert config.default_profile == "prod"


def test_session_policy_is_rendered_without_its_secret_reference() -> None:
    rendered = render_config("agents-prod", PROFILES, [POLICY])
    assert "urlSecretRef" not in rendered.content and "redis" not in rendered.content
    policy = rendered.config.session_policy
    assert policy is not None
    assert (policy.ttl, policy.max_lifetime, policy.key_prefix) == (900, 28800, "agents")
    assert policy.max_memory_bytes == 64 * 2**20


def test_configmap_shape_and_content_hash() -> None:
    rendered = render_config("agents-prod", PROFILES, [POLICY])
    configmap = rendered.configmap
    assert configmap["metadata"]["name"] == CONFIGMAP_NAME
    assert configmap["metadata"]["namespace"] == "agents-prod"
    content = configmap["data"][CONFIG_KEY]
    assert content == rendered.content
    expected = hashlib.sha256(content.encode()).hexdigest()[:16]
    assert configmap["metadata"]["annotations"][HASH_ANNOTATION] == expected == rendered.hash
    assert yaml.safe_load(rendered.yaml) == configmap


def test_rendering_is_deterministic_in_any_order() -> None:
    reference = render_config("ns", PROFILES, [POLICY]).yaml
    shuffled = list(PROFILES)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert render_config("ns", shuffled, [POLICY]).yaml == reference


def test_any_change_changes_the_hash() -> None:
    before = render_config("ns", PROFILES, [POLICY]).hash
    changed = [*PROFILES[:2], _profile("prod-strict", extends="prod", timeouts={"connect": "2s"})]
    assert render_config("ns", changed, [POLICY]).hash != before


def test_owner_references_are_sorted_and_not_controllers() -> None:
    owners = [
        {"apiVersion": "hourglass.dev/v1alpha1", "kind": "TimeoutProfile", "name": n, "uid": n}
        for n in ("z", "a")
    ]
    refs = render_config("ns", PROFILES, owners=owners).configmap["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["a", "z"]
    assert not any(r["controller"] for r in refs)


def test_parse_config_round_trips() -> None:
    rendered = render_config("ns", PROFILES, [POLICY])
    assert parse_config(rendered.content) == rendered.config


@pytest.mark.parametrize(
    ("profiles", "policies", "needle"),
    [
        ([_profile("a", extends="nope")], [], "does not exist"),
        ([_profile("a", extends="b"), _profile("b", extends="a")], [], "inheritance cycle"),
        ([_profile("a", default=True), _profile("b", default=True)], [], "marked default"),
        ([_profile("a")], [_policy("p"), _policy("q")], "one SessionPolicy per namespace"),
    ],
)
def test_invalid_namespaces_are_not_rendered(
    profiles: list[TimeoutProfile], policies: list[SessionPolicy], needle: str
) -> None:
    with pytest.raises(RenderError) as caught:
        render_config("ns", profiles, policies)
    assert any(needle in p.reason for p in caught.value.problems)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "hourglass.yaml"),
        ("[1, 2]", "hourglass.yaml"),
        ("namespace: ns\nprofiles: {p: {timeouts: {a: -1}}}", "profiles.p.timeouts.a"),
        ("kind: Other\nnamespace: ns", "kind"),
        ("a: [unclosed", "hourglass.yaml"),
    ],
)
def test_parse_config_names_the_bad_field(text: str, field: str) -> None:
    from agent_lib.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.field == field
