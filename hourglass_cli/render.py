"""``hourglass render``: print the ConfigMap the operator would write."""

from __future__ import annotations

import click

from agent_lib.config import RenderError, render_config
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.timeout_profiles import TimeoutProfile
from hourglass_cli._specs import load_specs, print_problems


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "-n", "--namespace", default=None, help="Render this namespace (default: every one found)."
)
@click.option(
    "--content-only",
    is_flag=True,
    help="Print only the hourglass.yaml that agents read, not the ConfigMap around it.",
)
def render(paths: tuple[str, ...], namespace: str | None, content_only: bool) -> None:
    """Render the hourglass-config ConfigMap for the specs under PATHS.

    Byte-for-byte what the operator writes; any invalid spec prints its problems
    and exits 1 without output.
    """
    parsed = load_specs(paths, namespace)
    if parsed.problems:
        print_problems(parsed.problems)
        raise SystemExit(1)
    outputs = []
    for ns, resources in sorted(parsed.by_namespace.items()):
        profiles = [r for r in resources if isinstance(r, TimeoutProfile)]
        policies = [r for r in resources if isinstance(r, SessionPolicy)]
        try:
            rendered = render_config(ns, profiles, policies)
        except RenderError as error:
            print_problems(error.problems)
            raise SystemExit(1) from None
        outputs.append(rendered.content if content_only else rendered.yaml)
    if not outputs:
        click.echo("no TimeoutProfile or SessionPolicy found", err=True)
        raise SystemExit(1)
    click.echo("---\n".join(outputs), nl=False)
