"""Entry point of the ``hourglass`` console script."""

from __future__ import annotations

import importlib
import os
import sys

import click

_VERBS = {
    "validate": "hourglass_cli.validate:validate",
    "render": "hourglass_cli.render:render",
    "crds": "hourglass_cli.crds:crds",
    "cleanup": "hourglass_cli.cleanup:cleanup",
    "operator": "hourglass_cli.operator:operator",
    "local": "hourglass_cli.local:local",
    "rollout": "hourglass_cli.rollout:rollout",
    "recommend": "hourglass_cli.recommend:recommend",
}


class _LazyGroup(click.Group):
    """Imports a verb's module only when it runs, so `hourglass validate` stays fast
    and works without the operator's or Redis' dependencies installed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _VERBS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                return _unavailable(cmd_name)
            raise
        command: click.Command = getattr(module, attribute)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown verb names the closest one, as kubectl does."""
        name = click.utils.make_str(args[0]) if args else ""
        if args and name not in _VERBS and not name.startswith("-"):
            from agent_lib.config.suggest import did_you_mean

            hint = did_you_mean(name, _VERBS, list_all=True)
            raise click.UsageError(f"No such command {name!r}{hint}", ctx)
        return super().resolve_command(ctx, args)


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help="(not available in this build)")
    def _stub() -> None:
        raise click.ClickException(f"'hourglass {name}' is not available in this build")

    return _stub


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hourglass")
def cli() -> None:
    """Hourglass: timeouts and session lifecycle for AI-agent services on Kubernetes."""


DEBUG_VARIABLE = "HOURGLASS_DEBUG"
INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE: neither bad input (2) nor a store failure (1)


def main() -> None:
    """The console script: a bug shows as one line, never a traceback that might quote
    a value such as a URL (``HOURGLASS_DEBUG=1`` shows it; the operator always does)."""
    try:
        cli()
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE) or sys.argv[1:2] == ["operator"]:
            raise
        click.echo(
            f"Error: unexpected {type(error).__name__}: a bug in hourglass, not in your input "
            f"(run again with {DEBUG_VARIABLE}=1 for the traceback, and report it)",
            err=True,
        )
        sys.exit(INTERNAL_ERROR)
