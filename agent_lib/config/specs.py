"""Turning located YAML documents into spec models, and namespace-wide checks.

Validation has two levels: each document on its own (the pydantic models), and a
namespace as a whole (inheritance, one default profile, one SessionPolicy). Both
report `Problem`s located at the line of the offending field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from pydantic import ValidationError

from agent_lib.config._base import API_GROUP, CREDENTIALS_REASON, find_inline_credentials
from agent_lib.config.documents import Location, SourceDocument
from agent_lib.config.problems import Problem
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.suggest import did_you_mean
from agent_lib.config.timeout_profiles import TimeoutProfile

Resource = TimeoutProfile | SessionPolicy
KINDS: dict[str, type[TimeoutProfile] | type[SessionPolicy]] = {
    "TimeoutProfile": TimeoutProfile,
    "SessionPolicy": SessionPolicy,
}
DEFAULT_NAMESPACE = "default"

_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


@dataclass
class ParsedSpecs:
    """Valid resources grouped by namespace, and every problem found on the way."""

    by_namespace: dict[str, list[Resource]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    sources: dict[tuple[str, str, str], SourceDocument] = field(default_factory=dict)
    read: list[str] = field(default_factory=list)
    """The namespace of every spec document read, valid or not (what ``validate`` counts)."""
    skipped: int = 0
    """Documents of other API groups (not specs, so not checked)."""

    def locate(self, problem: Problem, location: Location = ()) -> Problem:
        """``problem`` with the file and line of its resource (and field, when known)."""
        source = self.sources.get((problem.namespace, problem.kind, problem.name))
        if source is None:
            return problem
        line = source.line_of(location) if location else source.line
        return replace(problem, file=source.file, line=line)


def parse_resource(
    data: Any, source: SourceDocument | None = None
) -> tuple[Resource | None, list[Problem]]:
    """A spec model from one document, or the problems that prevent it.

    Documents of other API groups are not ours: they give ``(None, [])``.
    """
    source = source or SourceDocument(data)
    if not isinstance(data, Mapping):
        return None, [_at(source, (), "", "", "expected a mapping (a Kubernetes object)")]
    api_version = str(data.get("apiVersion", ""))
    if not api_version.startswith(API_GROUP + "/"):
        return None, []
    kind = str(data.get("kind", ""))
    name = _name_of(data)
    model = KINDS.get(kind)
    if model is None:
        reason = f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
        return None, [_at(source, ("kind",), kind or "?", name, reason, field="kind")]
    credentials = find_inline_credentials(data.get("spec"), ("spec",))
    if credentials:
        return None, [
            _at(source, _split(path), kind, name, CREDENTIALS_REASON, field=path)
            for path in credentials
        ]
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, [
            _problem_from(error_item, source, kind, name) for error_item in error.errors()
        ]


def parse_documents(
    documents: Iterable[SourceDocument], default_namespace: str = DEFAULT_NAMESPACE
) -> ParsedSpecs:
    """Parse every document, then run the namespace-wide checks on what is valid."""
    parsed = ParsedSpecs()
    seen: set[tuple[str, str, str]] = set()
    invalid: dict[str, dict[str, Problem]] = {}
    for document in documents:
        resource, problems = parse_resource(document.data, document)
        parsed.problems.extend(problems)
        if resource is None and not problems:
            parsed.skipped += 1
            continue
        parsed.read.append(_namespace_of(document.data, default_namespace))
        if resource is None:
            _note_invalid_profile(invalid, document.data, problems, default_namespace)
            continue
        namespace = resource.metadata.namespace or default_namespace
        key = (namespace, resource.kind, resource.name)
        if key in seen:
            reason = f"defined twice in namespace {namespace!r}"
            parsed.problems.append(
                _at(
                    document,
                    ("metadata", "name"),
                    resource.kind,
                    resource.name,
                    reason,
                    field="metadata.name",
                    namespace=namespace,
                )
            )
            continue
        seen.add(key)
        parsed.sources[key] = document
        parsed.by_namespace.setdefault(namespace, []).append(resource)
    for namespace, resources in sorted(parsed.by_namespace.items()):
        for problem in check_namespace(namespace, resources, invalid.get(namespace)):
            parsed.problems.append(parsed.locate(problem, _split(problem.field)))
    return parsed


def _namespace_of(data: Any, default_namespace: str) -> str:
    metadata = data.get("metadata") if isinstance(data, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else default_namespace


def _note_invalid_profile(
    invalid: dict[str, dict[str, Problem]],
    data: Any,
    problems: list[Problem],
    default_namespace: str,
) -> None:
    """Remember a TimeoutProfile that failed validation, for its children's messages."""
    if not problems or not isinstance(data, Mapping) or data.get("kind") != "TimeoutProfile":
        return
    name = _name_of(data)
    metadata = data.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if name:
        by_name = invalid.setdefault(str(namespace or default_namespace), {})
        by_name.setdefault(name, problems[0])


