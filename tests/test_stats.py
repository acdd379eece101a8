"""The interval estimates against an independent implementation (scipy), over a grid of counts."""

from __future__ import annotations

import math

import pytest
from scipy import optimize, stats

from em_harness.stats import Z_95, mean_interval, newcombe_interval, wilson_interval

COUNTS = [(x, n) for n in (1, 2, 5, 10, 37, 100, 1000) for x in sorted({0, 1, n // 3, n // 2, n - 1, n}) if 0 <= x <= n]


def scipy_wilson(x: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (ci.low, ci.high)


def score_interval_by_root_finding(x: int, n: int) -> tuple[float, float]:
    """The Wilson interval from its definition: the p where |x/n - p| = z * sqrt(p (1 - p) / n)."""
    p_hat = x / n

    def gap(p: float) -> float:
        return abs(p_hat - p) - Z_95 * math.sqrt(p * (1 - p) / n)

    low = 0.0 if x == 0 else optimize.brentq(gap, 1e-15, min(p_hat, 1 - 1e-12))
    high = 1.0 if x == n else optimize.brentq(gap, max(p_hat, 1e-12), 1 - 1e-15)
    return (low, high)


@pytest.mark.parametrize(("x", "n"), COUNTS)
def test_wilson_matches_scipy_and_its_definition(x, n):
    ours = wilson_interval(x, n)
    assert ours == pytest.approx(scipy_wilson(x, n), abs=1e-12)
    assert ours == pytest.approx(score_interval_by_root_finding(x, n), abs=1e-9)


@pytest.mark.parametrize(("x1", "n1"), COUNTS[::3])
@pytest.mark.parametrize(("x2", "n2"), COUNTS[1::4])
def test_newcombe_hybrid_score_from_scipy_wilson_limits(x1, n1, x2, n2):
    (l1, u1), (l2, u2) = scipy_wilson(x1, n1), scipy_wilson(x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    expected = (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
    assert newcombe_interval(x1, n1, x2, n2) == pytest.approx(expected, abs=1e-12)


def test_empty_samples_have_no_interval():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert all(math.isnan(v) for v in newcombe_interval(1, 2, 0, 0))


@pytest.mark.parametrize(
    "values", [[0.1, 0.9, 0.5, 0.7], [0.25] * 3 + [0.75] * 5, [i / 99 for i in range(100)], [0.0, 1.0]]
)
def test_mean_interval_matches_scipy_normal_interval(values):
    mean, low, high = mean_interval(values)
    sem = stats.sem(values)  # sample SD (n - 1) over sqrt(n)
    ref_low, ref_high = stats.norm.interval(0.95, loc=stats.tmean(values), scale=sem)
    assert mean == pytest.approx(sum(values) / len(values))
    assert (low, high) == pytest.approx((max(0.0, ref_low), min(1.0, ref_high)), abs=1e-9)
