"""Loading specs from paths for the CLI verbs, with namespace selection."""

from __future__ import annotations

from collections.abc import Sequence

import click

from agent_lib.config import ParsedSpecs, Problem, load_paths, parse_documents
from agent_lib.config.specs import DEFAULT_NAMESPACE


def load_specs(paths: Sequence[str], namespace: str | None) -> ParsedSpecs:
    """Parse every document under ``paths``; ``namespace`` fills in a missing one."""
    loaded = load_paths(paths)
    parsed = parse_documents(loaded.documents, default_namespace=namespace or DEFAULT_NAMESPACE)
    parsed.problems[:0] = loaded.problems
    if namespace is not None:
        parsed.by_namespace = {
            ns: items for ns, items in parsed.by_namespace.items() if ns == namespace
        }
        parsed.problems = [p for p in parsed.problems if p.namespace in ("", namespace)]
        parsed.read = [ns for ns in parsed.read if ns == namespace]
    return parsed


def print_problems(problems: Sequence[Problem]) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line, p.kind, p.name, p.field)):
        click.echo(str(problem))
