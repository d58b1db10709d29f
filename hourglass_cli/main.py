"""Entry point of the ``hourglass`` console script."""

from __future__ import annotations

import importlib

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


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help="(not available in this build)")
    def _stub() -> None:
        raise click.ClickException(f"'hourglass {name}' is not available in this build")

    return _stub


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hourglass")
def cli() -> None:
    """Hourglass: timeouts and session lifecycle for AI-agent services on Kubernetes."""


def main() -> None:
    cli()