def check_namespace(
    namespace: str,
    resources: Iterable[Resource],
    invalid_profiles: Mapping[str, Problem] | None = None,
) -> list[Problem]:
    """Rules that span resources: inheritance, a single default, a single SessionPolicy.

    ``invalid_profiles``: the namespace's TimeoutProfiles that failed validation, by name,
    with their first problem, so that their children point at it.
    """
    from agent_lib.config.inheritance import resolve_profiles

    resources = list(resources)
    profiles = [r for r in resources if isinstance(r, TimeoutProfile)]
    policies = sorted((r for r in resources if isinstance(r, SessionPolicy)), key=_age_key)
    problems = list(resolve_profiles(namespace, profiles, invalid_profiles).problems)
    defaults = sorted(p.name for p in profiles if p.spec.default)
    if len(defaults) > 1:
        reason = f"{len(defaults)} profiles are marked default in namespace {namespace!r}: " + (
            ", ".join(defaults) + "; exactly one may be"
        )
        problems.extend(
            Problem(reason, "spec.default", "TimeoutProfile", name, namespace) for name in defaults
        )
    for policy in policies[1:]:
        reason = (
            f"namespace {namespace!r} already has SessionPolicy {policies[0].name!r}; "
            "one SessionPolicy per namespace"
        )
        problems.append(Problem(reason, "metadata.name", "SessionPolicy", policy.name, namespace))
    counts = Counter((p.kind, p.name) for p in resources)
    for (kind, name), count in sorted(counts.items()):
        if count > 1:
            reason = f"defined {count} times in namespace {namespace!r}"
            problems.append(Problem(reason, "metadata.name", kind, name, namespace))
    return problems


def _age_key(resource: Resource) -> tuple[str, str]:
    created = getattr(resource.metadata, "creation_timestamp", None) or ""
    return (str(created), resource.name)


def _name_of(data: Mapping[str, Any]) -> str:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return str(name) if name is not None else "?"


def _split(path: str) -> Location:
    return tuple(int(p) if p.isdigit() else p for p in path.split(".")) if path else ()


def _problem_from(item: Mapping[str, Any], source: SourceDocument, kind: str, name: str) -> Problem:
    location: Location = tuple(p for p in item["loc"] if p != "[key]")
    is_key = "[key]" in item["loc"]
    reason = _FRIENDLY.get(item["type"], item["msg"])
    if item["type"] == "extra_forbidden" and location:
        model = KINDS.get(kind)
        known = _known_fields(model, location[:-1]) if model else []
        reason += did_you_mean(str(location[-1]), known)
    if item["type"] == "string_pattern_mismatch" and is_key:
        reason = f"timeout name {location[-1]!r} must be lowerCamelCase (such as llmCall)"
    elif item["type"] == "string_pattern_mismatch":
        reason = f"{item['input']!r:.60} does not match {item['ctx']['pattern']}"
    namespace = ""
    field = ".".join(str(p) for p in location)
    return _at(source, location, kind, name, reason, field=field, namespace=namespace)


def _at(
    source: SourceDocument,
    location: Location,
    kind: str,
    name: str,
    reason: str,
    *,
    field: str = "",
    namespace: str = "",
) -> Problem:
    return Problem(
        reason=reason,
        field=field,
        kind=kind,
        name=name,
        namespace=namespace,
        file=source.file,
        line=source.line_of(location),
    )


@cache
def _schema(model: type[TimeoutProfile] | type[SessionPolicy]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)


def _known_fields(
    model: type[TimeoutProfile] | type[SessionPolicy], location: Location
) -> list[str]:
    """The field names the model accepts at ``location`` (for a misspelling's suggestion)."""
    root = _schema(model)
    node: Any = root
    for step in (*location, None):
        while isinstance(node, Mapping):
            if "$ref" in node:
                node = root.get("$defs", {}).get(str(node["$ref"]).rsplit("/", 1)[-1], {})
            elif "anyOf" in node:
                node = next((n for n in node["anyOf"] if n.get("type") != "null"), {})
            else:
                break
        if step is None or not isinstance(node, Mapping):
            break
        properties = node.get("properties", {})
        if isinstance(step, str) and step in properties:
            node = properties[step]
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        elif isinstance(node.get("items"), Mapping):
            node = node["items"]
        else:
            return []
    return list(node.get("properties", {})) if isinstance(node, Mapping) else []
