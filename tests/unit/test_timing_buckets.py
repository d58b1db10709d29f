"""The latency buckets give a p99.9 within ±10% across 10 ms .. 30 min, read as PromQL reads it.

The bound is distribution-free: histogram_quantile interpolates linearly inside the bucket
``[a, b]`` that holds the quantile, so estimate and truth both lie in ``[a, b]`` and
``|estimate - truth| / truth <= b / a - 1``. The first test checks that ratio over the
whole range; the others compute histogram_quantile exactly as Prometheus does on
synthetic samples (lognormal tails at every scale, and the adversarial case of a point
mass at a bucket's lower edge) recorded through the real recorder.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest

from agent_lib.timeouts.timing import BUCKETS, LatencyRecorder

Q = 0.999


def histogram_quantile(q: float, bounds: tuple[float, ...], cumulative: list[int]) -> float:
    """Prometheus' classic histogram_quantile (promql/quantile.go: bucketQuantile)."""
    total = cumulative[-1]
    rank = q * total
    index = next(i for i, c in enumerate(cumulative) if c >= rank)
    if index == len(bounds):  # the +Inf bucket: Prometheus returns the last finite bound
        return bounds[-1]
    start = 0.0 if index == 0 else bounds[index - 1]
    below = 0 if index == 0 else cumulative[index - 1]
    in_bucket = cumulative[index] - below
    return start + (bounds[index] - start) * ((rank - below) / in_bucket)


def true_quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(q * len(ordered)) - 1]


def estimate(samples: list[float]) -> float:
    recorder = LatencyRecorder()
    for value in samples:
        recorder.observe("op", value, "ok")
    cumulative, _sum, _count = recorder.snapshot()[("op", "ok")]
    return histogram_quantile(Q, BUCKETS, cumulative)


def test_bucket_ratio_bounds_the_interpolation_error_below_ten_percent() -> None:
    assert BUCKETS[0] <= 0.01 and BUCKETS[-1] >= 1800
    worst = max(b / a for a, b in itertools.pairwise(BUCKETS))
    assert worst - 1 < 0.10


@pytest.mark.parametrize("median", [0.005, 0.02, 0.15, 1.0, 7.0, 45.0, 120.0])
@pytest.mark.parametrize("sigma", [0.3, 0.8])
def test_lognormal_p999_within_ten_percent(median: float, sigma: float) -> None:
    rng = random.Random(f"{median}-{sigma}")
    samples = [rng.lognormvariate(math.log(median), sigma) for _ in range(20_000)]
    truth = true_quantile(samples, Q)
    assert 0.01 <= truth <= 1800, "the case must lie in the promised range"
    assert abs(estimate(samples) - truth) / truth <= 0.10


@pytest.mark.parametrize("edge", [1, 17, 64, 100, 127])
def test_point_mass_at_a_lower_edge_is_the_worst_case_and_still_within(edge: int) -> None:
    """Every sample just above bound ``edge - 1``: the estimate lands near the upper bound."""
    value = BUCKETS[edge - 1] * (1 + 1e-9)
    samples = [value] * 5_000
    error = abs(estimate(samples) - value) / value
    assert error <= 0.10
    assert error > 0.09, "this case must exercise the worst case, or the test proves nothing"


def test_a_coarser_scheme_fails_the_same_check() -> None:
    """The check has teeth: the old elapsed buckets (0.01, 0.05, ...) miss by far more."""
    from agent_lib.timeouts.metrics import ELAPSED_BUCKETS

    rng = random.Random(7)
    samples = [rng.lognormvariate(math.log(1.0), 0.8) for _ in range(20_000)]
    truth = true_quantile(samples, Q)
    coarse = tuple(float(b) for b in ELAPSED_BUCKETS)
    cumulative = [sum(1 for s in samples if s <= b) for b in coarse] + [len(samples)]
    assert abs(histogram_quantile(Q, coarse, cumulative) - truth) / truth > 0.10
