"""Agreement statistics: the published worked examples that define them, and the references.

Each statistic reproduces the numbers printed in the paper or textbook that defines it, to
the digits printed, and agrees with the reference implementations on the package index
(`krippendorff`, `statsmodels`, `irrCAC`) to 1e-9 on random rating matrices with missing
values (hypothesis).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from shared.stats import agreement
from shared.stats.agreement import (
    LEVELS,
    Level,
    UndefinedStatistic,
    cohen_kappa,
    cohen_kappa_matrix,
    encode_labels,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    krippendorff_alpha_bootstrap,
    krippendorff_alpha_from_counts,
    percent_agreement,
    summarize_counts,
    summarize_ratings,
    unit_counts,
)

pytestmark = pytest.mark.no_db

NAN = math.nan
TOLERANCE = 1e-9
# Hypothesis runs each property on small matrices; the references are slow-ish (pandas).
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def irrcac_gwet(rows: Any, categories: list[Any] | None = None) -> dict[str, float]:
    """irrCAC's AC1 estimate of units x raters ratings (NaN or None where missing)."""
    # irrCAC pins scipy 1.12, which has no wheels for Python 3.13+; it is not installed there.
    cac = pytest.importorskip("irrCAC.raw").CAC
    pandas = pytest.importorskip("pandas")
    cells = [[np.nan if value is None else value for value in row] for row in rows]
    frame = pandas.DataFrame(cells)
    estimate: dict[str, float] = cac(frame, categories=categories, digits=15).gwet()["est"]
    return estimate


def close(ours: float, reference: float) -> bool:
    return math.isclose(ours, reference, rel_tol=0.0, abs_tol=TOLERANCE)


# --- Krippendorff (2011) ------------------------------------------------------------------
# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
# Communication, University of Pennsylvania (Departmental Papers 43). The worked example with
# missing data: 4 observers x 12 units, values 1..5 (rows are observers, NaN = no value).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
# The alphas the paper prints for these data at each level of measurement.
KRIPPENDORFF_2011_ALPHA: dict[Level, float] = {
    "nominal": 0.743,
    "ordinal": 0.815,
    "interval": 0.849,
    "ratio": 0.797,
}


@pytest.mark.parametrize("level", LEVELS)
def test_krippendorff_2011_example_with_missing_data(level: Level) -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, level)
    assert round(alpha, 3) == KRIPPENDORFF_2011_ALPHA[level]
    reference = krippendorff.alpha(np.array(KRIPPENDORFF_2011), level_of_measurement=level)
    assert close(alpha, reference)
    counts, values = unit_counts(KRIPPENDORFF_2011)
    assert close(krippendorff_alpha_from_counts(counts, level, values), reference)


def test_krippendorff_2011_nominal_alpha_is_the_same_on_labels() -> None:
    # The paper's nominal example codes its values as colours; only identity matters.
    labels = {1: "blue", 2: "red", 3: "green", 4: "black", 5: "pink"}
    rows = [[None if math.isnan(v) else labels[int(v)] for v in row] for row in KRIPPENDORFF_2011]
    codes, categories = encode_labels(rows)
    assert set(categories) == set(labels.values())
    assert round(krippendorff_alpha(codes, "nominal"), 3) == 0.743


def test_krippendorff_2011_binary_two_observers() -> None:
    # Krippendorff (2011), the binary example (two observers, no missing data): 0.095.
    observers = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]
    assert round(krippendorff_alpha(observers, "nominal"), 3) == 0.095


def test_krippendorff_2011_nominal_two_observers() -> None:
    # Krippendorff (2011), the nominal example with two observers, no missing data: 0.692.
    first = ["a", "a", "b", "b", "d", "c", "c", "c", "e", "d", "d", "a"]
    second = ["b", "a", "b", "b", "b", "c", "c", "c", "e", "d", "d", "d"]
    codes, _ = encode_labels([first, second])
    assert round(krippendorff_alpha(codes, "nominal"), 3) == 0.692


# --- Fleiss --------------------------------------------------------------------------------
# The worked example of Wikipedia's "Fleiss' kappa" article (also statsmodels' test table):
# 10 subjects, 14 raters, 5 categories, counts per subject. Published: P_i per row, P-bar =
# 0.378, P-bar_e = 0.213, kappa = 0.210.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]
FLEISS_WIKIPEDIA_P_I = [1.000, 0.253, 0.308, 0.440, 0.330, 0.462, 0.242, 0.176, 0.286, 0.286]

# Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological
# Bulletin 76(5), 378-382, Table 1: 30 patients, each diagnosed by 6 of a pool of
# psychiatrists into 1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis,
# 5 other. The raw assignments as distributed with R's irr package (`diagnoses`); Fleiss
# prints P-bar = .556, P-bar_e = .220, kappa = .430.
FLEISS_1971 = [
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
]  # fmt: skip


def test_fleiss_wikipedia_worked_example() -> None:
    assert round(fleiss_kappa(FLEISS_WIKIPEDIA), 3) == 0.210
    assert round(percent_agreement(FLEISS_WIKIPEDIA), 3) == 0.378
    for row, published in zip(FLEISS_WIKIPEDIA, FLEISS_WIKIPEDIA_P_I, strict=True):
        assert round(percent_agreement([row]), 3) == published
    assert close(fleiss_kappa(FLEISS_WIKIPEDIA), sm_fleiss_kappa(np.array(FLEISS_WIKIPEDIA)))


def test_fleiss_1971_table_1() -> None:
    ratings = np.array(FLEISS_1971, dtype=float).T  # raters x units
    counts, values = unit_counts(ratings, values=[1, 2, 3, 4, 5])
    assert list(values) == [1, 2, 3, 4, 5]
    assert round(fleiss_kappa(counts), 3) == 0.430
    assert round(percent_agreement(counts), 3) == 0.556
    # P-bar_e = (P-bar - kappa (1)) ... recovered from the two published figures:
    p_bar, kappa = percent_agreement(counts), fleiss_kappa(counts)
    assert round((p_bar - kappa) / (1 - kappa), 3) == 0.220
    summary = summarize_ratings(ratings)
    assert summary.fleiss_kappa == pytest.approx(kappa, abs=TOLERANCE)


# --- Cohen ---------------------------------------------------------------------------------


def test_cohen_wikipedia_example() -> None:
    # Wikipedia, "Cohen's kappa", simple example: 50 grant proposals, readers A and B;
    # yes/yes 20, A yes B no 5, A no B yes 10, no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


def test_cohen_1960_table_1() -> None:
    # Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    # Psychological Measurement 20(1), 37-46, Table 1: proportions of 200 units in three
    # categories, p_o = .70, p_c = .41, kappa = .29/.59 = .492.
    proportions = [[0.44, 0.07, 0.09], [0.05, 0.20, 0.05], [0.01, 0.03, 0.06]]
    first: list[int] = []
    second: list[int] = []
    for i, row in enumerate(proportions):
        for j, share in enumerate(row):
            first += [i] * round(200 * share)
            second += [j] * round(200 * share)
    assert len(first) == 200
    assert round(cohen_kappa(first, second), 3) == 0.492


# --- Gwet ----------------------------------------------------------------------------------
# Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed., Advanced Analytics,
# pp. 55-56: 4 raters classify 12 subjects into a..e with missing ratings (irrCAC's dataset
# raw_4raters; Krippendorff's example above with its values written a..e). Published:
# p_a = 0.8182, p_e = 0.1903, AC1 = 0.7754 (the AC1 of Gwet 2008, British Journal of
# Mathematical and Statistical Psychology 61, 29-48, with Gwet's formula for missing ratings).
GWET_2014 = [
    ["a", "b", "c", "c", "b", "a", "d", "a", "b", None, None, None],
    ["a", "b", "c", "c", "b", "b", "d", "a", "b", "e", None, None],
    [None, "c", "c", "c", "b", "c", "d", "b", "b", "e", "a", "c"],
    ["a", "b", "c", "c", "b", "d", "d", "a", "b", "e", "a", None],
]


def test_gwet_2014_handbook_example() -> None:
    codes, categories = encode_labels(GWET_2014)
    assert categories == ("a", "b", "c", "d", "e")
    counts, _ = unit_counts(codes)
    assert round(gwet_ac1(counts), 4) == 0.7754
    assert round(percent_agreement(counts), 4) == 0.8182
    reference = irrcac_gwet(np.array(GWET_2014, dtype=object).T)["coefficient_value"]
    assert close(gwet_ac1(counts), reference)
    # The same handbook pages give Krippendorff's alpha for these data: 0.7434.
    assert round(krippendorff_alpha(codes, "nominal"), 4) == 0.7434


def test_gwet_ac1_depends_on_the_declared_categories() -> None:
    codes, _ = encode_labels(GWET_2014, categories=["a", "b", "c", "d", "e", "f"])
    counts, _ = unit_counts(codes, values=range(6))
    declared = irrcac_gwet(np.array(GWET_2014, dtype=object).T, ["a", "b", "c", "d", "e", "f"])
    assert close(gwet_ac1(counts), declared["coefficient_value"])
    assert gwet_ac1(counts) != pytest.approx(0.7754, abs=1e-4)


