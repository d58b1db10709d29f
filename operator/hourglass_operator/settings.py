"""The operator's own settings, from flags or `HOURGLASS_*` environment variables."""

from __future__ import annotations

import base64
import binascii
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from hourglass_operator.errors import OperatorConfigError

DEFAULT_IMAGE = "ghcr.io/hourglass-dev/hourglass:0.1.0"
DEFAULT_METRICS_PORT = 9090
DEFAULT_WEBHOOK_PORT = 9443
DEFAULT_RESYNC_S = 300
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class OperatorSettings:
    image: str = DEFAULT_IMAGE
    """The image of the cleanup CronJob (the operator's own image: it has `hourglass`)."""
    metrics_port: int = DEFAULT_METRICS_PORT
    """Prometheus metrics on this port; 0 turns them off."""
    metrics_addr: str = "0.0.0.0"  # noqa: S104 - scraped from other pods
    webhook: bool = False
    webhook_port: int = DEFAULT_WEBHOOK_PORT
    webhook_addr: str = "0.0.0.0"  # noqa: S104 - called by the API server
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_insecure: bool = False
    """Plain HTTP for the webhook server: for tests and TLS-terminating proxies only."""
    webhook_configuration: str | None = None
    """The ValidatingWebhookConfiguration this operator fills in once its webhook serves
    (HOURGLASS_WEBHOOK_CONFIGURATION; the chart creates it empty). None: registered by
    someone else."""
    webhook_service: tuple[str, str, int] | None = None
    """(namespace, name, port) of the Service the API server calls the webhook through
    (HOURGLASS_WEBHOOK_SERVICE, ``namespace/name[:port]``, port 443 by default)."""
    webhook_url: str | None = None
    """Or the https base URL it calls instead (HOURGLASS_WEBHOOK_URL): for API servers
    that cannot reach Services, development and tests."""
    webhook_ca: str | None = None
    """The CA file whose certificate goes into the caBundle (HOURGLASS_WEBHOOK_CA);
    HOURGLASS_WEBHOOK_CA_BUNDLE gives it inline (base64); neither: the serving cert."""
    webhook_ca_bundle: str | None = None
    webhook_failure_policy: str = "Fail"
    """What the API server does while no replica answers (HOURGLASS_WEBHOOK_FAILURE_POLICY)."""
    namespaces: tuple[str, ...] = ()
    """The watched namespaces (``--namespace``; empty: all): the webhook's namespaceSelector."""
    log_format: str = "json"
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets the cleanup pods pull their image with (HOURGLASS_IMAGE_PULL_SECRETS, a
    comma-separated list)."""
    resync_seconds: int = DEFAULT_RESYNC_S
    """Every namespace is re-read and re-reconciled this often (HOURGLASS_RESYNC_SECONDS),
    which bounds what a missed watch event can leave wrong."""
    prometheus_url: str | None = None
    """Where spec.tuning's latency is read (HOURGLASS_PROMETHEUS_URL, ``--prometheus-url``)."""
    prometheus_selector: str = 'namespace="{namespace}"'
    """PromQL label matchers of a namespace's agent series (HOURGLASS_PROMETHEUS_SELECTOR);
    ``{namespace}`` and ``{profile}`` are substituted."""
    tuning_interval_seconds: int = 300
    """How often each tuned profile is re-evaluated (HOURGLASS_TUNING_INTERVAL_SECONDS)."""
    replicas: int = 1
    """How many replicas the Deployment runs (HOURGLASS_REPLICAS, set by the manifests and
    chart): above one, the operator refuses to start without its peering object."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        log_format = env.get("HOURGLASS_LOG_FORMAT", "json")
        if log_format not in ("json", "text"):
            raise OperatorConfigError("HOURGLASS_LOG_FORMAT", f"{log_format!r} is not json or text")
        return cls(
            image=_image(env.get("HOURGLASS_OPERATOR_IMAGE", DEFAULT_IMAGE)),
            metrics_port=_port(env, "HOURGLASS_METRICS_PORT", DEFAULT_METRICS_PORT),
            metrics_addr=env.get("HOURGLASS_METRICS_ADDR", "0.0.0.0"),  # noqa: S104
            webhook=_flag(env, "HOURGLASS_WEBHOOK"),
            webhook_port=_port(env, "HOURGLASS_WEBHOOK_PORT", DEFAULT_WEBHOOK_PORT),
            webhook_addr=env.get("HOURGLASS_WEBHOOK_ADDR", "0.0.0.0"),  # noqa: S104
            webhook_cert=env.get("HOURGLASS_WEBHOOK_CERT") or None,
            webhook_key=env.get("HOURGLASS_WEBHOOK_KEY") or None,
            webhook_insecure=_flag(env, "HOURGLASS_WEBHOOK_INSECURE"),
            webhook_configuration=_name(env, "HOURGLASS_WEBHOOK_CONFIGURATION"),
            webhook_service=_service(env, "HOURGLASS_WEBHOOK_SERVICE"),
            webhook_url=_https_url(env, "HOURGLASS_WEBHOOK_URL"),
            webhook_ca=env.get("HOURGLASS_WEBHOOK_CA") or None,
            webhook_ca_bundle=_base64(env, "HOURGLASS_WEBHOOK_CA_BUNDLE"),
            webhook_failure_policy=_choice(
                env, "HOURGLASS_WEBHOOK_FAILURE_POLICY", ("Fail", "Ignore")
            ),
            log_format=log_format,
            image_pull_secrets=_names(env, "HOURGLASS_IMAGE_PULL_SECRETS"),
            replicas=_count(env, "HOURGLASS_REPLICAS"),
            prometheus_url=_http_url(env, "HOURGLASS_PROMETHEUS_URL"),
            prometheus_selector=_selector(env, "HOURGLASS_PROMETHEUS_SELECTOR"),
            tuning_interval_seconds=_count(env, "HOURGLASS_TUNING_INTERVAL_SECONDS", 300),
            resync_seconds=_count(env, "HOURGLASS_RESYNC_SECONDS", DEFAULT_RESYNC_S),
        )

    def check(self) -> OperatorSettings:
        """Refuse combinations that would only fail later, inside kopf."""
        if (
            self.webhook
            and not self.webhook_insecure
            and not (self.webhook_cert and self.webhook_key)
        ):
            raise OperatorConfigError(
                "HOURGLASS_WEBHOOK",
                "the webhook serves HTTPS: give HOURGLASS_WEBHOOK_CERT and HOURGLASS_WEBHOOK_KEY "
                "(--webhook-cert/--webhook-key), or HOURGLASS_WEBHOOK_INSECURE=true behind TLS",
            )
        if self.webhook_configuration and (self.webhook_service is None) == (
            self.webhook_url is None
        ):
            raise OperatorConfigError(
                "HOURGLASS_WEBHOOK_CONFIGURATION",
                "the API server must be told how to call the webhook: give exactly one of "
                "HOURGLASS_WEBHOOK_SERVICE (namespace/name[:port]) and HOURGLASS_WEBHOOK_URL",
            )
        if self.webhook_configuration:
            for namespace in self.namespaces:
                if not _DNS_LABEL.match(namespace):
                    raise OperatorConfigError(
                        "--namespace",
                        f"{namespace!r:.80} is a pattern, not a namespace name: the webhook's "
                        "namespaceSelector lists names (or watch all namespaces)",
                    )
        return self


def _name(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not _DNS_SUBDOMAIN.match(value) or len(value) > 253:
        raise OperatorConfigError(name, f"{value!r:.80} is not a Kubernetes object name")
    return value


def _service(env: Mapping[str, str], name: str) -> tuple[str, str, int] | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    where, _, port = value.partition(":")
    namespace, _, service = where.partition("/")
    if not (_DNS_LABEL.match(namespace) and _DNS_LABEL.match(service)):
        raise OperatorConfigError(name, f"{value!r:.80} is not namespace/name[:port]")
    number = _port({name: port}, name, 443) if port else 443
    if number == 0:
        raise OperatorConfigError(name, "port 0 cannot be called")
    return namespace, service, number


def _https_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme != "https" or not parsed.hostname or parsed.query or parsed.fragment:
        raise OperatorConfigError(
            name, f"{value!r:.80} is not an https:// URL (the API server calls only https)"
        )
    return value.rstrip("/")


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.username:
        raise OperatorConfigError(
            name, "is not an http(s):// URL without credentials (e.g. http://prometheus:9090)"
        )
    return value.rstrip("/")


def _selector(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip() or 'namespace="{namespace}"'
    if not re.fullmatch(
        r'[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*"(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*")*',
        value,
    ):
        raise OperatorConfigError(
            name, 'is not PromQL label matchers such as namespace="{namespace}",job="agents"'
        )
    return value


def _base64(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise OperatorConfigError(name, "is not base64 (a PEM CA bundle, encoded)") from None
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or choices[0]
    if value not in choices:
        raise OperatorConfigError(name, f"{value!r:.20} is not one of {', '.join(choices)}")
    return value


def _image(value: str) -> str:
    if not value or any(c.isspace() for c in value) or len(value) > 512:
        raise OperatorConfigError(
            "HOURGLASS_OPERATOR_IMAGE", f"{value!r:.80} is not an image reference"
        )
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in env.get(name, "").split(",") if n.strip())
    for value in names:
        if not _DNS_SUBDOMAIN.match(value) or len(value) > 253:
            raise OperatorConfigError(name, f"{value!r:.80} is not a Secret name")
    return names


def _count(env: Mapping[str, str], name: str, default: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise OperatorConfigError(name, f"{raw!r:.20} is not a whole number (1 or more)")
    return int(raw)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise OperatorConfigError(name, f"{raw!r:.40} is not a port number") from None
    if not 0 <= port <= 65535:
        raise OperatorConfigError(name, f"{port} is outside 0-65535")
    return port


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise OperatorConfigError(name, f"{raw!r:.20} is not a boolean (true/false)")
