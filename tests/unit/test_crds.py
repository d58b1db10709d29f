"""The generated CRDs: structural, complete, and their CEL rules right (cel-python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hourglass_operator import crds

from agent_lib.config import SessionPolicy, TimeoutProfile, TimeoutProfileSpec
from hourglass_cli.crds import crds as crds_command
from tests.fixtures.k8s_schemas import (
    apply_defaults,
    cel_failures,
    custom_resource_errors,
    k8s_errors,
    load_all,
    openapi_schema,
)

_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_FORBIDDEN = {
    "$ref",
    "$defs",
    "definitions",
    "oneOf",
    "allOf",
    "not",
    "patternProperties",
    "$schema",
}


def _structural_problems(node: Any, path: str = "$", *, root: bool = True) -> list[str]:
    """Kubernetes' structural-schema rules (apiextensions validation), as far as they apply."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    problems = [f"{path}: forbidden keyword {key}" for key in _FORBIDDEN & node.keys()]
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if "anyOf" in node and not (int_or_string and node["anyOf"] == _INT_OR_STRING):
        problems.append(f"{path}: anyOf is only allowed as the int-or-string pair")
    if (
        not node.get("type")
        and not int_or_string
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        problems.append(f"{path}: every node needs a type")
    if int_or_string and "type" in node:
        problems.append(f"{path}: int-or-string nodes must not set type")
    extra = node.get("additionalProperties")
    if extra is not None and not isinstance(extra, dict):
        problems.append(f"{path}: additionalProperties must be a schema")
    if extra is not None and "properties" in node:
        problems.append(f"{path}: properties and additionalProperties are exclusive")
    if node.get("x-kubernetes-list-type") == "map" and not node.get("x-kubernetes-list-map-keys"):
        problems.append(f"{path}: list-type map needs list-map-keys")
    for name, child in node.get("properties", {}).items():
        if root and name == "metadata" and set(child) - {"type"}:
            problems.append(f"{path}.metadata: only `type: object` is allowed at the root")
        problems += _structural_problems(child, f"{path}.{name}", root=False)
    if isinstance(extra, dict):
        problems += _structural_problems(extra, f"{path}.*", root=False)
    if isinstance(node.get("items"), dict):
        problems += _structural_problems(node["items"], f"{path}[]", root=False)
    if "default" in node and "$ref" not in str(node):
        errors = list(jsonschema.Draft7Validator(node).iter_errors(node["default"]))
        problems += [f"{path}: default does not validate: {e.message}" for e in errors]
    return problems


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {doc["spec"]["names"]["kind"]: doc for doc in crds.crd_documents()}


def test_both_kinds_are_generated_in_a_stable_order() -> None:
    kinds = [doc["spec"]["names"]["kind"] for doc in crds.crd_documents()]
    assert kinds == ["TimeoutProfile", "SessionPolicy"]
    assert crds.render_all() == crds.render_all()


@pytest.mark.parametrize("kind", ["TimeoutProfile", "SessionPolicy"])
def test_schema_is_structural(documents: dict[str, dict[str, Any]], kind: str) -> None:
    assert _structural_problems(openapi_schema(documents[kind])) == []


def test_structural_checker_catches_what_pydantic_emits_raw() -> None:
    raw = TimeoutProfileSpec.model_json_schema(by_alias=True)
    problems = _structural_problems(raw)
    assert any("$defs" in p or "$ref" in p for p in problems)
    assert any("anyOf" in p for p in problems)
    assert any("patternProperties" in p for p in problems)


@pytest.mark.parametrize("kind", ["TimeoutProfile", "SessionPolicy"])
def test_crd_document_is_valid_for_kubernetes(
    documents: dict[str, dict[str, Any]], kind: str
) -> None:
    assert k8s_errors(documents[kind], "1.33.0") == []


@pytest.mark.parametrize(
    ("kind", "plural", "short", "columns"),
    [
        (
            "TimeoutProfile",
            "timeoutprofiles",
            "tp",
            ["Ready", "Applied", "Default", "Hash", "Tuned", "Age"],
        ),
        (
            "SessionPolicy",
            "sessionpolicies",
            "sp",
            ["Ready", "Applied", "TTL", "Last cleanup", "Age"],
        ),
    ],
)
def test_names_scope_subresource_and_columns(
    documents: dict[str, dict[str, Any]], kind: str, plural: str, short: str, columns: list[str]
) -> None:
    doc = documents[kind]
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{plural}.hourglass.dev"
    assert spec["group"] == "hourglass.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["hourglass"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    status = openapi_schema(doc)["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions", "configHash"} <= status.keys()
    assert status["conditions"]["items"]["properties"]["status"]["enum"] == [
        "True",
        "False",
        "Unknown",
    ]


def test_durations_describe_the_input_shape(documents: dict[str, dict[str, Any]]) -> None:
    schema = openapi_schema(documents["TimeoutProfile"])["properties"]["spec"]["properties"]
    llm = schema["timeouts"]["additionalProperties"]
    assert llm["x-kubernetes-int-or-string"] is True
    assert llm["anyOf"] == _INT_OR_STRING
    assert llm["pattern"] == crds.DURATION_PATTERN
    assert llm["maxLength"] == crds.MAX_DURATION_LENGTH
    assert schema["polling"]["properties"]["multiplier"]["minimum"] == 1


def test_defaults_are_durations_as_users_write_them(documents: dict[str, dict[str, Any]]) -> None:
    spec = openapi_schema(documents["SessionPolicy"])["properties"]["spec"]
    assert spec["properties"]["ttl"]["default"] == "30m"
    assert spec["properties"]["maxLifetime"]["default"] == "24h"
    defaulted = apply_defaults(spec, {})
    assert defaulted["cleanup"] == {"schedule": "*/5 * * * *", "batchSize": 500, "suspend": False}
    assert defaulted["store"] == {"keyPrefix": "hourglass"}
    parsed = SessionPolicy.model_validate({"metadata": {"name": "x"}, "spec": defaulted})
    assert parsed.spec == SessionPolicy.model_validate({"metadata": {"name": "x"}}).spec


@pytest.mark.parametrize("kind", ["TimeoutProfile", "SessionPolicy"])
def test_every_cel_rule_compiles_and_bounds_its_strings(
    documents: dict[str, dict[str, Any]], kind: str
) -> None:
    rules = _rules(openapi_schema(documents[kind]))
    assert rules
    for node, rule in rules:
        celpy.Environment().compile(rule["rule"])
        assert rule["message"] and rule["fieldPath"].startswith(".")
        for name, child in node["properties"].items():
            if f"self.{name}" in rule["rule"] and child.get("x-kubernetes-int-or-string"):
                # The API server sizes int-or-string values at the maximum request size,
                # whatever their maxLength: a regex over one exceeds the cost budget.
                assert f"self.{name}.matches(" not in rule["rule"]


def _rules(node: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = [(node, rule) for rule in node.get("x-kubernetes-validations", [])]
    for child in node.get("properties", {}).values():
        found += _rules(child)
    return found


def _polling(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return openapi_schema(documents["TimeoutProfile"])["properties"]["spec"]["properties"][
        "polling"
    ]


GOOD_POLLING = [
    {"interval": "1s", "maxInterval": "10s", "maxDuration": "5m", "multiplier": 2, "jitter": 0.1},
    {"interval": 1, "maxInterval": "1m", "maxDuration": 3600},
    {"interval": "1.5", "maxInterval": "1500ms", "maxDuration": "1h30m"},
    {"interval": "500ms", "maxInterval": "500ms", "maxDuration": "500ms", "jitter": 0},
    {"multiplier": 1, "jitter": 1},
    {"maxDuration": "10m"},
    {"interval": ".5s", "maxInterval": "1h", "maxDuration": "1.5h"},
]
BAD_POLLING = [
    ({"interval": "10s", "maxInterval": "5s"}, "interval must not exceed maxInterval"),
    ({"interval": 90, "maxInterval": "1m"}, "interval must not exceed maxInterval"),
    ({"interval": "90", "maxInterval": "1m"}, "interval must not exceed maxInterval"),
    ({"maxInterval": "2h", "maxDuration": "1h30m"}, "maxInterval must not exceed maxDuration"),
    ({"interval": "1m", "maxDuration": "30s"}, "interval must not exceed maxDuration"),
    ({"interval": "2", "maxInterval": "1500ms"}, "interval must not exceed maxInterval"),
    ({"maxInterval": "1h1s", "maxDuration": 3600}, "maxInterval must not exceed maxDuration"),
    ({"multiplier": 0.5}, "multiplier must be at least 1"),
    ({"jitter": 1.5}, "jitter must be between 0 and 1"),
    ({"jitter": -0.1}, "jitter must be between 0 and 1"),
]


@pytest.mark.parametrize("polling", GOOD_POLLING)
def test_polling_rules_accept_good_values(
    documents: dict[str, dict[str, Any]], polling: dict[str, Any]
) -> None:
    assert cel_failures(_polling(documents), polling) == []


@pytest.mark.parametrize(("polling", "message"), BAD_POLLING)
def test_polling_rules_reject_bad_values(
    documents: dict[str, dict[str, Any]], polling: dict[str, Any], message: str
) -> None:
    failures = cel_failures(_polling(documents), polling)
    assert any(message in f for f in failures), failures


@pytest.mark.parametrize(("polling", "message"), BAD_POLLING)
def test_cel_and_the_model_agree_on_bad_polling(polling: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="polling"):
        TimeoutProfile.model_validate({"metadata": {"name": "x"}, "spec": {"polling": polling}})


def test_rules_let_forms_cel_cannot_read_through_for_the_operator(
    documents: dict[str, dict[str, Any]],
) -> None:
    """``7d`` is valid for the model, but Go's duration() has no ``d``: CEL skips it."""
    assert cel_failures(_polling(documents), {"interval": "1d", "maxInterval": "1m"}) == []
    assert cel_failures(_polling(documents), {"interval": "2s", "maxInterval": "5µs"}) == []
    with pytest.raises(ValueError, match="must not exceed"):
        TimeoutProfile.model_validate(
            {
                "metadata": {"name": "x"},
                "spec": {"polling": {"interval": "1d", "maxInterval": "1m"}},
            }
        )


def _policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "SessionPolicy",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "spec",
    [{}, {"ttl": "1h", "maxLifetime": "1h"}, {"ttl": 60, "maxLifetime": "2m"}, {"ttl": "23h"}],
)
def test_lifetime_rule_accepts_good_policies(spec: dict[str, Any]) -> None:
    assert custom_resource_errors(_policy(spec)) == []


@pytest.mark.parametrize(
    "spec",
    [{"ttl": "2h", "maxLifetime": "1h"}, {"ttl": "25h"}, {"ttl": 3600, "maxLifetime": "59m"}],
)
def test_lifetime_rule_rejects_bad_policies(spec: dict[str, Any]) -> None:
    """``{"ttl": "25h"}`` fails only once the maxLifetime default (24h) is applied."""
    assert custom_resource_errors(_policy(spec)) == [
        ".spec.maxLifetime: maxLifetime must be at least ttl"
    ]
    with pytest.raises(ValueError, match="maxLifetime"):
        SessionPolicy.model_validate({"metadata": {"name": "p"}, "spec": spec})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"timeouts": {"llmCall": "5 min"}}, "does not match"),
        ({"timeouts": {"llmCall": 0}}, "less than the minimum"),
        ({"timeouts": {"llmCall": 3_000_000}}, "greater than the maximum"),
        ({"timeouts": {"llmCall": "1" * 65 + "s"}}, "is too long"),
        ({"extends": "Not_A_Name"}, "does not match"),
        ({"default": "yes"}, "is not of type 'boolean'"),
        ({"polling": {"multiplier": 0.5}}, "less than the minimum"),
        ({"timeoutz": {}}, "unknown field"),
    ],
)
def test_schema_rejects_bad_profiles(spec: dict[str, Any], fragment: str) -> None:
    doc = {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": "TimeoutProfile",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": spec,
    }
    errors = custom_resource_errors(doc)
    assert any(fragment in e for e in errors), errors


