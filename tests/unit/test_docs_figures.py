"""Every benchmark figure in the docs is the published one (``bench/results/latest.json``).

``docs/benchmarks.md`` is rendered by ``python -m bench --publish``: it must be exactly
what the renderer gives from the published files. Elsewhere a figure is quoted beside
its metric's name, ``51.8 ms (`local_edit_to_agent_p50_ms`)``, and must equal the
published value at the precision quoted; a measured figure (``p99 92 ms``) not quoted
that way is a figure copied by hand, and fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import report

REPO = Path(__file__).resolve().parents[2]
METRICS: dict[str, float] = json.loads(report.RESULTS.read_text())["metrics"]
DOCS = sorted(
    {
        REPO / "README.md",
        *REPO.glob("docs/**/*.md"),
        *REPO.glob("examples/**/README.md"),
        *REPO.glob("helm/**/README.md"),
        *REPO.glob("manifests/**/README.md"),
    }
    - {report.DOC}
)
_NUMBER = r"(\d[\d,]*(?:\.\d+)?)"
_UNIT = r"(?:\s?(?:ms|s|%|MiB|x))?"
QUOTED = re.compile(rf"{_NUMBER}{_UNIT}\s\(`([a-z0-9_]+)`\)")
_STATISTIC = re.compile(rf"\b(?:p\d\d|median|mean|max|min)\s+{_NUMBER}\s?(?:ms|s|%|MiB)\b")


def _sentences(text: str) -> list[str]:
    """Paragraphs joined, then cut at sentence ends and table cells."""
    parts: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.lstrip().startswith(("```", "~~~")):
            continue
        joined = " ".join(line.strip() for line in paragraph.splitlines())
        for cell in joined.split("|"):
            parts.extend(re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", cell))
    return parts


def _matches(quoted: str, value: float) -> bool:
    digits = len(quoted.partition(".")[2])
    return round(value, digits) == float(quoted.replace(",", ""))


def test_the_benchmarks_page_is_what_publish_renders() -> None:
    results = json.loads(report.RESULTS.read_text())
    series = json.loads(report.SERIES.read_text())
    plots = {
        "cleanup": report.IMAGES / "cleanup_scaling.png",
        "reload": report.IMAGES / "reload_latency.png",
    }
    expected = report.render_markdown(results, series, plots, report.DOC.parent)
    assert report.DOC.read_text() == expected, (
        "docs/benchmarks.md differs from what `python -m bench --publish` renders from "
        "bench/results/: never edit it by hand"
    )


def test_every_figure_quoted_beside_its_metric_is_the_published_one() -> None:
    checked = 0
    for path in DOCS:
        for match in QUOTED.finditer(path.read_text()):
            number, name = match.groups()
            where = f"{path.relative_to(REPO)}: {match.group(0)}"
            assert name in METRICS, f"{where}: no such metric in bench/results/latest.json"
            assert _matches(number, METRICS[name]), (
                f"{where}: the published figure is {METRICS[name]:.4g}"
            )
            checked += 1
    assert checked >= 4  # the local and cluster edit-to-agent figures, at least


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_measured_figure_is_copied_by_hand(path: Path) -> None:
    """A percentile, median or extreme with a unit is a measurement: it must name its
    metric, so that the check above compares it with the published one."""
    for sentence in _sentences(path.read_text()):
        checked = {m.start(1) for m in QUOTED.finditer(sentence)}
        for figure in _STATISTIC.finditer(sentence):
            assert figure.start(1) in checked, (
                f"{path.relative_to(REPO)}: {figure.group(0)!r} is a measured figure not "
                f"quoted as 'N unit (`metric`)', so no test checks it: {sentence}"
            )


def test_the_checker_catches_a_figure_copied_by_hand() -> None:
    sentence = "p50 55 ms, p99 92 ms (`local_edit_to_agent_p50_ms`, `local_edit_to_agent_p99_ms`)."
    parts = _sentences(sentence)
    assert parts and not list(QUOTED.finditer(parts[0]))
    assert [m.group(1) for m in _STATISTIC.finditer(parts[0])] == ["55", "92"]
    assert not _matches("55", 51.78)
    assert _matches("51.8", 51.78) and _matches("52", 51.78)