# --- reference implementations on random data -------------------------------------------


@st.composite
def reliability_data(
    draw: st.DrawFn,
    *,
    values: list[float] | None = None,
    max_raters: int = 6,
    max_units: int = 14,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A raters x units matrix of the given values (else of any in 0..100), some missing."""
    raters = draw(st.integers(2, max_raters))
    units = draw(st.integers(1, max_units))
    missing = draw(st.floats(0.0, 0.5))
    value = st.sampled_from(values) if values else st.floats(0, 100).map(lambda v: round(v, 2))
    cells = draw(
        st.lists(
            st.tuples(value, st.floats(0, 1)),
            min_size=raters * units,
            max_size=raters * units,
        )
    )
    return np.array([v if u >= missing else NAN for v, u in cells]).reshape(raters, units)


def reference_alpha(data: np.ndarray[Any, Any], level: Level) -> float | None:
    """krippendorff.alpha, or None where it refuses or divides 0 by 0."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(krippendorff.alpha(data, level_of_measurement=level))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def ours_or_none(compute: Any, *args: Any) -> float | None:
    try:
        value = compute(*args)
    except UndefinedStatistic:
        return None
    assert math.isfinite(value)
    return float(value)


def assert_agree(ours: float | None, reference: float | None) -> None:
    assert (ours is None) == (reference is None), (ours, reference)
    if ours is not None and reference is not None:
        assert close(ours, reference), (ours, reference)


@PROPERTY
@given(data=reliability_data(values=[1, 2, 3, 4, 5, 7]), level=st.sampled_from(LEVELS))
def test_alpha_agrees_with_the_krippendorff_package(
    data: np.ndarray[Any, Any], level: Level
) -> None:
    reference = reference_alpha(data, level)
    assert_agree(ours_or_none(krippendorff_alpha, data, level), reference)
    counts, values = unit_counts(data)
    assume(counts.shape[1] > 0)
    assert_agree(ours_or_none(krippendorff_alpha_from_counts, counts, level, values), reference)


@PROPERTY
@given(
    data=reliability_data(values=[0.0, 0.25, 1.5, 2.0, 3.75, 10.0, 12.5, 99.0], max_units=10),
    level=st.sampled_from(["interval", "ratio", "ordinal"]),
)
def test_alpha_agrees_on_real_valued_ratings(data: np.ndarray[Any, Any], level: Level) -> None:
    assert_agree(ours_or_none(krippendorff_alpha, data, level), reference_alpha(data, level))


@PROPERTY
@given(data=reliability_data(max_units=12), level=st.sampled_from(LEVELS))
def test_alpha_paths_for_many_distinct_values_agree(
    monkeypatch: pytest.MonkeyPatch, data: np.ndarray[Any, Any], level: Level
) -> None:
    # Tiny budgets force what large inputs take: sorted (unit, value) keys instead of a dense
    # grid, and the ratio metric's pairs evaluated a few units and rows at a time.
    monkeypatch.setattr(agreement, "_DENSE_CELLS", 0)
    monkeypatch.setattr(agreement, "_PAIR_BLOCK", 5)
    reference = reference_alpha(data, level)
    assert_agree(ours_or_none(krippendorff_alpha, data, level), reference)
    counts, values = unit_counts(data)
    assume(counts.shape[1] > 0)
    assert_agree(ours_or_none(krippendorff_alpha_from_counts, counts, level, values), reference)


@PROPERTY
@given(
    raters=st.integers(2, 7),
    rows=st.lists(st.lists(st.integers(0, 7), min_size=4, max_size=4), min_size=1, max_size=12),
)
def test_fleiss_agrees_with_statsmodels(raters: int, rows: list[list[int]]) -> None:
    # Each unit's `raters` ratings spread over 4 categories in proportion to drawn weights.
    counts = np.array([_spread(raters, row) for row in rows])
    assert (counts.sum(axis=1) == raters).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = float(sm_fleiss_kappa(counts))
    assert_agree(
        ours_or_none(fleiss_kappa, counts), reference if math.isfinite(reference) else None
    )


def _spread(raters: int, weights: list[int]) -> list[int]:
    """``raters`` ratings over len(weights) categories, in proportion to the weights."""
    total = sum(weights)
    if total == 0:
        return [raters] + [0] * (len(weights) - 1)
    shares = [raters * w // total for w in weights]
    shares[int(np.argmax(weights))] += raters - sum(shares)
    return shares


@PROPERTY
@given(data=reliability_data(values=[1, 2, 3, 4], max_raters=2, max_units=20))
def test_cohen_agrees_with_statsmodels(data: np.ndarray[Any, Any]) -> None:
    first, second = data
    both = ~np.isnan(first) & ~np.isnan(second)
    table = np.zeros((4, 4))
    for a, b in zip(first[both], second[both], strict=True):
        table[int(a) - 1, int(b) - 1] += 1
    reference: float | None = None
    if both.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(sm_cohens_kappa(table, return_results=False))
        reference = value if math.isfinite(value) else None
    assert_agree(ours_or_none(cohen_kappa, first, second), reference)


@PROPERTY
@given(data=reliability_data(values=[1, 2, 3, 4, 5], max_raters=5, max_units=12))
def test_gwet_ac1_and_percent_agreement_agree_with_irrcac(data: np.ndarray[Any, Any]) -> None:
    counts, _ = unit_counts(data, values=[1, 2, 3, 4, 5])
    ratings_per_unit = counts.sum(axis=1)
    # irrCAC needs two rated units (for its variance) and one with two ratings.
    assume((ratings_per_unit >= 2).any() and (ratings_per_unit > 0).sum() >= 2)
    # It drops units nobody rated and takes the declared categories as given.
    result = irrcac_gwet(data.T[ratings_per_unit > 0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert close(gwet_ac1(counts), result["coefficient_value"])
    assert close(percent_agreement(counts), result["pa"])


@PROPERTY
@given(data=reliability_data(values=[1, 2, 3]), level=st.sampled_from(LEVELS))
def test_summary_is_the_statistics_or_none_with_a_note(
    data: np.ndarray[Any, Any], level: Level
) -> None:
    summary = summarize_ratings(data, level)
    counts, _ = unit_counts(data)
    expected = {
        "krippendorff_alpha": ours_or_none(krippendorff_alpha, data, level),
        "fleiss_kappa": ours_or_none(fleiss_kappa, counts),
        "gwet_ac1": ours_or_none(gwet_ac1, counts),
        "percent_agreement": ours_or_none(percent_agreement, counts),
        "cohen_kappa": ours_or_none(cohen_kappa, data[0], data[1]) if len(data) == 2 else None,
    }
    for name, value in expected.items():
        assert getattr(summary, name) == value
        if value is None:
            assert any(note.startswith(f"{name}:") for note in summary.notes)


# --- the bootstrap -------------------------------------------------------------------------


def test_bootstrap_interval_is_seeded_and_brackets_alpha() -> None:
    generator = np.random.default_rng(7)
    truth = generator.integers(1, 5, 200)
    data = np.where(generator.random((5, 200)) < 0.8, truth, generator.integers(1, 5, (5, 200)))
    data = np.where(generator.random((5, 200)) < 0.2, NAN, data.astype(float))
    for level in LEVELS:
        alpha = krippendorff_alpha(data, level)
        low, high = krippendorff_alpha_bootstrap(data, level, resamples=300, seed=1)
        assert low < alpha < high
        assert high - low < 0.2
        assert krippendorff_alpha_bootstrap(data, level, resamples=300, seed=1) == (low, high)
    assert krippendorff_alpha_bootstrap(
        data, resamples=300, seed=2
    ) != krippendorff_alpha_bootstrap(data, resamples=300, seed=1)


def test_bootstrap_of_undefined_alpha_is_undefined() -> None:
    with pytest.raises(UndefinedStatistic):
        krippendorff_alpha_bootstrap([[1, 1, 1], [1, 1, 1]])


# --- degenerate inputs: a defined answer or UndefinedStatistic, never NaN ----------------


def test_one_category_used_by_everyone() -> None:
    data: list[list[float]] = [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, NAN, 2]]
    for level in LEVELS:
        with pytest.raises(UndefinedStatistic, match="same value"):
            krippendorff_alpha(data, level)
    counts, _ = unit_counts(data)
    with pytest.raises(UndefinedStatistic, match="same category"):
        fleiss_kappa([[3, 0], [3, 0]])
    with pytest.raises(UndefinedStatistic, match="same category"):
        cohen_kappa(data[0], data[1])
    with pytest.raises(UndefinedStatistic, match="declare the category set"):
        gwet_ac1(counts)
    assert percent_agreement(counts) == 1.0
    # With the category set declared, AC1 is defined, and perfect: AC1 resists the paradox.
    declared, _ = unit_counts(data, values=[1, 2, 3])
    assert gwet_ac1(declared) == 1.0


def test_a_single_unit() -> None:
    # One unit, two different values: D_o = D_e, alpha = 1 - (n - 1) 2 / 2 = 0.
    assert krippendorff_alpha([[1], [2]], "nominal") == 0.0
    assert krippendorff.alpha(np.array([[1.0], [2.0]]), level_of_measurement="nominal") == 0.0
    assert percent_agreement([[1, 1]]) == 0.0
    assert fleiss_kappa([[1, 1]]) == pytest.approx(-1.0)
    with pytest.raises(UndefinedStatistic):
        krippendorff_alpha([[1], [1]], "interval")


def test_units_with_one_rating_are_left_out() -> None:
    with_single: list[list[float]] = [[1, 2, 3, 4], [1, 2, 3, NAN]]
    without = [[1, 2, 3], [1, 2, 3]]
    for level in LEVELS:
        assert krippendorff_alpha(with_single, level) == krippendorff_alpha(without, level)
    counts, _ = unit_counts(with_single)
    assert percent_agreement(counts) == 1.0
    with pytest.raises(UndefinedStatistic, match="same number of ratings"):
        fleiss_kappa(counts)


def test_all_missing() -> None:
    data: list[list[float]] = [[NAN, NAN, NAN], [NAN, NAN, NAN]]
    for level in LEVELS:
        with pytest.raises(UndefinedStatistic, match="no unit has two or more ratings"):
            krippendorff_alpha(data, level)
    summary = summarize_ratings(data)
    assert summary.n_units == 3
    assert summary.n_raters == 2
    values = [
        summary.krippendorff_alpha,
        summary.fleiss_kappa,
        summary.cohen_kappa,
        summary.gwet_ac1,
        summary.percent_agreement,
    ]
    assert values == [None] * 5
    assert len(summary.notes) == 5


def test_cohen_kappa_matrix_is_symmetric_with_unit_diagonal() -> None:
    matrix = cohen_kappa_matrix(KRIPPENDORFF_2011)
    assert matrix.shape == (4, 4)
    assert np.allclose(matrix, matrix.T)
    assert np.allclose(np.diag(matrix), 1.0)
    data = np.array(KRIPPENDORFF_2011)
    assert close(matrix[1, 2], cohen_kappa(data[1], data[2]))
    assert math.isnan(cohen_kappa_matrix([[1, 1], [1, 1]])[0, 1])


def test_summary_of_counts_notes_cohen_and_levels() -> None:
    summary = summarize_counts(FLEISS_WIKIPEDIA)
    assert summary.n_raters == 14
    assert summary.cohen_kappa is None
    assert summary.fleiss_kappa == pytest.approx(0.2099307, abs=1e-7)
    assert any(note.startswith("cohen_kappa:") for note in summary.notes)
    ordinal = summarize_counts(FLEISS_WIKIPEDIA, "ordinal")
    assert any("nominal statistics" in note for note in ordinal.notes)


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="raters x units"):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        krippendorff_alpha(np.array([[1, math.inf], [1, 2]]))
    with pytest.raises(ValueError, match="non-negative"):
        krippendorff_alpha([[-1, 2], [1, 2]], "ratio")
    with pytest.raises(ValueError, match="declared"):
        unit_counts([[1, 2], [1, 9]], values=[1, 2, 3])
    with pytest.raises(ValueError, match="whole numbers"):
        fleiss_kappa([[1.5, 0.5]])
    with pytest.raises(ValueError, match="declared categories"):
        encode_labels([["a", "b"], ["a", "c"]], categories=["a", "b"])
    with pytest.raises(ValueError, match="must not repeat"):
        encode_labels([["a"], ["a"]], categories=["a", "a"])
    with pytest.raises(ValueError, match="one rating"):
        encode_labels([["a", "b"], ["a"]])
    with pytest.raises(ValueError, match="must not repeat"):
        unit_counts([[1, 2], [1, 2]], values=[1, 2, 2])
    with pytest.raises(ValueError, match="finite"):
        unit_counts([[1, 2], [1, 2]], values=[1, math.nan])
    with pytest.raises(ValueError, match="units x categories"):
        fleiss_kappa([1, 2])
    with pytest.raises(ValueError, match="one value per column"):
        krippendorff_alpha_from_counts([[1, 1]], "interval", values=[1, 2, 3])
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha([[1, 2], [1, 2]], "circular")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one rating"):
        cohen_kappa([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="confidence"):
        krippendorff_alpha_bootstrap([[1, 2], [1, 2]], confidence=1.5)
    with pytest.raises(ValueError, match="resamples"):
        krippendorff_alpha_bootstrap([[1, 2], [1, 2]], resamples=0)
    with pytest.raises(UndefinedStatistic, match="no units"):
        fleiss_kappa(np.zeros((0, 3)))
