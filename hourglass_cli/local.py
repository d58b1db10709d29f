"""``hourglass local``: the operator, the kubelet and the cleanup CronJob on one machine.

Renders the TimeoutProfile/SessionPolicy files into ``STATE_DIR/config/`` exactly as
the operator would, publishes them with the kubelet's atomic ``..data`` swap, runs an
embedded Valkey (or uses ``--redis-url``), cleans sessions on the policy's schedule
and shows a live status. ``--once`` renders, cleans once and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from agent_lib.errors import ConfigError
from agent_lib.sessions.store_url import check_store_url
from hourglass_cli._local_runtime import LocalOptions, LocalRuntime
from hourglass_cli._local_status import LocalStatus, PlainView, make_view, redact
from hourglass_cli.valkey_server import EmbeddedValkey, ValkeyError

DEFAULT_PATHS = ("config/",)
DEFAULT_STATE_DIR = ".hourglass"
LOCK_FILE = "lock"


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where the rendered config, the Valkey data and the env file go.",
)
@click.option(
    "--redis-url",
    default=None,
    metavar="URL",
    help="Use this Redis/Valkey instead of starting an embedded Valkey.",
)
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace to render (default: the one the files name, else 'local').",
)
@click.option(
    "--once",
    is_flag=True,
    help="Render, clean once, print a JSON summary on stdout (the env lines on stderr), exit.",
)
def local(
    paths: tuple[str, ...],
    state_dir: str,
    redis_url: str | None,
    namespace: str | None,
    once: bool,
) -> None:
    """Run Hourglass on this machine, without a cluster, from the specs under PATHS.

    PATHS are YAML files or folders (default: config/). Edits are picked up live; an
    invalid edit is shown and the last good config is kept. Ctrl-C stops everything
    local mode started.
    """
    if redis_url is not None:
        try:
            check_store_url(redis_url, "--redis-url")
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
    options = LocalOptions(
        paths=paths or DEFAULT_PATHS,
        state_dir=Path(state_dir).resolve(),
        namespace=namespace,
        redis_url=redis_url,
    )
    for path in options.paths:
        if not Path(path).exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATH")
    with _state_lock(options.state_dir):
        code = asyncio.run(_main(options, once))
    if code:
        sys.exit(code)


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    """One ``hourglass local`` per state folder: two runs (``make run`` and a plain one)
    would otherwise publish over each other and share one Valkey's data."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / LOCK_FILE).open("a")
    except OSError as error:
        raise click.ClickException(
            f"--state-dir {state_dir}: cannot use it: {error.strerror or error}"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise click.ClickException(
                f"--state-dir {state_dir} is in use by another 'hourglass local'; "
                "stop it or pass another --state-dir"
            ) from None
        yield


async def _main(options: LocalOptions, once: bool) -> int:
    status = LocalStatus(config_dir=str(options.config_dir))
    runtime = LocalRuntime(options, status, PlainView(status))
    env_file = options.state_dir / "env"
    env_file.unlink(missing_ok=True)
    if not runtime.reload():
        click.echo(
            "hourglass local: the first render failed, nothing is served (fix the files "
            "above and start again)",
            err=True,
        )
        return 1
    valkey: EmbeddedValkey | None = None
    try:
        if options.redis_url is None:
            try:
                valkey = EmbeddedValkey(options.state_dir / "valkey").start()
            except ValkeyError as error:
                raise click.ClickException(str(error)) from None
            status.redis_url, status.redis_origin = valkey.url, f"embedded, pid {valkey.pid}"
        else:
            status.redis_url, status.redis_origin = options.redis_url, "--redis-url"
        _announce(options, status, once)
        if once:
            return await _once(runtime)
        await _live(runtime)
        return 0
    finally:
        env_file.unlink(missing_ok=True)
        if valkey is not None:
            valkey.stop()


def _announce(options: LocalOptions, status: LocalStatus, once: bool) -> None:
    """Print the two lines an agent needs; STATE_DIR/env holds them while local mode runs
    (scripts wait for it, then ``source`` it). The printed URL has its password masked
    (the env file, readable by its owner only, has it). With ``--once`` they go to
    stderr, so that stdout is the JSON summary alone."""
    lines = [f"HOURGLASS_CONFIG_DIR={options.config_dir}", f"REDIS_URL={status.redis_url}"]
    staged = options.state_dir / ".env.tmp"
    staged.write_text("\n".join(lines) + "\n")
    staged.chmod(0o600)  # a --redis-url may carry a password
    staged.replace(options.state_dir / "env")
    click.echo(lines[0], err=once)
    click.echo(f"REDIS_URL={redact(status.redis_url)}", err=once)
    sys.stdout.flush()


async def _once(runtime: LocalRuntime) -> int:
    report = await runtime.cleanup()
    sessions = await runtime.count_sessions()
    status = runtime.status
    summary: dict[str, Any] = {
        "namespace": status.namespace,
        "configDir": status.config_dir,
        "configHash": status.config_hash,
        "defaultProfile": status.default_profile,
        "profiles": status.profiles,
        "redisUrl": redact(status.redis_url),
        "sessions": sessions,
        "cleanup": report,
        "errors": [e for e in (status.cleanup_error, status.sessions_error) if e],
    }
    click.echo(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


async def _live(runtime: LocalRuntime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    view = make_view(runtime.status, live=sys.stdout.isatty())
    runtime.view = view
    try:
        await runtime.run(stop)
    finally:
        view.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        click.echo("stopped", err=True)
