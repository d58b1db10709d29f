"""The render core: a namespace's specs in, the ``hourglass-config`` ConfigMap out.

This is the contract between the operator and every agent. It is pure and
deterministic (the same specs in any order give the same bytes), and the operator,
``hourglass render`` and ``hourglass local`` all write exactly what it returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from agent_lib.config._base import API_VERSION
from agent_lib.config.documents import load_text
from agent_lib.config.inheritance import resolve_profiles
from agent_lib.config.problems import Problem
from agent_lib.config.revision import CONFIG_KEY as CONFIG_KEY
from agent_lib.config.revision import REVISION_KEY
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.specs import Resource, check_namespace
from agent_lib.config.timeout_profiles import TimeoutName, TimeoutProfile
from agent_lib.errors import ConfigError

CONFIGMAP_NAME = "hourglass-config"
HASH_ANNOTATION = "hourglass.dev/config-hash"
BUNDLE_KIND: Final = "HourglassConfig"
LABELS = {
    "app.kubernetes.io/name": "hourglass",
    "app.kubernetes.io/component": "config",
    "app.kubernetes.io/managed-by": "hourglass-operator",
}


class RenderError(ConfigError):
    """The specs of a namespace cannot be rendered; ``problems`` says why, per resource."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem("no problems given")
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first.field, f"{first.kind}/{first.name}: {first.reason}{more}")


# --- the rendered bundle, as agents parse it -------------------------------------------


class _BundleModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


Seconds = Annotated[float, Field(gt=0)]


class RenderedPolling(_BundleModel):
    interval: Seconds
    max_interval: Seconds
    multiplier: Annotated[float, Field(ge=1)]
    jitter: Annotated[float, Field(ge=0, le=1)]
    max_duration: Seconds


class RenderedProfile(_BundleModel):
    timeouts: dict[TimeoutName, Seconds]
    polling: RenderedPolling
    inherits_from: list[str] = Field(default_factory=list)


class RenderedCleanup(_BundleModel):
    schedule: str
    batch_size: int
    suspend: bool
    time_zone: str | None = None


class RenderedSessionPolicy(_BundleModel):
    name: str
    key_prefix: str
    ttl: Seconds
    max_lifetime: Seconds
    max_sessions: int | None = None
    max_memory: str | None = None
    max_memory_bytes: int | None = None
    cleanup: RenderedCleanup


class HourglassConfig(_BundleModel):
    """The content of ``hourglass.yaml``: every profile resolved, durations in seconds."""

    api_version: Literal["hourglass.dev/v1alpha1"] = API_VERSION
    kind: Literal["HourglassConfig"] = BUNDLE_KIND
    namespace: str
    default_profile: str | None = None
    profiles: dict[str, RenderedProfile] = Field(default_factory=dict)
    session_policy: RenderedSessionPolicy | None = None


def parse_config(text: str | bytes, source: str = CONFIG_KEY) -> HourglassConfig:
    """Parse a rendered ``hourglass.yaml``; a bad file raises `ConfigError` naming the field.

    The text goes through the same limits as specs (size, depth, alias bombs), since a
    mounted file can be anything.
    """
    loaded = load_text(text, source)
    if loaded.problems:
        raise ConfigError(source, loaded.problems[0].reason)
    if len(loaded.documents) > 1:
        raise ConfigError(source, f"expected one YAML document, found {len(loaded.documents)}")
    data = loaded.documents[0].data if loaded.documents else None
    if not isinstance(data, Mapping):
        raise ConfigError(source, "empty or not a mapping")
    try:
        return HourglassConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(field, first["msg"]) from None


