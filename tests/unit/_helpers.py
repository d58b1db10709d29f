"""Helpers shared by unit test modules."""

from __future__ import annotations

from collections import Counter

import pytest

API_VERSION = "hourglass.dev/v1alpha1"


def document(kind: str, name: str, **spec: object) -> dict[str, object]:
    """A raw ``hourglass.dev/v1alpha1`` document of ``kind`` named ``name``."""
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def report_case_counts(
    request: pytest.FixtureRequest, title: str, cases: Counter[str], uncounted_suffix: str
) -> None:
    """Print how many generated cases each property ran, in the terminal summary.

    Counters whose name ends with ``uncounted_suffix`` (subsets such as accepted or
    valid cases) are listed but left out of the total.
    """
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not cases:
        return
    total = sum(n for name, n in cases.items() if not name.endswith(uncounted_suffix))
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(f"{title} (total {total}):")
        for name, count in sorted(cases.items()):
            reporter.write_line(f"  {name}: {count}")
