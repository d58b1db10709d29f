"""``hourglass rollout status``: follow a config change to the agent pods, like
``kubectl rollout status`` does for a Deployment.

Exit status (a contract scripts rely on, see docs/troubleshooting.md):

- 0: every agent pod that counts runs the hash on the namespace's ConfigMap;
- 1: a pod rejected that hash, or a resource is invalid, or the API server refused the
  operator's write (``Ready=False``): the reason follows;
- 3: timed out while waiting;
- 4: cannot reach or read the Kubernetes API: one line naming the server and why.

Each pod gets a line when what it runs changes.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import click

from agent_lib.config.bundle import CONFIGMAP_NAME, HASH_ANNOTATION
from agent_lib.durations import parse_duration
from agent_lib.errors import DurationError

EXIT_APPLIED = 0
EXIT_REJECTED = 1
EXIT_TIMEOUT = 3
EXIT_UNREACHABLE = 4
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KINDS = (("TimeoutProfile", "timeoutprofiles"), ("SessionPolicy", "sessionpolicies"))


@click.group("rollout")
def rollout() -> None:
    """Follow the rollout of a namespace's config to its agent pods."""


@rollout.command("status")
@click.option("-n", "--namespace", required=True, help="The environment namespace.")
@click.option(
    "--timeout",
    default="5m",
    show_default=True,
    help="Give up after this long (a duration such as 90s or 5m).",
)
@click.option("--kubeconfig", default=None, help="Path to a kubeconfig (default: $KUBECONFIG).")
@click.option("--context", default=None, help="The kubeconfig context to use.")
@click.option("--interval", default=0.5, hidden=True, type=click.FloatRange(0.05, 60))
def status(
    namespace: str, timeout: str, kubeconfig: str | None, context: str | None, interval: float
) -> None:
    """Wait until every agent pod in NAMESPACE runs the current config hash.

    Agent pods are the pods labelled hourglass.dev/config=hourglass-config; each says
    what it runs in its hourglass.dev/applied-hash annotation, and why it refused a
    config in hourglass.dev/config-error. Exits 0 when all run the current hash, 1
    naming each rejecting pod or refused/invalid resource and the reason, 3 on timeout,
    4 when the Kubernetes API cannot be reached or read.
    """
    if len(namespace) > 63 or not _NAMESPACE.match(namespace):
        raise click.BadParameter(
            "must be a Kubernetes namespace name (lowercase letters, digits, '-')",
            param_hint="'--namespace'",
        )
    try:
        seconds = parse_duration(timeout, field="--timeout")
    except DurationError as bad:
        raise click.BadParameter(bad.reason, param_hint="'--timeout'") from None
    from hourglass_cli._rollout_progress import Verdict, judge

    api = _client(kubeconfig, context)
    deadline = time.monotonic() + seconds
    shown: dict[str, str] = {}
    said = ""
    while True:
        progress = judge(_snapshot(api, namespace))
        for name, line in sorted(progress.pods.items()):
            if shown.get(name) != line:
                click.echo(line)
                shown[name] = line
        if progress.summary != said and progress.verdict is Verdict.WAITING:
            click.echo(f"{progress.summary}...")
        said = progress.summary
        if progress.verdict is Verdict.APPLIED:
            click.echo(progress.summary)
            return
        if progress.verdict is Verdict.FAILED:
            for line in progress.errors:
                click.echo(f"error: {line}", err=True)
            click.echo(f"error: {progress.summary}", err=True)
            raise SystemExit(EXIT_REJECTED)
        if time.monotonic() >= deadline:
            click.echo(f"error: timed out after {timeout}: {progress.summary}", err=True)
            raise SystemExit(EXIT_TIMEOUT)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def _snapshot(api: Any, namespace: str) -> Any:
    from hourglass_operator.rollout import SELECTOR

    from hourglass_cli._rollout_progress import Snapshot

    return Snapshot.of(
        namespace,
        [r for kind, plural in _KINDS for r in _resources(api, namespace, kind, plural)],
        _config_hash(api, namespace),
        _pods(api, namespace, SELECTOR),
    )


class Unreachable(click.ClickException):
    """The Kubernetes API cannot be reached or read: exit 4, one line, no traceback."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, server: str | None, why: str) -> None:
        where = f" at {server}" if server else ""
        super().__init__(f"cannot reach or read the Kubernetes API{where}: {why}")

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _client(kubeconfig: str | None, context: str | None) -> Any:
    """In a pod its ServiceAccount; elsewhere the kubeconfig, as kubectl does."""
    import kubernetes

    if kubeconfig is None and context is None:
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
            return kubernetes.client.ApiClient()
        except kubernetes.config.ConfigException:
            pass
    try:
        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    except (kubernetes.config.ConfigException, OSError, ValueError) as error:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise Unreachable(None, f"kubeconfig {where}: {_one_line(error)}") from None


def _read(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """One GET through the typed client, raw JSON back; None when it does not exist.

    Any other answer, and no answer at all (refused, reset, timed out, bad TLS, not
    JSON), is `Unreachable`.
    """
    import kubernetes
    import urllib3

    server = str(call.__self__.api_client.configuration.host)
    try:
        response = call(*args, _preload_content=False, _request_timeout=(5, 30), **kwargs)
        return json.loads(response.data)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        reason = f"reading {what}: HTTP {error.status} {_one_line(error.reason)}"
        raise Unreachable(server, reason) from None
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        raise Unreachable(server, f"reading {what}: {_one_line(_cause(error))}") from None


def _cause(error: BaseException) -> BaseException:
    """urllib3 wraps the real reason (refused, timed out) in MaxRetryError."""
    import urllib3

    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        return error.reason
    return error


def _one_line(error: object) -> str:
    text = " ".join(str(error).split())
    return (text or type(error).__name__)[:300]


def _pods(api: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api)
    data = _read("pods", core.list_namespaced_pod, namespace, label_selector=selector)
    return list((data or {}).get("items") or [])


def _resources(api: Any, namespace: str, kind: str, plural: str) -> list[dict[str, Any]]:
    import kubernetes

    custom = kubernetes.client.CustomObjectsApi(api)
    data = _read(
        plural, custom.list_namespaced_custom_object, "hourglass.dev", "v1alpha1", namespace, plural
    )
    return [{**item, "kind": kind} for item in (data or {}).get("items") or []]


def _config_hash(api: Any, namespace: str) -> str | None:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api)
    configmap = _read(CONFIGMAP_NAME, core.read_namespaced_config_map, CONFIGMAP_NAME, namespace)
    value = ((configmap or {}).get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return str(value) if value else None