# --- rendering --------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedConfig:
    namespace: str
    content: str
    """The ``hourglass.yaml`` text, what agents read."""
    hash: str
    configmap: dict[str, Any]
    config: HourglassConfig

    @property
    def yaml(self) -> str:
        """The ConfigMap as YAML, what ``hourglass render`` prints (no revision: see below)."""
        return dump_yaml(self.configmap)

    def configmap_at(self, revision: int) -> dict[str, Any]:
        """The ConfigMap as a writer stores it: ``configmap`` plus ``data.revision``.

        The revision orders versions (``agent_lib.config.revision``); it is left out of
        ``configmap`` so that ``hourglass render`` stays byte-for-byte reproducible.
        """
        metadata = dict(self.configmap["metadata"])
        data = {**self.configmap["data"], REVISION_KEY: str(revision)}
        return {**self.configmap, "metadata": metadata, "data": data}


def render_config(
    namespace: str,
    profiles: Iterable[TimeoutProfile],
    policies: Iterable[SessionPolicy] = (),
    owners: Iterable[Mapping[str, str]] | None = None,
) -> RenderedConfig:
    """Render one namespace, or raise `RenderError` listing every problem.

    ``owners`` are the resources the ConfigMap came from (``apiVersion``, ``kind``,
    ``name``, ``uid``), known only to the operator; they become ownerReferences.
    """
    profiles = sorted(profiles, key=lambda p: p.name)
    policies = sorted(policies, key=lambda p: p.name)
    resources: list[Resource] = [*profiles, *policies]
    problems = check_namespace(namespace, resources)
    if problems:
        raise RenderError(problems)
    resolution = resolve_profiles(namespace, profiles)
    defaults = [p.name for p in profiles if p.spec.default]
    bundle: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": BUNDLE_KIND,
        "namespace": namespace,
        "defaultProfile": defaults[0] if defaults else None,
        "profiles": {
            name: {
                "timeouts": {k: _number(v) for k, v in resolved.timeouts.items()},
                "polling": {k: _number(v) for k, v in resolved.polling.items()},
                "inheritsFrom": list(resolved.chain[1:]),
            }
            for name, resolved in sorted(resolution.profiles.items())
        },
        "sessionPolicy": _render_policy(policies[0]) if policies else None,
    }
    content = dump_yaml(bundle)
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    configmap = _configmap(namespace, content, digest, owners or ())
    return RenderedConfig(
        namespace=namespace,
        content=content,
        hash=digest,
        configmap=configmap,
        config=HourglassConfig.model_validate(bundle),
    )


def _render_policy(policy: SessionPolicy) -> dict[str, Any]:
    spec = policy.spec
    cleanup: dict[str, Any] = {
        "schedule": spec.cleanup.schedule,
        "batchSize": spec.cleanup.batch_size,
        "suspend": spec.cleanup.suspend,
    }
    if spec.cleanup.time_zone is not None:
        cleanup["timeZone"] = (
            spec.cleanup.time_zone
        )  # only when set: other hashes stay as they were
    return {
        "name": policy.name,
        "keyPrefix": spec.store.key_prefix,
        "ttl": _number(spec.ttl),
        "maxLifetime": _number(spec.max_lifetime),
        "maxSessions": spec.max_sessions,
        "maxMemory": spec.max_memory,
        "maxMemoryBytes": spec.max_memory_bytes,
        "cleanup": cleanup,
    }


def _configmap(
    namespace: str, content: str, digest: str, owners: Iterable[Mapping[str, str]]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": CONFIGMAP_NAME,
        "namespace": namespace,
        "labels": dict(LABELS),
        "annotations": {HASH_ANNOTATION: digest},
    }
    references = sorted(
        (
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["name"],
                "uid": owner["uid"],
                "blockOwnerDeletion": False,
                "controller": False,
            }
            for owner in owners
        ),
        key=lambda ref: (ref["kind"], ref["name"]),
    )
    if references:
        metadata["ownerReferences"] = references
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {CONFIG_KEY: content},
    }


def _number(seconds: float) -> float | int:
    return int(seconds) if float(seconds).is_integer() else seconds


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line strings as literal blocks, for readable ConfigMaps."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    """Deterministic YAML: keys in the order built, literal blocks, no aliases."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
