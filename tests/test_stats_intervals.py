"""Wilson score intervals, sample sizes and the two-proportion z-test: published values."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from shared.stats.intervals import Z_95, sample_size, two_proportion_z_test, wilson_interval

pytestmark = pytest.mark.no_db

# The quantile statsmodels and scipy use; DESIGN.md fixes Z_95 = 1.959964 (6 decimals).
Z_EXACT = NormalDist().inv_cdf(0.975)


# Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion:
# comparison of seven methods. Statistics in Medicine 17(8), 857-872, Table II, method 3
# (Wilson score interval without continuity correction), to the 4 decimals printed.
@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_reproduces_newcombe_1998(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert (round(interval[0], 4), round(interval[1], 4)) == (low, high)


def test_z_is_the_design_constant() -> None:
    assert Z_95 == 1.959964
    assert abs(Z_95 - Z_EXACT) < 1e-6


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_agrees_with_statsmodels(case: tuple[int, int]) -> None:
    successes, trials = case
    low, high = wilson_interval(successes, trials, z=Z_EXACT)
    ref_low, ref_high = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)
    default_low, default_high = wilson_interval(successes, trials)
    assert 0.0 <= default_low <= successes / trials <= default_high <= 1.0
    assert default_low == pytest.approx(ref_low, abs=1e-7)


def test_wilson_at_the_edges() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(1, 1)
    assert 0.0 < low < 1.0 == high


@pytest.mark.parametrize(("successes", "trials"), [(0, 0), (1, 0), (-1, 5), (6, 5)])
def test_wilson_refuses_impossible_counts(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match=r"trials|successes"):
        wilson_interval(successes, trials)


@pytest.mark.parametrize(
    ("accuracy", "margin", "expected"),
    [
        # The textbook case (Cochran 1977, ch. 4): p = 0.5, +-5 points, 95 %: 384.15 -> 385.
        (0.5, 0.05, 385),
        (0.5, 0.03, 1068),  # 1067.07
        (0.9, 0.05, 139),  # 138.29
        (0.95, 0.02, 457),  # 456.17
        (0.98, 0.01, 753),  # 752.93
        (1.0, 0.05, 1),  # no variance, yet one audit is needed to know anything
    ],
)
def test_sample_size(accuracy: float, margin: float, expected: int) -> None:
    assert sample_size(accuracy, margin) == expected
    assert sample_size(accuracy, margin) == max(
        1, math.ceil(1.959964**2 * accuracy * (1 - accuracy) / margin**2)
    )


def test_sample_size_does_not_round_float_noise_up() -> None:
    # 2^2 * 0.1 * 0.9 / 0.02^2 is 900 exactly, though in floats it is 900.0000000000001.
    assert 2.0 * 2.0 * 0.1 * (1.0 - 0.1) / (0.02 * 0.02) > 900
    assert sample_size(0.1, 0.02, z=2.0) == 900


@pytest.mark.parametrize(("accuracy", "margin"), [(-0.1, 0.05), (1.1, 0.05), (0.5, 0), (0.5, 1)])
def test_sample_size_refuses_impossible_arguments(accuracy: float, margin: float) -> None:
    with pytest.raises(ValueError, match="between"):
        sample_size(accuracy, margin)


def test_two_proportion_z_test_worked_example() -> None:
    # 45/50 correct against 30/50: pooled p = 0.75, se = sqrt(0.75 * 0.25 * (2/50)) = 0.0866,
    # z = 0.3 / 0.0866 = 3.4641 (= sqrt 12), two-sided p = 0.000532.
    z, p = two_proportion_z_test(45, 50, 30, 50)
    assert z == pytest.approx(math.sqrt(12), abs=1e-12)
    assert round(p, 6) == 0.000532


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 5_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_two_proportion_z_test_agrees_with_statsmodels(
    first: tuple[int, int], second: tuple[int, int]
) -> None:
    (x1, n1), (x2, n2) = first, second
    z, p = two_proportion_z_test(x1, n1, x2, n2)
    if (x1 + x2) in (0, n1 + n2):
        assert (z, p) == (0.0, 1.0)  # statsmodels divides 0 by 0 here
        return
    ref_z, ref_p = proportions_ztest([x1, x2], [n1, n2])
    assert z == pytest.approx(ref_z, rel=1e-9, abs=1e-12)
    assert p == pytest.approx(ref_p, rel=1e-9, abs=1e-15)
    assert two_proportion_z_test(x2, n2, x1, n1) == (-z, p)


def test_two_proportion_z_test_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="trials"):
        two_proportion_z_test(1, 0, 1, 2)
    with pytest.raises(ValueError, match="successes"):
        two_proportion_z_test(3, 2, 1, 2)
