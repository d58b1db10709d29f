"""``hourglass validate``: check specs in CI before they reach a cluster."""

from __future__ import annotations

import json

import click

from hourglass_cli._specs import load_specs, print_problems


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-n", "--namespace", default=None, help="Namespace for documents that name none.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
def validate(paths: tuple[str, ...], namespace: str | None, as_json: bool) -> None:
    """Check every TimeoutProfile and SessionPolicy under PATHS (files or folders).

    Prints one line per problem, `file:line: kind/name: field: reason`, and exits 1
    when there is any.
    """
    parsed = load_specs(paths, namespace)
    count = sum(len(items) for items in parsed.by_namespace.values())
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in parsed.problems], indent=2))
    else:
        print_problems(parsed.problems)
        verdict = f"{len(parsed.problems)} problem(s)" if parsed.problems else "all valid"
        click.echo(f"{count} resource(s) checked: {verdict}", err=True)
    if parsed.problems:
        raise SystemExit(1)
