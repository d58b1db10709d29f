"""``hourglass crds``: print the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("crds")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, dir_okay=True, writable=True, path_type=Path),
    default=None,
    help="Also write one file per CRD (<plural>.hourglass.dev.yaml) into this folder.",
)
def crds(output_dir: Path | None) -> None:
    """Print both CRDs (TimeoutProfile, SessionPolicy) as multi-document YAML.

    The output is what manifests/crds/ and helm/hourglass/crds/ must contain,
    byte for byte; regenerate them with
    `hourglass crds --output-dir manifests/crds` after changing a model.
    """
    from hourglass_operator import crds as generator

    click.echo(generator.render_all(), nl=False)
    if output_dir is not None:
        for path in generator.write_files(output_dir):
            click.echo(f"wrote {path}", err=True)
