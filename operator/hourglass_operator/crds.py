"""The two CustomResourceDefinitions, generated from the agent_lib spec models.

The models are the single source of truth; this module only translates pydantic's
JSON Schema into a Kubernetes *structural* schema (no ``$ref``, no ``anyOf`` except
the int-or-string form, no ``additionalProperties: false``, no ``patternProperties``,
no ``title``) and adds what JSON Schema cannot say: the status subresource, printer
columns, and the cross-field rules as ``x-kubernetes-validations`` (CEL).

Durations are float seconds inside the models but the CRD describes what users
*write*: a Go-style string (``DURATION_PATTERN``) or whole seconds as an integer.
CEL's ``duration()`` follows Go's ``time.ParseDuration``, which knows neither the
``d`` unit nor ``µs`` spelled with a micro sign nor bare numbers in strings. The
generated rules therefore convert integers and numeric strings to seconds
themselves, compare Go-style strings with ``duration()``, and let a value in any
other accepted form (``7d``, ``5µs``) pass the CEL check: the operator's model
validation still rejects such a spec with ``Valid=False`` and a Warning Event.
Timeout *names* are not checked in CEL either (a regex over every map key has an
unbounded estimated cost); the operator and ``hourglass validate`` check them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from agent_lib.config.session_config import SessionPolicySpec
from agent_lib.config.timeout_profiles import TimeoutProfileSpec
from agent_lib.durations import DURATION_PATTERN, MAX_DURATION_SECONDS, format_duration

GROUP = "hourglass.dev"
VERSION = "v1alpha1"
CATEGORY = "hourglass"
MAX_DURATION_LENGTH = 64
"""Longest duration string the parser accepts; also bounds the CEL cost estimate."""

_NUMERIC_SECONDS = r"^[0-9]+(\.[0-9]+)?$"
_GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
_DROPPED_KEYS = frozenset({"title", "additionalProperties", "$defs"})

Schema = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """One ``x-kubernetes-validations`` entry, attached to the object at ``path``."""

    path: tuple[str, ...]
    rule: str
    message: str
    field_path: str


@dataclass(frozen=True)
class Kind:
    """Everything about one kind that is not derived from its model."""

    kind: str
    plural: str
    short_name: str
    spec_model: type[BaseModel]
    columns: tuple[Mapping[str, Any], ...]
    rules: tuple[Rule, ...]
    status: Schema


def duration_seconds_cel(expr: str) -> str:
    """CEL that turns the int-or-string duration ``expr`` into a CEL ``duration``.

    Only valid where `duration_comparable_cel` holds for ``expr``.
    """
    return (
        f"(type({expr}) == int ? duration(string({expr}) + 's') : "
        f"{expr}.matches('{_NUMERIC_SECONDS}') ? duration({expr} + 's') : duration({expr}))"
    )


def duration_comparable_cel(expr: str) -> str:
    """CEL that is true when ``expr`` is in a form CEL's ``duration()`` can read."""
    return (
        f"(type({expr}) == int || {expr}.matches('{_NUMERIC_SECONDS}') || "
        f"{expr}.matches('{_GO_DURATION}'))"
    )


def _ordered_rule(path: tuple[str, ...], low: str, high: str) -> Rule:
    a, b = f"self.{low}", f"self.{high}"
    rule = (
        f"!has({a}) || !has({b}) || !{duration_comparable_cel(a)} || "
        f"!{duration_comparable_cel(b)} || {duration_seconds_cel(a)} <= {duration_seconds_cel(b)}"
    )
    return Rule(path, rule, f"{low} must not exceed {high}", f".{low}")


_POLLING = ("spec", "polling")
_PROFILE_RULES = (
    _ordered_rule(_POLLING, "interval", "maxInterval"),
    _ordered_rule(_POLLING, "maxInterval", "maxDuration"),
    _ordered_rule(_POLLING, "interval", "maxDuration"),
    Rule(
        _POLLING,
        "!has(self.multiplier) || self.multiplier >= 1.0",
        "multiplier must be at least 1",
        ".multiplier",
    ),
    Rule(
        _POLLING,
        "!has(self.jitter) || (self.jitter >= 0.0 && self.jitter <= 1.0)",
        "jitter must be between 0 and 1",
        ".jitter",
    ),
)
_POLICY_RULES = (
    Rule(
        ("spec",),
        _ordered_rule(("spec",), "ttl", "maxLifetime").rule,
        "maxLifetime must be at least ttl",
        ".maxLifetime",
    ),
)

_CONDITION: Schema = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string", "maxLength": 316},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string", "maxLength": 1024},
        "message": {"type": "string", "maxLength": 32768},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
    },
}


def _status_schema(extra: Mapping[str, Schema]) -> Schema:
    return {
        "type": "object",
        "description": "Written by the operator. Unknown fields are kept for kopf's own records.",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "conditions": {
                "type": "array",
                "items": _CONDITION,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "configHash": {"type": "string", "maxLength": 128},
            **extra,
        },
    }


_LAST_CLEANUP: Schema = {
    "type": "object",
    "description": "Summary of the last finished cleanup Job, from its termination message.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "job": {"type": "string", "maxLength": 253},
        "succeeded": {"type": "boolean"},
        "time": {"type": "string", "format": "date-time"},
        "scanned": {"type": "integer", "minimum": 0},
        "expired": {"type": "integer", "minimum": 0},
        "evicted": {"type": "integer", "minimum": 0},
        "lifetime_ended": {"type": "integer", "minimum": 0},
        "bytes_freed": {"type": "integer", "minimum": 0},
        "duration_s": {"type": "number", "minimum": 0},
        "message": {"type": "string", "maxLength": 4096},
    },
}

