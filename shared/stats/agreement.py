"""Agreement among raters: Krippendorff's alpha, Fleiss' and Cohen's kappa, Gwet's AC1, P-bar.

Pure functions over numpy arrays, no I/O. The two shapes of input of the literature:

* reliability data (Krippendorff 2011): a raters x units matrix, one value per rater and
  unit, NaN where that rater did not rate that unit;
* unit counts (Fleiss 1971): a units x categories matrix, how many raters put each unit in
  each category (raters need not be the same people from unit to unit).

A statistic that the data leave undefined (a 0/0: no unit with two ratings, no variation at
all, a single category) raises `UndefinedStatistic` whose message says why in words a person
can act on; no statistic here is NaN (only `cohen_kappa_matrix`, a matrix for analysis,
marks its undefined pairs so).

Internally both shapes become a sparse tally of (unit, value, count) triples, so data with a
distinct value per rating (continuous interval data) cost no more than the ratings
themselves, and each statistic is a few grouped sums (``np.bincount``) over the tally.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = get_args(Level)

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

# A dense units x values grid (bincount) is cheaper than sorting the ratings up to this many
# cells (32 MB of int64); beyond it the (unit, value) keys are sorted instead.
_DENSE_CELLS = 1 << 22
# Pairs of (unit, value) triples evaluated at once for the ratio metric, and value pairs for
# its expected disagreement: bounds the temporary arrays to a few tens of MB.
_PAIR_BLOCK = 1 << 21


class UndefinedStatistic(ValueError):
    """The statistic has no value for these data (a 0/0); the message says why."""


@dataclass(frozen=True, slots=True)
class _Tally:
    """Ratings reduced to counts: ``count[i]`` ratings of ``values[value[i]]`` on ``unit[i]``.

    Triples are sorted by unit; ``ratings[u]`` is the number of ratings unit ``u`` received
    (zero for a unit nobody rated); ``values`` are the category values in increasing order.
    """

    unit: IndexArray
    value: IndexArray
    count: FloatArray
    ratings: FloatArray
    values: FloatArray

    @property
    def n_units(self) -> int:
        return len(self.ratings)

    def units_with(self, at_least: int) -> _Tally:
        """The units with at least ``at_least`` ratings, renumbered from zero."""
        keep = self.ratings >= at_least
        renumber = np.cumsum(keep) - 1
        triples = keep[self.unit]
        return _Tally(
            unit=renumber[self.unit[triples]],
            value=self.value[triples],
            count=self.count[triples],
            ratings=self.ratings[keep],
            values=self.values,
        )


def _sums(index: IndexArray, weights: FloatArray, length: int) -> FloatArray:
    """``weights`` summed by ``index`` (0 .. length - 1): the one grouping operation here."""
    # numpy's stubs type bincount as integer even with float weights.
    return np.bincount(index, weights=weights, minlength=length).astype(np.float64, copy=False)


# --- building tallies -------------------------------------------------------------------


def _reliability_data(data: ArrayLike) -> FloatArray:
    matrix = np.asarray(data, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("reliability data must be a raters x units matrix")
    if np.isinf(matrix).any():
        raise ValueError("ratings must be finite numbers (NaN marks a missing rating)")
    return matrix


def _declared_values(values: ArrayLike) -> FloatArray:
    declared = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(declared).all():
        raise ValueError("declared values must be finite numbers")
    if len(np.unique(declared)) != len(declared):
        raise ValueError("declared values must not repeat")
    return declared


def _factorize(observed: FloatArray, declared: FloatArray | None) -> tuple[FloatArray, IndexArray]:
    """The distinct values (increasing) and the index of each observed value among them."""
    if declared is not None:
        values = np.sort(declared)
        if not len(values):
            if observed.size:
                raise ValueError("a rating is not one of the declared values")
            return values, np.empty(0, dtype=np.intp)
        codes = np.minimum(np.searchsorted(values, observed), len(values) - 1)
        if observed.size and not np.array_equal(values[codes], observed):
            raise ValueError("a rating is not one of the declared values")
        return values, codes
    values, codes = np.unique(observed, return_inverse=True)
    return values, codes.reshape(-1)


def _tally(unit: IndexArray, code: IndexArray, ratings: IndexArray, values: FloatArray) -> _Tally:
    n_units, n_values = len(ratings), len(values)
    if n_values == 0:
        keys = counts = np.empty(0, dtype=np.intp)
    elif n_units * n_values <= max(_DENSE_CELLS, 4 * unit.size):
        grid = np.bincount(unit * n_values + code, minlength=n_units * n_values)
        keys = np.flatnonzero(grid)
        counts = grid[keys]
    else:
        keys, counts = np.unique(unit * n_values + code, return_counts=True)
    return _Tally(
        unit=keys // max(n_values, 1),
        value=keys % max(n_values, 1),
        count=counts.astype(np.float64),
        ratings=ratings.astype(np.float64),
        values=values,
    )


def _tally_of_whole_numbers(matrix: FloatArray, missing: NDArray[np.bool_]) -> _Tally | None:
    """The tally of whole-number ratings in a modest range (category codes, Likert scales).

    Each rating's offset from the smallest is its column in a units x values grid that one
    ``np.bincount`` fills, missing ratings going to an extra column: no boolean selection and
    no sort, which are most of the cost otherwise. None when the ratings do not qualify.
    """
    n_raters, n_units = matrix.shape
    if missing.all():
        return None
    low = float(np.fmin.reduce(matrix, axis=None))
    span = float(np.fmax.reduce(matrix, axis=None)) - low
    if not span.is_integer() or n_units * (span + 2) > max(_DENSE_CELLS, 4 * matrix.size):
        return None
    width = int(span) + 2
    offsets = matrix - low
    np.copyto(offsets, width - 1, where=missing)
    if not np.array_equal(offsets, np.rint(offsets)):
        return None
    keys = offsets.astype(np.intp)
    keys += width * np.arange(n_units)
    grid = np.bincount(keys.reshape(-1), minlength=n_units * width).reshape(n_units, width)
    used = grid[:, :-1].any(axis=0)
    grid = grid[:, :-1][:, used]
    unit, value = np.nonzero(grid)
    return _Tally(
        unit=unit,
        value=value,
        count=grid[unit, value].astype(np.float64),
        ratings=(n_raters - missing.sum(axis=0)).astype(np.float64),
        values=low + np.flatnonzero(used).astype(np.float64),
    )


def _tally_from_data(matrix: FloatArray, declared: FloatArray | None = None) -> _Tally:
    missing = np.isnan(matrix)
    if declared is None and (whole := _tally_of_whole_numbers(matrix, missing)) is not None:
        return whole
    by_unit = np.ascontiguousarray(matrix.T)
    present = ~missing.T
    ratings = present.sum(axis=1)
    observed = by_unit[present]  # unit by unit, so the triples come out sorted by unit
    unit = np.repeat(np.arange(by_unit.shape[0]), ratings)
    values, code = _factorize(observed, declared)
    return _tally(unit, code, ratings, values)


def _tally_from_counts(counts: ArrayLike, values: ArrayLike | None = None) -> _Tally:
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError("counts must be a units x categories matrix")
    if (
        not np.isfinite(table).all()
        or (table < 0).any()
        or not np.array_equal(table, np.rint(table))
    ):
        raise ValueError("counts must be non-negative whole numbers")
    if values is None:
        column_values = np.arange(table.shape[1], dtype=np.float64)
    else:
        column_values = _declared_values(values)
        if len(column_values) != table.shape[1]:
            raise ValueError("there must be one value per column of counts")
        order = np.argsort(column_values, kind="stable")
        table, column_values = table[:, order], column_values[order]
    unit, value = np.nonzero(table)
    return _Tally(
        unit=unit,
        value=value,
        count=table[unit, value],
        ratings=table.sum(axis=1),
        values=column_values,
    )


def unit_counts(
    data: ArrayLike, values: ArrayLike | None = None
) -> tuple[NDArray[np.int64], FloatArray]:
    """Reliability data (raters x units, NaN missing) as unit counts (units x values).

    Returns the counts and the value of each column: ``values`` (the declared category set,
    sorted) when given, else the values observed, in increasing order.
    """
    declared = None if values is None else _declared_values(values)
    tally = _tally_from_data(_reliability_data(data), declared)
    table = np.zeros((tally.n_units, len(tally.values)), dtype=np.int64)
    table[tally.unit, tally.value] = tally.count.astype(np.int64)
    return table, tally.values


# --- Krippendorff's alpha ---------------------------------------------------------------


def _no_pairable_units() -> UndefinedStatistic:
    return UndefinedStatistic("no unit has two or more ratings, so there is nothing to compare")


def _no_variation() -> UndefinedStatistic:
    return UndefinedStatistic(
        "every comparable rating has the same value, so agreement cannot be told from chance"
    )


def _ratio_distance(first: FloatArray, second: FloatArray) -> FloatArray:
    """Krippendorff's ratio metric ((c - k) / (c + k))^2, zero when c = k = 0."""
    total = first + second
    share: FloatArray = np.divide(first - second, total, out=np.zeros_like(total), where=total != 0)
    return share * share


