"""``hourglass validate``: check specs in CI before they reach a cluster."""

from __future__ import annotations

import json

import click

from agent_lib.config import Problem
from hourglass_cli._specs import load_specs, print_problems


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-n", "--namespace", default=None, help="Namespace for documents that name none.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Exit 0 when PATHS hold no TimeoutProfile or SessionPolicy (else that is an error).",
)
def validate(
    paths: tuple[str, ...], namespace: str | None, as_json: bool, allow_empty: bool
) -> None:
    """Check every TimeoutProfile and SessionPolicy under PATHS (files or folders).

    Prints one line per problem, `file:line: kind/name: field: reason`, and exits 1
    when there is any, or when PATHS hold no spec at all (a CI check pointed at the
    wrong folder must not pass); --allow-empty accepts that.
    """
    parsed = load_specs(paths, namespace)
    problems = list(parsed.problems)
    if not parsed.read and not problems and not allow_empty:
        where = f" in namespace {namespace}" if namespace else ""
        problems.append(
            Problem(
                f"no TimeoutProfile or SessionPolicy{where} under {', '.join(paths)} "
                "(pass --allow-empty if that is expected)"
            )
        )
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in problems], indent=2))
    else:
        print_problems(problems)
        click.echo(_summary(len(parsed.read), parsed.skipped, len(problems)), err=True)
    if problems:
        raise SystemExit(1)


def _summary(read: int, skipped: int, problems: int) -> str:
    others = f" ({skipped} other document(s) skipped)" if skipped else ""
    verdict = f"{problems} problem(s)" if problems else "all valid"
    return f"{read} resource(s) checked{others}: {verdict}"