_READY = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: tuple[Kind, ...] = (
    Kind(
        kind="TimeoutProfile",
        plural="timeoutprofiles",
        short_name="tp",
        spec_model=TimeoutProfileSpec,
        columns=(
            _READY,
            {"name": "Default", "type": "boolean", "jsonPath": ".spec.default"},
            {"name": "Hash", "type": "string", "jsonPath": ".status.configHash"},
            _AGE,
        ),
        rules=_PROFILE_RULES,
        status=_status_schema({}),
    ),
    Kind(
        kind="SessionPolicy",
        plural="sessionpolicies",
        short_name="sp",
        spec_model=SessionPolicySpec,
        columns=(
            _READY,
            {"name": "TTL", "type": "string", "jsonPath": ".spec.ttl"},
            {"name": "Last cleanup", "type": "date", "jsonPath": ".status.lastCleanup.time"},
            _AGE,
        ),
        rules=_POLICY_RULES,
        status=_status_schema({"lastCleanup": _LAST_CLEANUP}),
    ),
)


def spec_schema(model: type[BaseModel]) -> Schema:
    """The structural ``openAPIV3Schema`` of one spec model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def crd(kind: Kind) -> dict[str, Any]:
    """The ``CustomResourceDefinition`` document of ``kind``."""
    spec = spec_schema(kind.spec_model)
    spec["default"] = {}
    spec["description"] = f"Desired state of the {kind.kind}; see agent_lib.config."
    root: Schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": copy.deepcopy(kind.status),
        },
    }
    for rule in kind.rules:
        _node(root, rule.path).setdefault("x-kubernetes-validations", []).append(
            {
                "rule": rule.rule,
                "message": rule.message,
                "fieldPath": rule.field_path,
                "reason": "FieldValueInvalid",
            }
        )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "hourglass",
                "app.kubernetes.io/part-of": "hourglass",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short_name],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in kind.columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd_documents() -> list[dict[str, Any]]:
    """Both CRDs, TimeoutProfile first."""
    return [crd(kind) for kind in KINDS]


def file_name(document: Mapping[str, Any]) -> str:
    """``timeoutprofiles.hourglass.dev.yaml``: the file a CRD is committed as."""
    return f"{document['metadata']['name']}.yaml"


def render_document(document: Mapping[str, Any]) -> str:
    """One CRD as a YAML document starting with ``---``, exactly as committed."""
    body = yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False
    )
    return f"---\n# Generated by `hourglass crds` from the agent_lib.config models. Do not edit.\n{body}"


def render_all() -> str:
    """What ``hourglass crds`` prints: every CRD, one YAML document each."""
    return "".join(render_document(document) for document in crd_documents())


def write_files(directory: Path) -> list[Path]:
    """Write one file per CRD into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for document in crd_documents():
        path = directory / file_name(document)
        path.write_text(render_document(document), encoding="utf-8")
        written.append(path)
    return written


def _node(root: Schema, path: tuple[str, ...]) -> Schema:
    node = root
    for part in path:
        node = node["properties"][part]
    return node


def _structural(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    node = _without_null_branch(node)
    if "$ref" in node:
        return _structural(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "patternProperties":
            (item,) = value.values()
            out["additionalProperties"] = _structural(item, defs)
            continue
        out[key] = (
            {name: _structural(child, defs) for name, child in value.items()}
            if key == "properties"
            else _structural(value, defs)
        )
    if "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        out["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if out.get("type") == "object" and _has_nested_defaults(out):
        out.setdefault("default", {})
    return _int_or_string(out)


def _without_null_branch(node: Schema) -> Schema:
    """``anyOf: [X, {type: null}]`` (an optional field) becomes ``X`` plus node's own keys."""
    branches = node.get("anyOf")
    if not isinstance(branches, list):
        return node
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1:
        return node
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**kept[0], **rest}


def _has_nested_defaults(node: Schema) -> bool:
    return any("default" in child for child in node.get("properties", {}).values())


def _int_or_string(node: Schema) -> Schema:
    """Complete an int-or-string node: the exact ``anyOf`` Kubernetes allows, and bounds."""
    if not node.get("x-kubernetes-int-or-string"):
        return node
    node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    node["maxLength"] = MAX_DURATION_LENGTH
    if node.get("pattern") == DURATION_PATTERN:
        node["minimum"] = 1
        node["maximum"] = int(MAX_DURATION_SECONDS)
        if isinstance(node.get("default"), int | float):
            node["default"] = format_duration(float(node["default"]))
    else:
        node["minimum"] = 0
    return node


VALUES_SCHEMA_DEFINITIONS = {
    "timeoutProfileSpec": TimeoutProfileSpec,
    "sessionPolicySpec": SessionPolicySpec,
}
"""The ``definitions`` of the Helm chart's values.schema.json that come from models."""


def values_schema_definitions() -> dict[str, Schema]:
    """Plain JSON Schema of each spec, for the chart's values.schema.json.

    Unlike the CRD schema, unknown keys are refused (a typo in a values file should
    fail ``helm install`` with the key's name, not be pruned silently).
    """
    return {
        name: _closed(_plain(spec_schema(model)))
        for name, model in VALUES_SCHEMA_DEFINITIONS.items()
    }


def sync_values_schema(path: Path) -> None:
    """Rewrite the model-derived ``definitions`` of the values.schema.json at ``path``."""
    document = json.loads(path.read_text(encoding="utf-8"))
    document.setdefault("definitions", {}).update(values_schema_definitions())
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _plain(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: ({k: _plain(v) for k, v in value.items()} if key == "properties" else _plain(value))
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key != "default"
    }


def _closed(node: Any) -> Any:
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: ({k: _closed(v) for k, v in value.items()} if key == "properties" else _closed(value))
        for key, value in node.items()
    }
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