def _ratio_within_units(tally: _Tally) -> FloatArray:
    """Per unit, the sum over ordered pairs of its ratings of the ratio metric."""
    n_values = len(tally.values)
    if tally.n_units * n_values * n_values <= 4 * _PAIR_BLOCK:
        # Few distinct values: n_u' D n_u for every unit from a dense units x values grid.
        grid = np.zeros((tally.n_units, n_values))
        grid[tally.unit, tally.value] = tally.count
        distance = _ratio_distance(tally.values[:, np.newaxis], tally.values[np.newaxis, :])
        within: FloatArray = np.einsum("uv,uv->u", grid @ distance, grid)
        return within
    # Many: the pairs of (unit, value) triples within each unit, a block of units at a time.
    per_unit = np.bincount(tally.unit, minlength=tally.n_units)
    start = np.cumsum(per_unit) - per_unit
    cost = np.cumsum(per_unit * per_unit)
    sums = np.zeros(tally.n_units)
    first_unit = 0
    while first_unit < tally.n_units:
        # Whole units per block, at least one, about _PAIR_BLOCK pairs of triples.
        done = cost[first_unit - 1] if first_unit else 0
        last_unit = max(
            int(np.searchsorted(cost, done + _PAIR_BLOCK, side="right")), first_unit + 1
        )
        lo, hi = int(start[first_unit]), int(start[last_unit - 1] + per_unit[last_unit - 1])
        if hi > lo:
            sizes = per_unit[tally.unit[lo:hi]]
            first = np.repeat(np.arange(lo, hi), sizes)
            offset = np.arange(first.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            second = start[tally.unit[first]] + offset
            distance = _ratio_distance(
                tally.values[tally.value[first]], tally.values[tally.value[second]]
            )
            weight = tally.count[first] * tally.count[second] * distance
            sums += _sums(tally.unit[first], weight, tally.n_units)
        first_unit = last_unit
    return sums


def _ratio_expected(totals: FloatArray, values: FloatArray) -> float:
    """Sum over value pairs c, k of n_c n_k times the ratio metric, in blocks of rows."""
    used = totals > 0
    totals, values = totals[used], values[used]
    rows = max(1, _PAIR_BLOCK // max(len(values), 1))
    expected = 0.0
    for lo in range(0, len(values), rows):
        block = _ratio_distance(values[lo : lo + rows, np.newaxis], values[np.newaxis, :])
        expected += float(totals[lo : lo + rows] @ block @ totals)
    return expected


def _unit_variation(tally: _Tally, scores: FloatArray) -> FloatArray:
    """Per unit, the sum of squared deviations of its ratings' scores from the unit's mean."""
    score = scores[tally.value]
    mean = _sums(tally.unit, tally.count * score, tally.n_units)
    mean /= tally.ratings
    deviation = score - mean[tally.unit]
    return _sums(tally.unit, tally.count * deviation * deviation, tally.n_units)


def _squared_difference_alpha(
    tally: _Tally, scores: FloatArray, totals: FloatArray, weights: FloatArray
) -> float:
    """Alpha for the metric (s_c - s_k)^2: interval on the values, ordinal on their midranks.

    Sum_ck o_ck d_ck = Sum_u 2 m_u SS_u / (m_u - 1) and Sum_ck n_c n_k d_ck = 2 n SS, where SS
    are sums of squared deviations (within unit u, and over all pairable values).
    """
    m = tally.ratings
    observed = float(weights @ (2.0 * m * _unit_variation(tally, scores) / (m - 1.0)))
    n = float(totals.sum())
    centre = float(totals @ scores) / n
    expected = 2.0 * n * float(totals @ (scores - centre) ** 2)
    return 1.0 - (n - 1.0) * observed / expected


def _midranks(totals: FloatArray) -> FloatArray:
    """Krippendorff's ordinal metric as a squared difference.

    d_ck = (Sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 = (G_k - G_c)^2 with G_c = Sum_{g<=c} n_g - n_c/2,
    the midrank of value c among the pairable values: ordinal alpha is interval alpha on G.
    """
    return np.cumsum(totals) - totals / 2.0


def _alpha(
    tally: _Tally,
    level: Level,
    weights: FloatArray | None = None,
    ratio_pairs: FloatArray | None = None,
) -> float:
    """Alpha over a tally of pairable units (each with two or more ratings).

    ``weights`` repeat units (the bootstrap's resamples); ``ratio_pairs`` is the per-unit sum
    of the ratio metric when already computed. Krippendorff (2011), with
    alpha = 1 - (n - 1) Sum_ck o_ck d_ck / Sum_ck n_c n_k d_ck.
    """
    if tally.n_units == 0:
        raise _no_pairable_units()
    unit_weights = np.ones(tally.n_units) if weights is None else weights
    totals = _sums(tally.value, unit_weights[tally.unit] * tally.count, len(tally.values))
    if np.count_nonzero(totals) < 2:
        raise _no_variation()
    m = tally.ratings
    n = float(totals.sum())
    if level == "nominal":
        same = _sums(tally.unit, tally.count * tally.count, tally.n_units)
        observed = float(unit_weights @ ((m * m - same) / (m - 1.0)))
        expected = n * n - float(totals @ totals)
        return 1.0 - (n - 1.0) * observed / expected
    if level == "interval":
        return _squared_difference_alpha(tally, tally.values, totals, unit_weights)
    if level == "ordinal":
        return _squared_difference_alpha(tally, _midranks(totals), totals, unit_weights)
    if level == "ratio":
        if (tally.values < 0).any():
            raise ValueError("the ratio level needs non-negative values")
        pairs = _ratio_within_units(tally) if ratio_pairs is None else ratio_pairs
        observed = float(unit_weights @ (pairs / (m - 1.0)))
        return 1.0 - (n - 1.0) * observed / _ratio_expected(totals, tally.values)
    raise ValueError(f"unknown level of measurement {level!r}; use one of {', '.join(LEVELS)}")


def _interval_alpha_of_matrix(matrix: FloatArray) -> float:
    """Interval alpha straight from the matrix: no distinct values needed, so no sort.

    The total sum of squares is split into within-unit and between-unit parts
    (SS = Sum_u SS_u + Sum_u m_u (mean_u - mean)^2), both computed around their own means so
    that large offsets do not cancel digits away.
    """
    missing = np.isnan(matrix)
    m = matrix.shape[0] - missing.sum(axis=0)
    pairable = m >= 2
    if not pairable.all():
        if not pairable.any():
            raise _no_pairable_units()
        matrix, missing, m = matrix[:, pairable], missing[:, pairable], m[pairable]
    filled = np.where(missing, 0.0, matrix)
    if np.fmax.reduce(matrix, axis=None) == np.fmin.reduce(matrix, axis=None):
        raise _no_variation()
    counts = m.astype(np.float64)
    unit_mean = filled.sum(axis=0) / counts
    within = np.subtract(filled, unit_mean, out=filled)
    np.copyto(within, 0.0, where=missing)
    unit_variation: FloatArray = np.einsum("ij,ij->j", within, within)
    n = float(counts.sum())
    between = unit_mean - float(counts @ unit_mean) / n
    total_variation = float(unit_variation.sum()) + float(counts @ (between * between))
    observed = float((2.0 * counts / (counts - 1.0)) @ unit_variation)
    return 1.0 - (n - 1.0) * observed / (2.0 * n * total_variation)


def krippendorff_alpha(data: ArrayLike, level: Level = "nominal") -> float:
    """Krippendorff's alpha of reliability data (raters x units, NaN where missing).

    alpha = 1 - D_o / D_e = 1 - (n - 1) Sum_ck o_ck d_ck / Sum_ck n_c n_k d_ck, where o is
    the coincidence matrix of the pairable values (units with two or more ratings; unit u
    adds 1 / (m_u - 1) for each ordered pair of its ratings), n_c its marginals, n their sum,
    and d the metric of the level: nominal [c != k], ordinal (Sum_{g=c..k} n_g - (n_c+n_k)/2)^2,
    interval (c - k)^2, ratio ((c - k)/(c + k))^2 (non-negative values).
    Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
    Communication, University of Pennsylvania (Departmental Papers 43).

    Raises `UndefinedStatistic` when no unit has two ratings or all comparable ratings
    have one value.
    """
    matrix = _reliability_data(data)
    if level == "interval":
        return _interval_alpha_of_matrix(matrix)
    return _alpha(_tally_from_data(matrix).units_with(2), level)


def krippendorff_alpha_from_counts(
    counts: ArrayLike, level: Level = "nominal", values: ArrayLike | None = None
) -> float:
    """Krippendorff's alpha of unit counts (units x categories); see `krippendorff_alpha`.

    ``values`` are the numeric values of the columns (default 0, 1, 2...), used by the ordinal
    (their order), interval and ratio levels.
    """
    return _alpha(_tally_from_counts(counts, values).units_with(2), level)


def krippendorff_alpha_bootstrap(
    data: ArrayLike,
    level: Level = "nominal",
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap confidence interval for Krippendorff's alpha, resampling units.

    Each of ``resamples`` replicates draws as many pairable units as there are, with
    replacement, from a generator seeded with ``seed`` (so the interval is reproducible), and
    recomputes alpha; the interval is the (1 - confidence)/2 and (1 + confidence)/2
    quantiles of the replicates. Units without two ratings carry no pairable values and do not
    take part. Replicates where alpha is undefined (every resampled value alike) are left
    out; when more than half are, the interval is undefined.
    Resampling units follows Zapf, A. et al. (2016). Measuring inter-rater reliability for
    nominal data - which coefficients and confidence intervals are appropriate? BMC Medical
    Research Methodology 16:93 (not Hayes & Krippendorff's 2007 resampling of coincidences).
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    tally = _tally_from_data(_reliability_data(data)).units_with(2)
    ratio_pairs = _ratio_within_units(tally) if level == "ratio" else None
    _alpha(tally, level, ratio_pairs=ratio_pairs)  # undefined data are not resampled
    generator = np.random.default_rng(seed)
    n_units = tally.n_units
    estimates: list[float] = []
    for _ in range(resamples):
        drawn = np.bincount(generator.integers(0, n_units, n_units), minlength=n_units)
        try:
            estimates.append(_alpha(tally, level, drawn.astype(np.float64), ratio_pairs))
        except UndefinedStatistic:
            continue
    if 2 * len(estimates) < resamples:
        raise UndefinedStatistic("most resamples have no variation, so alpha has no interval")
    low, high = np.quantile(estimates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


# --- kappas, AC1, percent agreement -----------------------------------------------------


def _percent_agreement(tally: _Tally) -> float:
    pairable = tally.units_with(2)
    if pairable.n_units == 0:
        raise _no_pairable_units()
    m = pairable.ratings
    agreeing = _sums(pairable.unit, pairable.count * (pairable.count - 1.0), pairable.n_units)
    return float(np.mean(agreeing / (m * (m - 1.0))))


def percent_agreement(counts: ArrayLike) -> float:
    """Percent agreement: Fleiss' P-bar over the units with two or more ratings.

    P_u = Sum_j n_uj (n_uj - 1) / (m_u (m_u - 1)), the share of agreeing ordered rater pairs
    on unit u; P-bar is their mean. Fleiss, J. L. (1971). Measuring nominal scale agreement
    among many raters. Psychological Bulletin 76(5), 378-382; units with unequal numbers of
    ratings as in Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed., ch. 2.
    """
    return _percent_agreement(_tally_from_counts(counts))


def _fleiss_kappa(tally: _Tally) -> float:
    if tally.n_units == 0:
        raise UndefinedStatistic("there are no units")
    fewest, most = int(tally.ratings.min()), int(tally.ratings.max())
    if fewest != most:
        raise UndefinedStatistic(
            f"units have between {fewest} and {most} ratings; Fleiss' kappa needs the same"
            " number of ratings on every unit"
        )
    if most < 2:
        raise UndefinedStatistic("every unit has fewer than two ratings")
    r = float(most)
    agreeing = _sums(tally.unit, tally.count * tally.count, tally.n_units)
    p_bar = float(np.mean((agreeing - r) / (r * (r - 1.0))))
    shares = _sums(tally.value, tally.count, len(tally.values))
    shares /= tally.n_units * r
    if np.count_nonzero(shares) < 2:
        raise UndefinedStatistic(
            "every rating is in the same category, so agreement cannot be told from chance"
        )
    p_expected = float(shares @ shares)
    return (p_bar - p_expected) / (1.0 - p_expected)


def fleiss_kappa(counts: ArrayLike) -> float:
    """Fleiss' kappa of unit counts (units x categories), every unit with the same count r.

    kappa = (P-bar - P-bar_e) / (1 - P-bar_e), P_i = (Sum_j n_ij^2 - r) / (r (r - 1)),
    p_j = Sum_i n_ij / (N r), P-bar_e = Sum_j p_j^2. Fleiss, J. L. (1971). Measuring nominal
    scale agreement among many raters. Psychological Bulletin 76(5), 378-382.
    """
    return _fleiss_kappa(_tally_from_counts(counts))


def _gwet_ac1(tally: _Tally) -> float:
    p_a = _percent_agreement(tally)
    q = len(tally.values)
    if q < 2:
        raise UndefinedStatistic(
            "only one category is known; declare the category set (AC1 depends on it)"
        )
    rated = tally.ratings >= 1
    # Classification probabilities over every rated unit, pairable or not: Gwet's formula for
    # missing ratings, so a unit with one rating still informs chance agreement.
    shares = tally.count / tally.ratings[tally.unit]
    pi = _sums(tally.value, shares, q) / np.count_nonzero(rated)
    p_e = float(pi @ (1.0 - pi)) / (q - 1)
    return (p_a - p_e) / (1.0 - p_e)


def gwet_ac1(counts: ArrayLike) -> float:
    """Gwet's AC1 of unit counts (units x categories); every column is a declared category.

    AC1 = (p_a - p_e) / (1 - p_e) with p_a the percent agreement over the n' units with two or
    more ratings, pi_k = (1/n) Sum_i r_ik / r_i over the n units with at least one rating, and
    p_e = Sum_k pi_k (1 - pi_k) / (q - 1), q the number of categories (so a declared but
    unused category changes AC1). Gwet, K. L. (2008). Computing inter-rater reliability and its
    variance in the presence of high agreement. British Journal of Mathematical and
    Statistical Psychology 61, 29-48; with missing ratings as in Gwet, K. L. (2014). Handbook
    of Inter-Rater Reliability, 4th ed., Advanced Analytics, ch. 2.
    """
    return _gwet_ac1(_tally_from_counts(counts))


def cohen_kappa(first: ArrayLike, second: ArrayLike) -> float:
    """Cohen's kappa of two raters' ratings of the same units (NaN where missing).

    kappa = (p_o - p_e) / (1 - p_e), p_o the share of units both rated alike and
    p_e = Sum_k p_k. p_.k, each rater's own share of category k (unlike Fleiss' pooled shares);
    units that either rater left out are left out.
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    Psychological Measurement 20(1), 37-46.
    """
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError("both raters need one rating (or NaN) per unit")
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if n == 0:
        raise UndefinedStatistic("no unit was rated by both raters")
    values, codes = _factorize(np.concatenate([a[both], b[both]]), None)
    q = len(values)
    if q < 2:
        raise UndefinedStatistic(
            "both raters used one and the same category throughout, so agreement cannot be"
            " told from chance"
        )
    table = np.bincount(codes[:n] * q + codes[n:], minlength=q * q).reshape(q, q)
    p_observed = float(np.trace(table)) / n
    p_expected = float(table.sum(axis=1) @ table.sum(axis=0)) / (n * n)
    return (p_observed - p_expected) / (1.0 - p_expected)


def cohen_kappa_matrix(data: ArrayLike) -> FloatArray:
    """Cohen's kappa of every pair of raters (raters x units data): a symmetric matrix.

    Entry (i, j) is `cohen_kappa` of raters i and j over the units both rated; NaN where it
    is undefined for that pair (this is a matrix for analysis, not a JSON answer).
    """
    matrix = _reliability_data(data)
    n_raters = matrix.shape[0]
    kappas = np.full((n_raters, n_raters), np.nan)
    for i in range(n_raters):
        for j in range(i, n_raters):
            try:
                kappas[i, j] = kappas[j, i] = cohen_kappa(matrix[i], matrix[j])
            except UndefinedStatistic:
                continue
    return kappas


# --- labels ----------------------------------------------------------------------------


def encode_labels(
    rows: Sequence[Sequence[Hashable | None]], categories: Sequence[Hashable] | None = None
) -> tuple[FloatArray, tuple[Hashable, ...]]:
    """Nominal ratings with any labels as reliability data of category codes 0, 1, 2...

    ``None`` is a missing rating. The categories are ``categories`` in their order when
    declared (a label outside them is a ValueError), else the labels seen, numbers first in
    increasing order then the others sorted by their text. Labels equal in Python (1 and 1.0)
    are one category.
    """
    if categories is None:
        seen = {label for row in rows for label in row if label is not None}
        numbers = sorted(
            label
            for label in seen
            if isinstance(label, int | float) and not isinstance(label, bool)
        )
        number_set = set(numbers)
        others = sorted((label for label in seen if label not in number_set), key=str)
        categories = [*numbers, *others]
    index = {label: code for code, label in enumerate(categories)}
    if len(index) != len(categories):
        raise ValueError("declared categories must not repeat")
    n_units = len(rows[0]) if rows else 0
    codes = np.full((len(rows), n_units), np.nan)
    for r, row in enumerate(rows):
        if len(row) != n_units:
            raise ValueError("every rater needs one rating (or None) per unit")
        for u, label in enumerate(row):
            if label is not None:
                if label not in index:
                    raise ValueError(f"rating {label!r} is not one of the declared categories")
                codes[r, u] = index[label]
    return codes, tuple(categories)


# --- everything at once -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgreementSummary:
    """Every agreement statistic of one data set; None where undefined, with the reason."""

    n_units: int
    n_raters: int
    krippendorff_alpha: float | None
    fleiss_kappa: float | None
    cohen_kappa: float | None
    gwet_ac1: float | None
    percent_agreement: float | None
    notes: tuple[str, ...]


# A statistic computed on demand, so that one that is undefined becomes a note.
_Computation = Callable[[], float]

_NOMINAL_NOTE = (
    "fleiss_kappa, cohen_kappa, gwet_ac1 and percent_agreement are nominal statistics: at the"
    " {level} level each distinct value counts as a category, unweighted"
)


class _Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def value(self, name: str, compute: _Computation) -> float | None:
        try:
            result = compute()
        except UndefinedStatistic as undefined:
            self.lines.append(f"{name}: {undefined}")
            return None
        except (ZeroDivisionError, OverflowError, FloatingPointError):
            # Values at the ends of the float range (differences of 5e-324 underflow to a
            # zero variation): the statistic exists but cannot be computed in float64.
            self.lines.append(f"{name}: cannot be computed in floating point for these values")
            return None
        if not math.isfinite(result):  # cannot happen by construction; never send NaN
            self.lines.append(f"{name}: not a finite number for these data")
            return None
        return result


def _summary(
    tally: _Tally,
    level: Level,
    n_raters: int,
    alpha: _Computation,
    cohen: _Computation,
    notes: _Notes,
) -> AgreementSummary:
    single = int(np.count_nonzero(tally.ratings < 2))
    if single and single < tally.n_units:
        notes.lines.append(
            f"{single} of {tally.n_units} units {'has' if single == 1 else 'have'} fewer than"
            " two ratings: left out of alpha, percent agreement and AC1's observed agreement"
        )
    if level != "nominal":
        notes.lines.append(_NOMINAL_NOTE.format(level=level))
    return AgreementSummary(
        n_units=tally.n_units,
        n_raters=n_raters,
        krippendorff_alpha=notes.value("krippendorff_alpha", alpha),
        fleiss_kappa=notes.value("fleiss_kappa", lambda: _fleiss_kappa(tally)),
        cohen_kappa=notes.value("cohen_kappa", cohen),
        gwet_ac1=notes.value("gwet_ac1", lambda: _gwet_ac1(tally)),
        percent_agreement=notes.value("percent_agreement", lambda: _percent_agreement(tally)),
        notes=tuple(notes.lines),
    )


def summarize_ratings(
    data: ArrayLike, level: Level = "nominal", *, values: ArrayLike | None = None
) -> AgreementSummary:
    """All statistics of reliability data (raters x units, NaN where missing).

    ``values`` is the declared category set (numbers; for labels, their codes from
    `encode_labels`); by default the values observed. Only AC1 depends on it.
    """
    matrix = _reliability_data(data)
    declared = None if values is None else _declared_values(values)
    tally = _tally_from_data(matrix, declared)
    n_raters = matrix.shape[0]
    notes = _Notes()

    def alpha() -> float:
        if level == "interval":
            return _interval_alpha_of_matrix(matrix)
        return _alpha(tally.units_with(2), level)

    def cohen() -> float:
        if n_raters != 2:
            raise UndefinedStatistic(f"defined for exactly two raters; there are {n_raters}")
        both = int((~np.isnan(matrix).any(axis=0)).sum())
        if 0 < both < matrix.shape[1]:
            notes.lines.append(
                f"cohen_kappa: uses the {both} of {matrix.shape[1]} units both raters rated"
            )
        return cohen_kappa(matrix[0], matrix[1])

    return _summary(tally, level, n_raters, alpha, cohen, notes)


def summarize_counts(
    counts: ArrayLike, level: Level = "nominal", *, values: ArrayLike | None = None
) -> AgreementSummary:
    """All statistics of unit counts (units x categories); columns are the category set.

    ``values`` are the numeric values of the columns (default 0, 1, 2...). The number of
    raters is the most ratings any unit has; Cohen's kappa is undefined, since counts do not
    say who gave which rating.
    """
    tally = _tally_from_counts(counts, values)

    def alpha() -> float:
        return _alpha(tally.units_with(2), level)

    def cohen() -> float:
        raise UndefinedStatistic("counts do not say which rater gave which rating")

    n_raters = int(tally.ratings.max()) if tally.n_units else 0
    return _summary(tally, level, n_raters, alpha, cohen, _Notes())
