"""Population accuracy: what the boosted audit sample says about all decisions. Pure, no I/O.

The audit sample is boosted on purpose (new moderators, low scorers, chosen labels), so the
audited accuracy over-weights the strata audited most. The post-stratified estimate weights
each stratum h = (moderator, market-local day) by the decisions it received instead
(DESIGN.md "Statistics"); the reports show both, with the estimate's coverage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from shared.stats.intervals import Z_95


@dataclass(frozen=True, slots=True)
class Stratum:
    """One stratum: ``decisions`` received (N_h), ``audited`` of them (n_h), ``correct`` (x_h).

    ``audited`` and ``correct`` exclude golden audits; an overturned verdict is correct.
    """

    decisions: int
    audited: int
    correct: int

    def __post_init__(self) -> None:
        if self.decisions < 0 or self.audited < 0 or self.correct < 0:
            raise ValueError("stratum counts must not be negative")
        if self.correct > self.audited:
            raise ValueError("a stratum cannot have more correct verdicts than audits")


@dataclass(frozen=True, slots=True)
class PopulationEstimate:
    """The post-stratified accuracy of all decisions, with its 95 % interval and coverage.

    ``decisions`` counts every stratum's decisions, ``covered_decisions`` those of the
    strata in the estimate (at least one audit); ``coverage`` is their ratio.
    """

    estimate: float
    standard_error: float
    ci_low: float
    ci_high: float
    coverage: float
    decisions: int
    covered_decisions: int
    audited: int
    correct: int


def post_stratified_accuracy(strata: Iterable[Stratum]) -> PopulationEstimate | None:
    """The post-stratified estimate of accuracy over ``strata``, or None without an audit.

    Over the strata with at least one audit (N = the sum of their N_h):
    estimate = sum N_h p_h / N with p_h = x_h / n_h;
    SE = sqrt(sum (N_h / N)^2 p_h (1 - p_h) / n_h * (1 - n_h / N_h)), the last factor the
    finite population correction; interval = estimate -+ 1.959964 SE, clipped to [0, 1]
    (DESIGN.md "Statistics"; the stratified estimate of a proportion of Cochran, W. G. (1977).
    Sampling Techniques, 3rd ed., Wiley, ch. 5, with p_h (1 - p_h) / n_h where Cochran has
    p_h q_h / (n_h - 1), as DESIGN.md defines it).
    Strata with decisions but no audit are left out of the estimate, and coverage =
    N / (all decisions) says how much of the population it speaks for. A stratum with more
    audits than decisions (n_h > N_h: counts from different sources disagree) gets a finite
    population correction of 0, never a negative variance. None also when the audited strata
    hold no decisions at all (nothing to weight by).
    """
    all_decisions = covered = audited = correct = 0
    weighted_correct = 0.0
    audited_strata: list[Stratum] = []
    for stratum in strata:
        all_decisions += stratum.decisions
        if stratum.audited == 0:
            continue
        audited_strata.append(stratum)
        covered += stratum.decisions
        audited += stratum.audited
        correct += stratum.correct
        weighted_correct += stratum.decisions * stratum.correct / stratum.audited
    if covered == 0:
        return None
    estimate = weighted_correct / covered
    variance = 0.0
    for stratum in audited_strata:
        if stratum.decisions == 0:
            continue  # weight 0
        share = stratum.decisions / covered
        p = stratum.correct / stratum.audited
        fpc = max(0.0, 1.0 - stratum.audited / stratum.decisions)
        variance += share * share * p * (1.0 - p) / stratum.audited * fpc
    standard_error = math.sqrt(variance)
    return PopulationEstimate(
        estimate=estimate,
        standard_error=standard_error,
        ci_low=max(0.0, estimate - Z_95 * standard_error),
        ci_high=min(1.0, estimate + Z_95 * standard_error),
        coverage=covered / all_decisions,
        decisions=all_decisions,
        covered_decisions=covered,
        audited=audited,
        correct=correct,
    )
