"""Benjamini-Hochberg q-values: the paper's worked example and statsmodels' fdr_bh."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from shared.stats.multiple_testing import benjamini_hochberg

pytestmark = pytest.mark.no_db

# Benjamini, Y., Hochberg, Y. (1995). Controlling the false discovery rate. JRSS B 57(1),
# 289-300, section 4 (the 15 p-values of Neuhaus et al.'s myocardial infarction trial).
# The paper: at level 0.05 the procedure rejects the four smallest (p_(4) = 0.0095 <=
# 4/15 * 0.05 = 0.01333, while no p_(i) with i >= 5 is <= i/15 * 0.05), Bonferroni only
# three. The q-values by hand, m p_(j) / j, then the minimum from the right:
#   j:        1       2      3       4         5       6        7         8       9
#   m p / j:  0.0015  0.003  0.0095  0.035625  0.0603  0.0695   0.063857  0.0645  0.0765
#   q:        0.0015  0.003  0.0095  0.035625  0.0603  0.063857 0.063857  0.0645  0.0765
#   j:        10      11       12        13       14       15
#   m p / j:  0.486   0.58118  0.714875  0.75323  0.81321  1.0
#   q:        the same (already increasing)
BH_1995_P = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip
BH_1995_Q = [
    0.0015, 0.003, 0.0095, 0.035625, 0.0603, 15 / 7 * 0.0298, 15 / 7 * 0.0298, 0.0645,
    0.0765, 0.486, 15 / 11 * 0.4262, 0.714875, 15 / 13 * 0.6528, 15 / 14 * 0.7590, 1.0,
]  # fmt: skip


def test_the_papers_worked_example() -> None:
    q = benjamini_hochberg(BH_1995_P)
    assert q == pytest.approx(BH_1995_Q, abs=1e-12)
    assert [value <= 0.05 for value in q] == [True] * 4 + [False] * 11


def test_q_values_come_back_in_input_order() -> None:
    shuffled = [BH_1995_P[i] for i in (14, 3, 0, 9, 5)]
    # m = 5: sorted 0.0001, 0.0095, 0.0278, 0.324, 1.0 -> 5p/j = 0.0005, 0.02375,
    # 0.046333, 0.405, 1.0 (already increasing).
    assert benjamini_hochberg(shuffled) == pytest.approx(
        [1.0, 0.02375, 0.0005, 0.405, 5 / 3 * 0.0278], abs=1e-12
    )


def test_edge_cases() -> None:
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.03]) == [0.03]
    # Ties share a q-value; the cap at 1 holds (3 * 0.9 / 2 = 1.35).
    assert benjamini_hochberg([0.9, 0.9, 0.01]) == pytest.approx([0.9, 0.9, 0.03])
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg([0.5, 1.5])
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg([float("nan")])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(0.0, 1.0, allow_nan=False),
            st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.5, 1.0]),  # ties and bounds
        ),
        min_size=1,
        max_size=60,
    )
)
def test_agrees_with_statsmodels_fdr_bh(p_values: list[float]) -> None:
    _, expected, _, _ = multipletests(p_values, method="fdr_bh")
    q = benjamini_hochberg(p_values)
    assert q == pytest.approx(list(expected), rel=1e-12, abs=1e-15)
    assert all(p <= value <= 1.0 for p, value in zip(p_values, q, strict=True))
