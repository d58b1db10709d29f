"""``hourglass cleanup``: one cleanup run over a namespace's sessions (the CronJob's command).

Prints a summary (JSON with ``--json``) and writes the JSON to ``/dev/termination-log``
when that path exists and is writable, so the operator can copy it into the
SessionPolicy's status. Exit codes: 0 done, 1 the store was unreachable or refused,
2 bad input (a message names the field).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from agent_lib.errors import ConfigError, SessionError
from agent_lib.sessions._ids import validate_namespace
from agent_lib.sessions.settings import (
    SessionSettings,
    from_environment,
    mounted_policy,
    policy_file,
)
from agent_lib.sessions.store_url import check_store_url, url_source
from agent_lib.sessions.stores.base import CleanupReport

TERMINATION_LOG = Path("/dev/termination-log")


@click.command()
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    required=True,
    help="Session store URL (default: $REDIS_URL), such as redis://host:6379/0.",
)
@click.option(
    "--namespace", "-n", envvar="HOURGLASS_NAMESPACE", required=True, help="Session namespace."
)
@click.option(
    "--policy",
    "policy",
    type=click.Path(dir_okay=False),
    default=None,
    help="A SessionPolicy YAML or a rendered hourglass.yaml giving the limits.",
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=None)
@click.option("--max-batches", type=click.IntRange(1), default=None, help="Stop after N batches.")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@click.option(
    "--verify",
    is_flag=True,
    help="Also check every index entry against its key (done by itself after Redis evictions).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def cleanup(
    redis_url: str,
    namespace: str,
    policy: str | None,
    batch_size: int | None,
    max_batches: int | None,
    dry_run: bool,
    verify: bool,
    as_json: bool,
) -> None:
    """Remove expired, lifetime-ended and over-cap sessions of NAMESPACE.

    The store's URL comes from --redis-url or REDIS_URL. Exit codes: 0 done, 1 the store
    was unreachable or refused, 2 bad input (the message names the flag or variable).
    """
    try:
        context = click.get_current_context()
        check_store_url(redis_url, _url_source(context))
        validate_namespace(namespace, _flag_or_variable(context, "namespace"))
        settings = _settings(redis_url, namespace, policy, batch_size)
        report = asyncio.run(_run(settings, max_batches, dry_run, verify))
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    except SessionError as error:
        summary = {"error": str(error), "namespace": namespace}
        _write_termination_log(summary)
        click.echo(json.dumps(summary) if as_json else f"cleanup failed: {error}", err=not as_json)
        raise SystemExit(1) from None
    summary = report.to_dict() | {"namespace": settings.namespace}
    _write_termination_log(summary)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        verb = "would remove" if dry_run else "removed"
        click.echo(
            f"{settings.namespace}: {verb} {report.removed} session(s): "
            f"{report.expired} expired, {report.lifetime_ended} past lifetime, "
            f"{report.evicted} evicted; {report.bytes_freed} bytes; "
            f"{report.scanned} scanned in {report.duration_s:.3f}s"
            + ("" if report.complete else " (stopped early; the next run continues)")
            + (
                ""
                if report.extra.get("evictions_settled", True)
                else "; Redis kept evicting keys meanwhile: counts may be off until the next run"
            )
        )


def _url_source(ctx: click.Context) -> str:
    """``--redis-url`` or the variable it came from (the operator names its Secret)."""
    if ctx.get_parameter_source("redis_url") is ParameterSource.COMMANDLINE:
        return "--redis-url"
    return url_source({}, os.environ)


def _flag_or_variable(ctx: click.Context, name: str) -> str:
    """What the user wrote for option ``name``: its flag, or the variable it came from."""
    option = next(p for p in ctx.command.params if p.name == name)
    if ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT and option.envvar:
        return str(option.envvar)
    return max(option.opts, key=len)


def _settings(
    url: str, namespace: str, policy: str | None, batch_size: int | None
) -> SessionSettings:
    """Flags > environment > ``--policy`` FILE (else the mounted policy) > defaults."""
    values: dict[str, Any] = policy_file(policy) if policy else mounted_policy(os.environ)
    return (
        SessionSettings()
        .merged(**values)
        .merged(**from_environment(os.environ))
        .merged(url=url, namespace=namespace, batch_size=batch_size)
    )


async def _run(
    settings: SessionSettings, max_batches: int | None, dry_run: bool, verify: bool = False
) -> CleanupReport:
    from agent_lib.sessions.manager import SessionManager

    # A one-shot run starts no periodic cleaner, whatever SESSION_CLEANUP_INTERVAL says.
    options = settings.manager_options() | {"cleanup_interval": None}
    manager = SessionManager.from_url(settings.url, **options)
    async with manager:
        return await manager.cleanup(max_batches=max_batches, dry_run=dry_run, verify=verify)


def _write_termination_log(summary: dict[str, Any]) -> None:
    """Best effort: the file exists only inside a Kubernetes container."""
    path = Path(os.environ.get("HOURGLASS_TERMINATION_LOG", str(TERMINATION_LOG)))
    if path.exists() and os.access(path, os.W_OK):
        try:
            path.write_text(json.dumps(summary, sort_keys=True) + "\n")
        except OSError:
            return
