"""Proportions: Wilson score intervals, audit sample sizes, and the two-proportion z-test.

Pure functions of counts, no I/O, no numpy: they run once per report row.
"""

from __future__ import annotations

import math

# The 0.975 quantile of the standard normal distribution, as DESIGN.md fixes it for every
# 95 % interval in Plumbline.
Z_95 = 1.959964


def _check_counts(successes: int, trials: int) -> None:
    if trials <= 0:
        raise ValueError("trials must be positive")
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / trials``.

    With p = x / n: (p + z^2/(2n) -+ z sqrt(p (1 - p) / n + z^2 / (4 n^2))) / (1 + z^2 / n).
    Unlike the Wald interval it stays within [0, 1] and keeps near its nominal coverage for
    small samples and proportions near 0 or 1 (accuracy is usually near 1).
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
    inference. Journal of the American Statistical Association 22(158), 209-212; method 3 of
    Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion:
    comparison of seven methods. Statistics in Medicine 17(8), 857-872.
    """
    _check_counts(successes, trials)
    p = successes / trials
    z2 = z * z
    scale = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / scale
    half_width = z * math.sqrt(p * (1.0 - p) / trials + z2 / (4 * trials * trials)) / scale
    # At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1), which rounding would blur.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return low, high


def sample_size(expected_accuracy: float, margin: float, *, z: float = Z_95) -> int:
    """How many audits estimate an accuracy to within +-``margin`` at 95 % confidence.

    n = ceil(z^2 p (1 - p) / e^2), p the expected accuracy and e the margin of error (both as
    fractions: 0.95 and 0.02, not percent), for a large population (no finite population
    correction): n0 = t^2 p q / d^2 of Cochran, W. G. (1977). Sampling Techniques, 3rd ed.,
    Wiley, ch. 4.
    Example: p = 0.5, e = 0.05 gives ceil(384.15) = 385. At least one audit is always
    needed, also when p is 0 or 1.
    """
    if not 0.0 <= expected_accuracy <= 1.0:
        raise ValueError("expected_accuracy must be between 0 and 1")
    if not 0.0 < margin < 1.0:
        raise ValueError("margin must be between 0 and 1 (exclusive)")
    exact = z * z * expected_accuracy * (1.0 - expected_accuracy) / (margin * margin)
    # Rounded to 1e-9 first so that float noise on an exact whole number (100.00000000000001)
    # does not add an audit.
    return max(1, math.ceil(round(exact, 9)))


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """The pooled two-proportion z-test of x1/n1 against x2/n2: (z, two-sided p-value).

    z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2)) with the pooled p = (x1 + x2) / (n1 + n2),
    p-value = P(|Z| >= |z|) = erfc(|z| / sqrt 2); z^2 is the uncorrected chi-square of the
    2 x 2 table. Fleiss, J. L., Levin, B., Paik, M. C. (2003). Statistical Methods for Rates
    and Proportions, 3rd ed., Wiley (comparison of two independent proportions).
    When both proportions are 0 or both are 1 there is no variation and no evidence of a
    difference: (0.0, 1.0).
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance == 0.0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2.0))
