"""Where a SessionManager's settings come from: arguments, environment, mounted policy.

Precedence, highest first: explicit arguments > environment variables (``REDIS_URL``,
``SESSION_TTL_SECONDS``, ``SESSION_CLEANUP_INTERVAL``, ``HOURGLASS_NAMESPACE``) >
the SessionPolicy in the mounted ``$HOURGLASS_CONFIG_DIR/hourglass.yaml`` > defaults.
The same reader serves ``hourglass cleanup --policy FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent_lib.durations import parse_duration
from agent_lib.errors import ConfigError
from agent_lib.quantity import parse_quantity

DEFAULT_CONFIG_DIR = "/etc/hourglass"
CONFIG_FILE = "hourglass.yaml"
MAX_POLICY_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SessionSettings:
    """Every knob of a session manager, resolved (``None`` means unlimited/off)."""

    url: str = "memory://"
    namespace: str = "default"
    key_prefix: str = "hourglass"
    ttl: float = 1800.0
    max_lifetime: float | None = 86400.0
    max_sessions: int | None = None
    max_memory: int | None = None
    batch_size: int = 500
    cleanup_interval: float | None = None

    def merged(self, **values: Any) -> SessionSettings:
        """A copy with every non-``None`` value of ``values`` applied."""
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown setting")
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def manager_options(self) -> dict[str, Any]:
        """Every setting but ``url``, as keyword arguments of ``SessionManager.from_url``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "url"}


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment variables give (only those that are set)."""
    values: dict[str, Any] = {}
    if url := environ.get("REDIS_URL", "").strip():
        values["url"] = url
    if namespace := environ.get("HOURGLASS_NAMESPACE", "").strip():
        values["namespace"] = namespace
    if ttl := environ.get("SESSION_TTL_SECONDS", "").strip():
        values["ttl"] = parse_duration(ttl, field="SESSION_TTL_SECONDS")
    if interval := environ.get("SESSION_CLEANUP_INTERVAL", "").strip():
        values["cleanup_interval"] = parse_duration(interval, field="SESSION_CLEANUP_INTERVAL")
    return values


def mounted_policy(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``$HOURGLASS_CONFIG_DIR/hourglass.yaml``, or nothing when absent."""
    folder = environ.get("HOURGLASS_CONFIG_DIR") or DEFAULT_CONFIG_DIR
    path = Path(folder) / CONFIG_FILE
    try:
        if not path.is_file():
            return {}
    except OSError as error:  # such as a folder this process may not search
        raise ConfigError(str(path), f"cannot read: {error.strerror or error}") from None
    return policy_file(path)


def policy_file(path: str | Path) -> dict[str, Any]:
    """Settings from a SessionPolicy document or a rendered ``hourglass.yaml``."""
    path = Path(path)
    field = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(field, f"cannot read: {error.strerror or error}") from None
    if len(raw) > MAX_POLICY_FILE_BYTES:
        raise ConfigError(field, f"larger than {MAX_POLICY_FILE_BYTES} bytes")
    try:
        documents = [d for d in yaml.safe_load_all(raw) if d is not None]
    except yaml.YAMLError as error:
        raise ConfigError(field, f"invalid YAML: {error}") from None
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "SessionPolicy":
            return _from_policy_document(document, field)
        if isinstance(document, dict) and (
            "sessionPolicy" in document or document.get("kind") == "HourglassConfig"
        ):
            return _from_rendered(document, raw, field)
    raise ConfigError(field, "no SessionPolicy document and no sessionPolicy section")


def _from_policy_document(document: dict[str, Any], field: str) -> dict[str, Any]:
    from agent_lib.config.session_config import SessionPolicy

    try:
        policy = SessionPolicy.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{field}: {where}", first["msg"]) from None
    spec = policy.spec
    values: dict[str, Any] = {
        "key_prefix": spec.store.key_prefix,
        "ttl": spec.ttl,
        "max_lifetime": spec.max_lifetime,
        "max_sessions": spec.max_sessions,
        "max_memory": spec.max_memory_bytes,
        "batch_size": spec.cleanup.batch_size,
    }
    if policy.metadata.namespace:
        values["namespace"] = policy.metadata.namespace
    return values


def _from_rendered(document: dict[str, Any], raw: bytes, field: str) -> dict[str, Any]:
    try:
        from agent_lib.config.bundle import parse_config
    except ImportError:
        return _from_rendered_dict(document, field)
    config = parse_config(raw, source=field)
    values: dict[str, Any] = {"namespace": config.namespace}
    policy = config.session_policy
    if policy is not None:
        values.update(
            key_prefix=policy.key_prefix,
            ttl=policy.ttl,
            max_lifetime=policy.max_lifetime,
            max_sessions=policy.max_sessions,
            max_memory=policy.max_memory_bytes,
            batch_size=policy.cleanup.batch_size,
        )
    return values


def _from_rendered_dict(document: dict[str, Any], field: str) -> dict[str, Any]:
    """Fallback reader of the ``sessionPolicy`` section when the bundle model is absent."""
    section = document.get("sessionPolicy") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{field}: sessionPolicy", "must be a mapping")
    values: dict[str, Any] = {}
    if isinstance(document.get("namespace"), str):
        values["namespace"] = document["namespace"]
    if "keyPrefix" in section:
        values["key_prefix"] = section["keyPrefix"]
    for key, name in (("ttl", "ttl"), ("maxLifetime", "max_lifetime")):
        if section.get(key) is not None:
            values[name] = parse_duration(section[key], field=f"sessionPolicy.{key}")
    if section.get("maxSessions") is not None:
        values["max_sessions"] = int(section["maxSessions"])
    memory = section.get("maxMemoryBytes") or section.get("maxMemory")
    if memory is not None:
        values["max_memory"] = parse_quantity(memory, field="sessionPolicy.maxMemory")
    return values


def resolve(
    explicit: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> SessionSettings:
    """Apply defaults, then the mounted policy, then the environment, then ``explicit``."""
    env = os.environ if environ is None else environ
    return (
        SessionSettings()
        .merged(**mounted_policy(env))
        .merged(**from_environment(env))
        .merged(**explicit)
    )
