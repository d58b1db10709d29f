"""``hourglass operator``: run the operator (kopf) with kopf's standard options."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import click
from hourglass_operator.errors import OperatorConfigError
from hourglass_operator.settings import OperatorSettings


@click.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch this namespace (repeatable; globs allowed).",
)
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Watch every namespace (cluster-wide RBAC)."
)
@click.option(
    "--liveness",
    "liveness",
    default=None,
    help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option("--peering", default=None, help="kopf peering object name (mandatory peering).")
@click.option(
    "--standalone", is_flag=True, default=None, help="No peering: this replica always reconciles."
)
@click.option(
    "--priority",
    type=int,
    default=None,
    help="kopf peering priority (default: random, so one replica leads).",
)
@click.option("--dev", is_flag=True, help="kopf's development mode (priority 666).")
@click.option("-v", "--verbose", is_flag=True)
@click.option("-d", "--debug", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text", "plain", "full"]),
    default=None,
    help="Default: $HOURGLASS_LOG_FORMAT or json.",
)
@click.option(
    "--image",
    default=None,
    help="Image of the cleanup CronJob (default: $HOURGLASS_OPERATOR_IMAGE).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Prometheus port, 0 for none (default: $HOURGLASS_METRICS_PORT or 9090).",
)
@click.option(
    "--webhook/--no-webhook",
    default=None,
    help="Serve the validating admission webhook (default: $HOURGLASS_WEBHOOK).",
)
@click.option("--webhook-port", type=click.IntRange(1, 65535), default=None)
@click.option("--webhook-cert", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--webhook-key", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option(
    "--webhook-insecure", is_flag=True, default=None, help="Plain HTTP webhook (tests only)."
)
@click.option(
    "--prometheus-url",
    default=None,
    help="Prometheus to read agent latency from, for spec.tuning "
    "(default: $HOURGLASS_PROMETHEUS_URL; none: Tuned=False).",
)
def operator(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness: str | None,
    peering: str | None,
    standalone: bool | None,
    priority: int | None,
    dev: bool,
    verbose: bool,
    debug: bool,
    quiet: bool,
    log_format: str | None,
    image: str | None,
    metrics_port: int | None,
    webhook: bool | None,
    webhook_port: int | None,
    webhook_cert: str | None,
    webhook_key: str | None,
    webhook_insecure: bool | None,
    prometheus_url: str | None,
) -> None:
    """Reconcile TimeoutProfiles and SessionPolicies into hourglass-config and cleanup CronJobs."""
    if namespaces and all_namespaces:
        raise click.UsageError("give either --namespace NS (one or more) or --all-namespaces")
    if not namespaces and not all_namespaces:
        click.echo("no --namespace given: watching all namespaces (--all-namespaces)", err=True)
        all_namespaces = True
    if peering and standalone:
        raise click.UsageError("--peering and --standalone exclude each other")
    env = dict(os.environ)
    if prometheus_url is not None:
        env["HOURGLASS_PROMETHEUS_URL"] = prometheus_url
    try:
        settings = OperatorSettings.from_env(env)
    except OperatorConfigError as error:
        if prometheus_url is not None and error.field == "HOURGLASS_PROMETHEUS_URL":
            raise click.BadParameter(error.reason, param_hint="'--prometheus-url'") from None
        raise click.UsageError(str(error)) from None
    overrides: dict[str, object] = {
        # kopf's own names for its text formats are accepted as well.
        "log_format": {"plain": "text", "full": "text"}.get(log_format or "", log_format),
        "image": image,
        "metrics_port": metrics_port,
        "webhook": webhook,
        "webhook_port": webhook_port,
        "webhook_cert": webhook_cert,
        "webhook_key": webhook_key,
        "webhook_insecure": webhook_insecure,
    }
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    given["namespaces"] = () if all_namespaces else tuple(namespaces)
    try:
        settings = dataclasses.replace(settings, **given).check()
    except OperatorConfigError as error:
        raise click.UsageError(str(error)) from None
    from hourglass_operator.run import KopfOptions, run  # kopf is heavy: import it last

    options = KopfOptions(
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        liveness=liveness,
        peering=peering,
        standalone=standalone,
        priority=priority,
        dev=dev,
        verbose=verbose,
        debug=debug,
        quiet=quiet,
    )
    try:
        run(options, settings)
    except OperatorConfigError as error:
        raise click.ClickException(str(error)) from None
