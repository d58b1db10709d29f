"""The plot series of docs/benchmarks.md measure for real (tiny sizes, real valkey-servers).

bench/cleanup_scaling.py reuses the sessions benchmark's populations, so this also fails
when that method changes shape under it.
"""

from __future__ import annotations

import pytest

from bench import cleanup_scaling


@pytest.mark.timeout(120)
def test_cleanup_series_measures_each_population(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cleanup_scaling, "EXPIRED", 500)
    monkeypatch.setattr(cleanup_scaling, "LIVE_QUICK", (0, 2_000))
    monkeypatch.setattr(cleanup_scaling, "REPEATS", 2)
    series = cleanup_scaling.series(quick=True)
    assert series["expired"] == 500 and series["repeats"] == 2
    assert [p["live"] for p in series["points"]] == [0, 2_000]
    for point in series["points"]:
        assert 0 < point["best_s"] <= point["median_s"] <= point["max_s"]
        assert len(point["times_s"]) == 2 and min(point["times_s"]) == point["best_s"]
        assert 0 < point["ratio_min"] <= point["ratio_max"]
    assert series["points"][0]["ratio_min"] == series["points"][0]["ratio_max"] == 1.0