def test_crds_command_prints_the_generator_output() -> None:
    result = CliRunner().invoke(crds_command, [])
    assert result.exit_code == 0, result.output
    assert result.output == crds.render_all()
    assert [d["kind"] for d in load_all(result.output)] == ["CustomResourceDefinition"] * 2


def test_crds_command_writes_one_file_per_crd(tmp_path: Path) -> None:
    result = CliRunner().invoke(crds_command, ["--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [
        "sessionpolicies.hourglass.dev.yaml",
        "timeoutprofiles.hourglass.dev.yaml",
    ]
    joined = "".join(
        (tmp_path / "out" / crds.file_name(doc)).read_text(encoding="utf-8")
        for doc in crds.crd_documents()
    )
    assert joined == crds.render_all()
    for f in files:
        (doc,) = load_all(f.read_text(encoding="utf-8"))
        assert crds.file_name(doc) == f.name


def test_values_schema_definitions_refuse_unknown_keys() -> None:
    definitions = crds.values_schema_definitions()
    validator = jsonschema.Draft7Validator(definitions["timeoutProfileSpec"])
    assert list(validator.iter_errors({"timeouts": {"llmCall": "2m"}})) == []
    assert [e.message for e in validator.iter_errors({"timeoutz": {}})] == [
        "Additional properties are not allowed ('timeoutz' was unexpected)"
    ]
    assert "x-kubernetes-int-or-string" not in yaml.safe_dump(definitions)


def test_every_cel_rule_has_a_bad_case_here(documents: dict[str, dict[str, Any]]) -> None:
    """A new rule in the generator must come with a case above that it rejects."""
    messages = {
        rule["message"] for doc in documents.values() for _, rule in _rules(openapi_schema(doc))
    }
    covered = {message for _, message in BAD_POLLING} | {
        "maxLifetime must be at least ttl",
        "a TimeoutProfile cannot extend itself",
    }
    assert messages == covered


@pytest.mark.parametrize("kind", ["TimeoutProfile", "SessionPolicy"])
def test_every_spec_field_is_explained(documents: dict[str, dict[str, Any]], kind: str) -> None:
    """`kubectl explain tp.spec.polling.interval` has something to say."""

    def missing(node: dict[str, Any], path: str) -> list[str]:
        out = [] if node.get("description") else [path]
        for name, child in node.get("properties", {}).items():
            out += missing(child, f"{path}.{name}")
        return out

    spec = openapi_schema(documents[kind])["properties"]["spec"]
    assert missing(spec, "spec") == []


def test_a_profile_cannot_extend_itself() -> None:
    def profile(extends: str) -> dict[str, Any]:
        return {
            "apiVersion": "hourglass.dev/v1alpha1",
            "kind": "TimeoutProfile",
            "metadata": {"name": "base", "namespace": "n"},
            "spec": {"extends": extends},
        }

    assert custom_resource_errors(profile("parent")) == []
    assert custom_resource_errors(profile("base")) == [
        ".spec.extends: a TimeoutProfile cannot extend itself"
    ]


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        ("*/5 * * * *", True),
        ("0 3 * * 1-5", True),
        ("@hourly", True),  # Kubernetes' descriptors are CronJob schedules too
        ("@every 1h", False),
        ("0 0 * * 5#3", False),
        ("TZ=UTC 0 3 * * *", False),
        ("* * *", False),
    ],
)
def test_cleanup_schedule_needs_five_fields_or_a_descriptor(schedule: str, ok: bool) -> None:
    errors = custom_resource_errors(_policy({"cleanup": {"schedule": schedule}}))
    assert (errors == []) is ok, errors
