"""Session-store URLs checked and printed by their shape, never by their text.

A Redis URL often comes from a Secret and carries a password; a wrong Secret key can
put any secret where the URL should be. So a bad URL is reported by what it looks
like (its scheme, its host and where it came from: ``REDIS_URL``, ``--redis-url``,
the ``url`` argument or the SessionPolicy's Secret), and a URL that must be shown
has its credentials masked (`mask_url`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from agent_lib.errors import ConfigError

SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
_SCHEME_LIST = "redis://, rediss://, unix://, redis+cluster://, redis+sentinel:// or memory://"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_MASK = "***"
SOURCE_VARIABLE = "HOURGLASS_REDIS_URL_SOURCE"
"""Set beside ``REDIS_URL`` (by the operator, on the cleanup CronJob) to say where the URL
came from, such as the SessionPolicy's Secret; errors name it instead of ``REDIS_URL``."""
_SECRET_QUERY_KEYS = ("password", "username", "ssl_password", "token")


@dataclass(frozen=True)
class _Parts:
    scheme: str
    userinfo: str | None
    hosts: str
    path: str
    query: str


def mask_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``.

    A user name stays when a password follows it (``user:***@``); a lone one is masked
    too, since ``redis://PASSWORD@host`` is a common slip. Text that is not a URL at all
    is not shown: it may be a secret put in the wrong place.
    """
    parts = _split(url)
    if parts is None or parts.scheme not in SCHEMES:
        return "(not a URL)"
    try:
        check_store_url(url)
    except ConfigError:  # a password with a raw '/', '?' or '#' can land anywhere
        return f"{parts.scheme}://(not shown: not a valid URL)"
    userinfo = ""
    if parts.userinfo is not None:
        user, colon, _ = parts.userinfo.partition(":")
        userinfo = f"{user}:{_MASK}@" if colon else f"{_MASK}@"
    query = "&".join(
        f"{key}={_MASK if _is_secret_key(key) else value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{userinfo}{parts.hosts}{parts.path}" + (f"?{query}" if query else "")


def check_store_url(url: object, source: str = "url") -> str:
    """``url`` if it is a session-store URL this library can use, else `ConfigError`.

    ``source`` names where the URL came from (``REDIS_URL``, ``--redis-url``...); the
    error names it, the scheme and the host, and never repeats the URL's text.
    """
    if not isinstance(url, str):
        raise ConfigError(
            source, f"must be a URL such as redis://host:6379/0, got a {type(url).__name__}"
        )
    parts = _split(url)
    if parts is None:
        raise ConfigError(
            source,
            f"not a URL: it has no scheme such as redis:// ({len(url)} characters, not shown; "
            "is it only a password, or the wrong Secret key?)",
        )
    if parts.scheme not in SCHEMES:
        raise ConfigError(source, f"unsupported scheme: use {_SCHEME_LIST}")
    if parts.scheme == "memory":
        return url
    if parts.scheme == "unix":
        if not parts.path.strip("/"):
            raise ConfigError(source, "a unix:// URL needs a socket path: unix:///path/to.sock")
        return url
    multi = "+" in parts.scheme
    hosts = [h for h in parts.hosts.split(",")] if multi else [parts.hosts]
    first = _host_of(hosts[0])
    shape = f"a {parts.scheme}:// URL" + (f" for host {first}" if first else "")
    for item in hosts:
        problem = _host_problem(item, port_required=multi)
        if problem:
            raise ConfigError(source, f"{problem} ({shape})")
    problem = _path_problem(parts) or _query_problem(parts)
    if problem:
        raise ConfigError(source, f"{problem} ({shape})")
    return url


def _split(url: str) -> _Parts | None:
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return None
    rest, _, query = rest.partition("?")
    rest = rest.partition("#")[0]
    userinfo: str | None = None
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
    return _Parts(scheme.lower(), userinfo, authority, slash + path, query)


def _is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_QUERY_KEYS)


def _split_host(item: str) -> tuple[str, str | None, bool]:
    """(host, port or None, whether an IPv6 bracket is left open)."""
    if item.startswith("["):
        host, closed, after = item[1:].partition("]")
        if not closed:
            return host, None, True
        return host, (after[1:] if after.startswith(":") else (after or None)), False
    host, colon, port = item.rpartition(":")
    return (host, port, False) if colon else (item, None, False)


def _valid_host(host: str) -> bool:
    if _HOSTNAME.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_of(item: str) -> str | None:
    """The host, when it is a valid host name or address (else it is not shown)."""
    host, _, open_bracket = _split_host(item)
    return host if host and not open_bracket and _valid_host(host) else None


def _host_problem(item: str, *, port_required: bool) -> str | None:
    if not item:
        return "a host is required, as in redis://host:6379/0"
    host, port, open_bracket = _split_host(item)
    if open_bracket:
        return "an IPv6 address is not closed with ']', as in redis://[::1]:6379/0"
    if item.startswith("[") and port is not None and not item[1:].partition("]")[2].startswith(":"):
        return "an IPv6 address in brackets must be followed by :port or nothing"
    if not host:
        return "a host is required, as in redis://host:6379/0"
    if item.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "the address in brackets is not an IPv6 address"
    elif not _valid_host(host):
        return "the host is not a valid host name or IP address (IPv6 goes in brackets)"
    if port is None:
        return "each host needs a port, as in host:6379" if port_required else None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return "the port must be a number from 1 to 65535"
    return None


def _path_problem(parts: _Parts) -> str | None:
    path = parts.path.strip("/")
    if parts.scheme.endswith("+sentinel"):
        service, _, db = path.partition("/")
        if not service:
            return "a redis+sentinel:// URL needs a service name: host:port/name"
        if db and not db.isdigit():
            return "the database after the service name must be a number"
    elif not parts.scheme.endswith("+cluster") and path and not path.isdigit():
        return "the database (the path) must be a number, as in redis://host:6379/0"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "db" and not value.isdigit():
            return "the query's db must be a number"
    return None


def url_source(explicit: Mapping[str, Any], environ: Mapping[str, str] | None) -> str:
    """What `SessionManager.from_env` took its URL from, as the user wrote it."""
    if explicit.get("url") is not None:
        return "url"
    env = os.environ if environ is None else environ
    if env.get("REDIS_URL", "").strip():
        return env.get(SOURCE_VARIABLE, "").strip()[:200] or "REDIS_URL"
    return "url"


def _query_problem(parts: _Parts) -> str | None:
    """A query option whose value redis-py's own URL parser refuses (named, value not shown)."""
    try:
        from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
    except ImportError:
        return None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        parser = URL_QUERY_ARGUMENT_PARSERS.get(key)
        if parser is None or not value:
            continue
        try:
            parser(value)
        except (ValueError, TypeError):
            return f"the query option {key} has a value redis-py does not accept"
    return None
