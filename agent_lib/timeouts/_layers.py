"""The precedence layers under `TimeoutManager`, each read on its own.

From the lowest up: the built-in profiles (packaged, rendered by the same core as the
operator) and the environment detection that picks one; the mounted ``hourglass.yaml``
and the profile chosen in it; the ``HOURGLASS_TIMEOUT_*`` / ``SESSION_TTL_SECONDS``
variables; code overrides. The manager merges them into one snapshot; `poll` takes
its default policy from here, so neither imports the other's module.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from agent_lib.config import CONFIG_KEY, HourglassConfig, load_text
from agent_lib.config.bundle import RenderedPolling, RenderedProfile
from agent_lib.config.documents import MAX_FILE_BYTES
from agent_lib.config.suggest import did_you_mean
from agent_lib.config.timeout_profiles import TIMEOUT_NAME_PATTERN, TimeoutProfile
from agent_lib.durations import parse_duration
from agent_lib.errors import ConfigError

DEFAULT_CONFIG_DIR: Final = "/etc/hourglass"
ENV_CONFIG_DIR: Final = "HOURGLASS_CONFIG_DIR"
ENV_PROFILE: Final = "HOURGLASS_PROFILE"
ENV_ENVIRONMENT: Final = "HOURGLASS_ENV"
ENV_TIMEOUT_PREFIX: Final = "HOURGLASS_TIMEOUT_"
ENV_SESSION_TTL: Final = "SESSION_TTL_SECONDS"
ENV_POD_NAMESPACE: Final = "POD_NAMESPACE"
SERVICEACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
NAMESPACE_FILE: Final = f"{SERVICEACCOUNT_DIR}/namespace"
FALLBACK_ENVIRONMENT: Final = "dev"

_NAME = re.compile(TIMEOUT_NAME_PATTERN)


# --- built-in profiles and the environment ------------------------------------------


@functools.cache
def builtin_bundle() -> tuple[HourglassConfig, str]:
    """The packaged built-in profiles, rendered once through the same core as the operator."""
    from agent_lib.config import parse_documents, render_config

    resource = importlib.resources.files("agent_lib") / "builtin" / "timeout_profiles.yaml"
    loaded = load_text(resource.read_bytes(), "agent_lib/builtin/timeout_profiles.yaml")
    parsed = parse_documents(loaded.documents)
    problems = loaded.problems + parsed.problems
    if problems:
        raise ConfigError("builtin", f"built-in profiles are invalid: {problems[0]}")
    (namespace, resources), *_ = parsed.by_namespace.items()
    profiles = [r for r in resources if isinstance(r, TimeoutProfile)]
    rendered = render_config(namespace, profiles)
    return rendered.config, rendered.hash


def builtin_profiles() -> list[str]:
    """Names of the built-in profiles (``base``, ``dev``, ``prod``, ``staging``)."""
    return sorted(builtin_bundle()[0].profiles)


def detect_environment(
    environ: Mapping[str, str] | None = None, namespace_file: str | Path = NAMESPACE_FILE
) -> str:
    """The built-in profile to fall back to when no ``hourglass.yaml`` is mounted."""
    environ = os.environ if environ is None else environ
    known = builtin_profiles()
    profile = environ.get(ENV_PROFILE, "").strip()
    if profile in known:
        return profile
    explicit = environ.get(ENV_ENVIRONMENT, "").strip()
    if explicit:
        if explicit not in known:
            raise ConfigError(
                ENV_ENVIRONMENT, f"{explicit!r} is not a built-in profile ({', '.join(known)})"
            )
        return explicit
    namespace = environ.get(ENV_POD_NAMESPACE, "").strip() or _read_namespace(namespace_file)
    suffix = namespace.rsplit("-", 1)[-1] if namespace else ""
    return suffix if suffix in known else FALLBACK_ENVIRONMENT


def builtin_polling(environ: Mapping[str, str] | None = None) -> RenderedPolling:
    """The polling block of this environment's built-in profile (``poll``'s default)."""
    return builtin_bundle()[0].profiles[detect_environment(environ)].polling


def _read_namespace(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()[:63]
    except (OSError, UnicodeDecodeError):
        return ""


# --- the environment, code overrides, the mounted file -----------------------------


def _env_name(name: str) -> str:
    """``llmCall`` -> ``HOURGLASS_TIMEOUT_LLM_CALL``."""
    return ENV_TIMEOUT_PREFIX + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _timeout_name(variable: str) -> str:
    """``HOURGLASS_TIMEOUT_LLM_CALL`` -> ``llmCall``."""
    first, *rest = variable[len(ENV_TIMEOUT_PREFIX) :].lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


def env_timeouts(environ: Mapping[str, str]) -> dict[str, float]:
    """Per-timeout variables, parsed once; a bad one is an error naming the variable."""
    values: dict[str, float] = {}
    legacy = environ.get(ENV_SESSION_TTL)
    if legacy is not None and legacy.strip():
        values["sessionIdle"] = parse_duration(legacy, field=ENV_SESSION_TTL)
    for variable, raw in sorted(environ.items()):
        if not variable.startswith(ENV_TIMEOUT_PREFIX) or not raw.strip():
            continue
        name = _timeout_name(variable)
        if not _NAME.match(name) or _env_name(name) != variable:
            raise ConfigError(
                variable, "not a timeout variable: use HOURGLASS_TIMEOUT_<UPPER_SNAKE>"
            )
        values[name] = parse_duration(raw, field=variable)
    return values


def code_overrides(values: Mapping[str, float | str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"overrides.{name}", "timeout names are lowerCamelCase")
        parsed[name] = parse_duration(value, field=f"overrides.{name}")
    return parsed


def select_profile(
    bundle: HourglassConfig, wanted: str | None, source: str, field: str = ENV_PROFILE
) -> tuple[str, RenderedProfile]:
    """The profile ``wanted`` (named by ``field``), else the file's default."""
    name = wanted or bundle.default_profile
    if name is None:
        if len(bundle.profiles) == 1:
            name = next(iter(bundle.profiles))
        else:
            raise ConfigError(
                "defaultProfile",
                f"{source} has no default profile; set {ENV_PROFILE} "
                f"(one of: {', '.join(sorted(bundle.profiles)) or 'none'})",
            )
    profile = bundle.profiles.get(name)
    if profile is None:
        hint = did_you_mean(name, bundle.profiles)
        raise ConfigError(
            field if wanted else "defaultProfile",
            f"no profile {name!r} in {source}{hint} "
            f"(available: {', '.join(sorted(bundle.profiles)) or 'none'})",
        )
    return name, profile


def unknown_builtin(wanted: str, field: str = ENV_PROFILE) -> ConfigError | None:
    """The error to report (not raise) when ``wanted`` names no built-in profile: with no
    file mounted yet, the profile may still come with it, so the agent carries on."""
    known = builtin_profiles()
    if not wanted or wanted in known:
        return None
    return ConfigError(
        field,
        f"{wanted!r} is not a built-in profile{did_you_mean(wanted, known)} "
        f"(built-in: {', '.join(known)}); a mounted hourglass.yaml may define it",
    )


def read_config_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(CONFIG_KEY, f"{path} does not exist (deleted?)") from None
    except OSError as error:
        raise ConfigError(CONFIG_KEY, f"cannot read {path}: {error.strerror}") from None
    if not raw.strip():
        raise ConfigError(CONFIG_KEY, f"{path} is empty")
    return raw
