"""The precedence layers under `TimeoutManager`, each read on its own.

From the lowest up: the built-in profiles (packaged, rendered by the same core as the
operator) and the environment detection that picks one; the mounted ``hourglass.yaml``
and the profile chosen in it; the ``HOURGLASS_TIMEOUT_*`` / ``SESSION_TTL_SECONDS``
variables; code overrides. The manager merges them into one snapshot; `poll` takes
its default policy from here, so neither imports the other's module.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import logging
import os
import re
from collections.abc import Iterable, Mapping
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

logger = logging.getLogger("agent_lib.timeouts")


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


WELL_KNOWN_TIMEOUTS: Final = ("request", "connect", "llmCall", "toolCall", "sessionIdle")
"""The names a variable is matched against even when the profile does not set them."""


class EnvTimeouts:
    """The per-timeout variables, parsed once; matched to the profile's names at each merge.

    ``HOURGLASS_TIMEOUT_LLM_CALL`` sets ``llmCall``. A variable that spells a known
    timeout in other case or without its underscores (``HOURGLASS_TIMEOUT_LLMCALL``)
    sets that timeout, with a warning (once) giving the exact spelling; one that names
    no known timeout defines a new one, with a warning (once) naming the closest known
    name when there is one close enough to be a typo. Known: the profile's timeouts and
    the well-known ones.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._values: dict[str, tuple[str, float]] = {}
        """Name as the variable spells it -> (variable, seconds)."""
        self._warned: set[str] = set()
        legacy = environ.get(ENV_SESSION_TTL)
        if legacy is not None and legacy.strip():
            self._values["sessionIdle"] = (
                ENV_SESSION_TTL,
                parse_duration(legacy, field=ENV_SESSION_TTL),
            )
        seen: dict[str, str] = {}
        for variable, raw in sorted(environ.items()):
            if not variable.startswith(ENV_TIMEOUT_PREFIX) or not raw.strip():
                continue
            name = _timeout_name(variable)
            if not _NAME.match(name) or _env_name(name) != variable:
                raise ConfigError(
                    variable, "not a timeout variable: use HOURGLASS_TIMEOUT_<UPPER_SNAKE>"
                )
            other = seen.setdefault(name.lower(), variable)
            if other != variable:
                raise ConfigError(variable, f"sets the same timeout as {other}; keep one of them")
            if name.lower() == "sessionidle":
                self._values.pop("sessionIdle", None)  # the specific variable wins
            self._values[name] = (variable, parse_duration(raw, field=variable))

    def resolve(self, known: Iterable[str]) -> dict[str, float]:
        """Timeout name -> seconds, each variable's name matched to ``known``."""
        if not self._values:
            return {}
        names = set(known).union(WELL_KNOWN_TIMEOUTS)
        by_folded = {name.lower(): name for name in sorted(names, reverse=True)}
        values: dict[str, float] = {}
        for spelled, (variable, seconds) in self._values.items():
            name = spelled if spelled in names else by_folded.get(spelled.lower())
            if name is None:
                name = spelled
                self._warn_new(variable, spelled, names)
            elif name != spelled:
                self._warn_once(
                    variable,
                    "hourglass: %s sets timeout %s (spelled %s)",
                    variable,
                    name,
                    _env_name(name),
                )
            values[name] = seconds
        return values

    def _warn_new(self, variable: str, name: str, names: set[str]) -> None:
        close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.8)
        if close:
            self._warn_once(
                variable,
                "hourglass: %s defines a new timeout %s; did you mean %s (%s)?",
                variable,
                name,
                close[0],
                _env_name(close[0]),
            )

    def _warn_once(self, variable: str, message: str, *args: object) -> None:
        if variable not in self._warned:
            self._warned.add(variable)
            logger.warning(message, *args, extra={"field": variable})


def env_timeouts(environ: Mapping[str, str]) -> dict[str, float]:
    """Per-timeout variables, parsed once; a bad one is an error naming the variable."""
    return EnvTimeouts(environ).resolve(WELL_KNOWN_TIMEOUTS)


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
