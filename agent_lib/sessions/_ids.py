"""Validation of every external string that becomes part of a Redis key.

A session id, a namespace or a key prefix ends up inside a Redis key. Characters
such as ``*``, ``?``, ``[`` (glob patterns), ``{``/``}`` (Cluster hash tags), ``:``
(our own separator), whitespace or non-ASCII could address other keys or move a
key to another slot, so each is held to a strict allow-list instead.
"""

from __future__ import annotations

import re
import secrets

from agent_lib.errors import ConfigError, InvalidSessionId

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
KEY_PREFIX_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"

_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_KEY_PREFIX = re.compile(KEY_PREFIX_PATTERN)
_FORBIDDEN_NAMES = {
    "*": "a glob wildcard",
    "?": "a glob wildcard",
    "[": "a glob character class",
    "]": "a glob character class",
    "{": "a Redis Cluster hash tag",
    "}": "a Redis Cluster hash tag",
    ":": "the key separator",
}


def new_session_id() -> str:
    """A fresh random id (128 bits, URL-safe, always valid)."""
    return secrets.token_urlsafe(16)


def validate_session_id(session_id: object) -> str:
    """Return ``session_id`` unchanged, or raise `InvalidSessionId` with the reason."""
    if not isinstance(session_id, str):
        raise InvalidSessionId(session_id, f"must be a string, got {type(session_id).__name__}")
    if _SESSION_ID.fullmatch(session_id):
        return session_id
    raise InvalidSessionId(session_id, _reason(session_id, 1, 128, "A-Z a-z 0-9 _ -"))


def validate_namespace(namespace: object, field: str = "namespace") -> str:
    """Return a namespace that is safe inside a hash tag, or raise `ConfigError`."""
    return _check(namespace, _NAMESPACE, field)


def validate_key_prefix(prefix: object, field: str = "keyPrefix") -> str:
    """Return a key prefix that is safe inside a hash tag, or raise `ConfigError`."""
    return _check(prefix, _KEY_PREFIX, field)


def _check(value: object, pattern: re.Pattern[str], field: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {type(value).__name__}")
    if pattern.fullmatch(value):
        return value
    raise ConfigError(field, _reason(value, 1, 63, "A-Z a-z 0-9 _ . -, starting alphanumeric"))


def _reason(value: str, shortest: int, longest: int, allowed: str) -> str:
    if not value.isascii():
        return "must be ASCII"
    for char, meaning in _FORBIDDEN_NAMES.items():
        if char in value:
            return f"must not contain {char!r} ({meaning})"
    if any(c.isspace() for c in value):
        return "must not contain whitespace"
    if not shortest <= len(value) <= longest:
        return f"length must be {shortest}..{longest}, got {len(value)}"
    return f"allowed characters are {allowed}"
