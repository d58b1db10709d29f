"""``hourglass recommend -n NS``: what observed latency says each timeout should be.

By default the table is the operator's ``status.recommendations`` of the namespace's
tuned TimeoutProfiles. With ``--prometheus-url`` it is computed now, by the operator's
own code, from that Prometheus (profiles from the cluster, or from ``-f FILE``): the
same queries, censoring and bounds, nothing written anywhere; a profile whose tuning is
``Off`` (or absent) is then computed as ``Recommend`` with its other tuning settings.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HEADERS = ("PROFILE", "NAME", "CURRENT", "OBSERVED", "RECOMMENDED", "SAMPLES", "CENSORED")


@click.command("recommend")
@click.option("-n", "--namespace", required=True, help="The environment namespace.")
@click.option(
    "--prometheus-url",
    default=None,
    help="Compute the recommendations now from this Prometheus (default: read status).",
)
@click.option(
    "-f",
    "--filename",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TimeoutProfiles from this YAML file instead of the cluster (with --prometheus-url).",
)
@click.option(
    "--selector",
    default='namespace="{namespace}"',
    show_default=True,
    help="PromQL label matchers of the namespace's agent series.",
)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--kubeconfig", default=None, help="Path to a kubeconfig (default: $KUBECONFIG).")
@click.option("--context", default=None, help="The kubeconfig context to use.")
def recommend(
    namespace: str,
    prometheus_url: str | None,
    filename: Path | None,
    selector: str,
    output: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Print each tuned timeout: current value, observed pXX, recommendation, samples."""
    if len(namespace) > 63 or not _NAMESPACE.match(namespace):
        raise click.BadParameter(
            "must be a Kubernetes namespace name (lowercase letters, digits, '-')",
            param_hint="'--namespace'",
        )
    if filename is not None and prometheus_url is None:
        raise click.UsageError("-f/--filename needs --prometheus-url (a file has no status)")
    if prometheus_url is not None and not re.match(r"^https?://[^\s@/]+", prometheus_url):
        raise click.BadParameter("must be an http(s):// URL", param_hint="'--prometheus-url'")
    bodies = (
        _from_file(filename, namespace)
        if filename is not None
        else _from_cluster(namespace, kubeconfig, context)
    )
    profiles = [b for b in bodies if b.get("kind") == "TimeoutProfile"]
    if prometheus_url is not None:
        profiles = _computed(namespace, profiles, prometheus_url, selector)
    rows = table_rows(profiles)
    if output == "json":
        click.echo(json.dumps([dict(zip(HEADERS, row, strict=True)) for row in rows], indent=2))
        return
    if not rows:
        click.echo(f"no recommendations in namespace {namespace} (spec.tuning.mode Off?)")
        return
    click.echo(render_table(rows, _percentile_label(profiles)))


def table_rows(profiles: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for body in sorted(profiles, key=lambda b: str(b.get("metadata", {}).get("name"))):
        name = str(body.get("metadata", {}).get("name"))
        recommendations = (body.get("status") or {}).get("recommendations") or {}
        for timeout, rec in sorted(recommendations.items()):
            recommended = str(rec.get("value", "-"))
            if rec.get("effective") and rec.get("effective") != rec.get("value"):
                recommended += f" (running {rec['effective']})"
            rows.append(
                (
                    name,
                    timeout,
                    str(rec.get("current", "-")),
                    str(rec.get("observed", "-")),
                    recommended,
                    str(rec.get("samples", "-")),
                    "yes" if rec.get("censored") else "no",
                )
            )
    return rows


def render_table(rows: Sequence[tuple[str, ...]], percentile: str) -> str:
    headers = list(HEADERS)
    headers[3] = f"OBSERVED {percentile}"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _percentile_label(profiles: Sequence[Mapping[str, Any]]) -> str:
    found = {
        rec.get("percentile")
        for body in profiles
        for rec in ((body.get("status") or {}).get("recommendations") or {}).values()
    }
    return f"P{found.pop():g}" if len(found) == 1 else "PXX"


def _from_cluster(namespace: str, kubeconfig: str | None, context: str | None) -> list[Any]:
    from hourglass_cli.rollout import _client, _resources

    return _resources(_client(kubeconfig, context), namespace, "TimeoutProfile", "timeoutprofiles")


def _from_file(path: Path, namespace: str) -> list[dict[str, Any]]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except yaml.YAMLError as error:
        raise click.ClickException(f"{path}: not YAML: {error}") from None
    for document in documents:
        metadata = document.setdefault("metadata", {})
        metadata.setdefault("namespace", namespace)
        metadata.setdefault("uid", f"file:{metadata.get('name')}")
    return documents


def _recommending(body: Mapping[str, Any]) -> dict[str, Any]:
    """Asked explicitly, a profile without tuning (or Off) is computed as Recommend."""
    spec = dict(body.get("spec") or {})
    tuning = dict(spec.get("tuning") or {})
    if tuning.get("mode", "Off") == "Off":
        tuning["mode"] = "Recommend"
    return {**body, "spec": {**spec, "tuning": tuning}}


def _computed(
    namespace: str, profiles: Sequence[Mapping[str, Any]], url: str, selector: str
) -> list[dict[str, Any]]:
    from hourglass_operator.tuning_loop import Tuner

    statuses: dict[str, dict[str, Any]] = {}

    async def keep(_ns: str, body: Mapping[str, Any], change: Any) -> dict[str, Any]:
        uid = str(body.get("metadata", {}).get("uid"))
        statuses[uid] = change(statuses.get(uid, body.get("status") or {}))
        return statuses[uid]

    asked = [_recommending(body) for body in profiles]
    asyncio.run(Tuner(keep, url, selector).run_round(namespace, asked))
    out = []
    for body in asked:
        uid = str(body.get("metadata", {}).get("uid"))
        status = statuses.get(uid)
        if status is not None:
            for condition in status.get("conditions") or ():
                if condition.get("type") == "Tuned" and condition.get("status") == "False":
                    name = body.get("metadata", {}).get("name")
                    click.echo(f"{name}: {condition['reason']}: {condition['message']}", err=True)
            out.append({**body, "status": status})
    return out
