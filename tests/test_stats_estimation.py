"""Post-stratified population accuracy (DESIGN.md "Statistics"): a worked example by hand,
and the properties that pin the formula down."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.stats.estimation import Stratum, post_stratified_accuracy
from shared.stats.intervals import Z_95

pytestmark = pytest.mark.no_db


def test_worked_example() -> None:
    """Four strata (moderator, day); the boosted sample audits the new moderator (h2) most.

    h    N_h    n_h   x_h   p_h = x_h/n_h   1 - n_h/N_h
    h1   1000   20    18    0.9             0.98
    h2    200   40    30    0.75            0.8
    h3    800   10    10    1.0             0.99
    h4    500    0     0    (no audit: left out)

    N (strata with an audit) = 1000 + 200 + 800 = 2000; all decisions 2500;
    coverage = 2000 / 2500 = 0.8.
    estimate = (1000 * 0.9 + 200 * 0.75 + 800 * 1.0) / 2000 = 1850 / 2000 = 0.925
    (the audited accuracy, 58 / 70 = 0.828571, is pulled down by h2's weight in the sample).
    Variance terms (N_h/N)^2 * p_h (1 - p_h) / n_h * (1 - n_h/N_h):
      h1: 0.5^2 * 0.9 * 0.1 / 20 * 0.98   = 0.25 * 0.0045 * 0.98     = 0.0011025
      h2: 0.1^2 * 0.75 * 0.25 / 40 * 0.8  = 0.01 * 0.0046875 * 0.8   = 0.0000375
      h3: 0.4^2 * 1.0 * 0.0 / 10 * 0.99                              = 0
    SE = sqrt(0.00114) = 0.0337639; 1.959964 * SE = 0.0661760;
    interval = [0.925 - 0.066176, 0.925 + 0.066176] = [0.858824, 0.991176].
    """
    result = post_stratified_accuracy(
        [
            Stratum(decisions=1000, audited=20, correct=18),
            Stratum(decisions=200, audited=40, correct=30),
            Stratum(decisions=800, audited=10, correct=10),
            Stratum(decisions=500, audited=0, correct=0),
        ]
    )
    assert result is not None
    assert result.estimate == pytest.approx(0.925, abs=1e-12)
    assert result.standard_error == pytest.approx(math.sqrt(0.00114), abs=1e-12)
    assert round(result.standard_error, 7) == 0.0337639
    assert round(result.ci_low, 6) == 0.858824
    assert round(result.ci_high, 6) == 0.991176
    assert result.coverage == pytest.approx(0.8)
    assert (result.decisions, result.covered_decisions) == (2500, 2000)
    assert (result.audited, result.correct) == (70, 58)


def test_the_interval_is_clipped_to_one() -> None:
    """Two strata of 100 decisions, 2 audits each: p = 1.0 and 0.5.

    estimate = (100 * 1 + 100 * 0.5) / 200 = 0.75;
    variance = 0.5^2 * 0.5 * 0.5 / 2 * (1 - 2/100) = 0.25 * 0.125 * 0.98 = 0.030625,
    SE = 0.175, 1.959964 * 0.175 = 0.342994: [0.407006, 1.092994] clipped to [0.407006, 1].
    """
    result = post_stratified_accuracy(
        [Stratum(decisions=100, audited=2, correct=2), Stratum(decisions=100, audited=2, correct=1)]
    )
    assert result is not None
    assert result.estimate == pytest.approx(0.75)
    assert result.standard_error == pytest.approx(0.175)
    assert round(result.ci_low, 6) == 0.407006
    assert result.ci_high == 1.0


def test_none_without_an_audit() -> None:
    assert post_stratified_accuracy([]) is None
    assert post_stratified_accuracy([Stratum(decisions=10, audited=0, correct=0)]) is None
    # Audits, but in strata that received no decisions: nothing to weight them by.
    assert post_stratified_accuracy([Stratum(decisions=0, audited=3, correct=2)]) is None


def test_more_audits_than_decisions_gets_no_negative_variance() -> None:
    """n_h > N_h (the counts come from different places and may disagree): fpc = 0.

    h1: N 5, n 8, x 6 (p 0.75, fpc max(0, 1 - 8/5) = 0); h2: N 5, n 1, x 1 (p 1, variance 0).
    estimate = (5 * 0.75 + 5 * 1) / 10 = 0.875, SE 0.
    """
    result = post_stratified_accuracy(
        [Stratum(decisions=5, audited=8, correct=6), Stratum(decisions=5, audited=1, correct=1)]
    )
    assert result is not None
    assert result.estimate == pytest.approx(0.875)
    assert result.standard_error == 0.0
    assert result.ci_low == result.ci_high == pytest.approx(0.875)


def test_impossible_strata_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Stratum(decisions=-1, audited=0, correct=0)
    with pytest.raises(ValueError, match="more correct"):
        Stratum(decisions=10, audited=2, correct=3)


def _stratum(max_decisions: int = 1000) -> st.SearchStrategy[Stratum]:
    return st.integers(1, max_decisions).flatmap(
        lambda n_decisions: st.integers(0, n_decisions).flatmap(
            lambda n_audited: st.builds(
                Stratum,
                decisions=st.just(n_decisions),
                audited=st.just(n_audited),
                correct=st.integers(0, n_audited),
            )
        )
    )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 20),
    st.lists(st.tuples(st.integers(1, 50), st.floats(0, 1)), min_size=1, max_size=12),
)
def test_proportional_sampling_gives_the_audited_accuracy(
    rate: int, strata: list[tuple[int, float]]
) -> None:
    """With N_h = rate * n_h in every stratum the weights cancel: sum x_h / sum n_h."""
    built = [
        Stratum(decisions=rate * audited, audited=audited, correct=round(share * audited))
        for audited, share in strata
    ]
    result = post_stratified_accuracy(built)
    assert result is not None
    audited = sum(s.audited for s in built)
    correct = sum(s.correct for s in built)
    assert result.estimate == pytest.approx(correct / audited, rel=1e-12, abs=1e-12)
    assert result.coverage == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(_stratum(), min_size=1, max_size=12))
def test_estimate_and_interval_stay_sensible(strata: list[Stratum]) -> None:
    result = post_stratified_accuracy(strata)
    audited = [s for s in strata if s.audited]
    if not audited:
        assert result is None
        return
    assert result is not None
    p = [s.correct / s.audited for s in audited]
    assert min(p) - 1e-12 <= result.estimate <= max(p) + 1e-12  # a weighted mean of the p_h
    assert 0.0 <= result.ci_low <= result.estimate <= result.ci_high <= 1.0
    assert result.ci_low == pytest.approx(max(0.0, result.estimate - Z_95 * result.standard_error))
    covered = sum(s.decisions for s in audited)
    assert result.coverage == covered / sum(s.decisions for s in strata)
    if len(audited) == len(strata):
        assert result.coverage == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), st.floats(0, 1)), min_size=1, max_size=12))
def test_auditing_everything_leaves_no_sampling_error(strata: list[tuple[int, float]]) -> None:
    """n_h = N_h everywhere: every fpc is 0, the estimate is the exact accuracy."""
    built = [Stratum(decisions=n, audited=n, correct=round(share * n)) for n, share in strata]
    result = post_stratified_accuracy(built)
    assert result is not None
    assert result.standard_error == 0.0
    assert result.estimate == pytest.approx(
        sum(s.correct for s in built) / sum(s.decisions for s in built), rel=1e-12
    )
    assert result.coverage == 1.0
