"""Many tests at once: Benjamini-Hochberg adjusted p-values (q-values). Pure, no I/O.

When a report compares many slices (markets, queues, policies) against the rest, some
p-values fall under alpha by chance alone; the comparison reports q-values instead, which
keep the expected share of false discoveries among the slices called significant at most
alpha (DESIGN.md "Statistics").
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order of ``p_values``.

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m), the q-value of p_(i) is
    min over j >= i of m p_(j) / j, capped at 1 (the step-up procedure: rejecting every
    hypothesis with q <= alpha is the procedure of the paper at level alpha).
    Benjamini, Y., Hochberg, Y. (1995). Controlling the false discovery rate: a practical
    and powerful approach to multiple testing. Journal of the Royal Statistical Society B
    57(1), 289-300. Equal to statsmodels' ``multipletests(method="fdr_bh")``.
    An empty sequence gives an empty list; a p-value outside [0, 1] (or NaN) is refused.
    """
    m = len(p_values)
    for p in p_values:
        if math.isnan(p) or not 0.0 <= p <= 1.0:
            raise ValueError("p-values must be numbers between 0 and 1")
    order = sorted(range(m), key=lambda index: p_values[index])
    q_values = [0.0] * m
    running_min = 1.0
    # From the largest p-value down, so each q is the minimum over its own and larger ranks.
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        # p * (m / rank), not p * m / rank: the factor is >= 1 exactly, so q never rounds
        # below its p (and is exactly p at the largest rank).
        running_min = min(running_min, p_values[index] * (m / rank))
        q_values[index] = running_min
    return q_values
