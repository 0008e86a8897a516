"""Does a slice breach its rule? Pure statistics over counts, no I/O.

A rule's metric is a proportion with a direction:

- ``accuracy`` = correct / audited and ``population_accuracy`` (the post-stratified
  estimate, ``shared.analytics.population``): lower is worse;
- ``dispute_rate`` = disputed / judged incorrect and ``overturn_rate`` = overturned /
  disputed (as the rates report counts them): higher is worse.

A slice is judged only with at least ``min_audits`` audits in the window (audited verdicts,
whatever the metric's denominator). It breaches when

- its 95 % interval lies wholly on the wrong side of ``threshold`` (``ci_high < threshold``
  for accuracy, ``ci_low > threshold`` for a rate), or
- it is worse than its baseline by ``relative_drop`` or more, relatively (accuracy: (baseline
  - observed) / baseline; a rate: (observed - baseline) / baseline, any rise from a baseline
  of 0 counting as infinite), AND the change is significant: the pooled two-sided
  two-proportion p-value (DESIGN "Statistics", ``two_proportion_z_test``) below ``alpha``.

One-sided or two-sided: the test is DESIGN's two-sided one, and the direction is required
separately (a relative worsening of ``relative_drop`` > 0 is a move in the wrong direction).
Requiring the direction and p < alpha two-sided is a one-sided test at level alpha / 2:
conservative on purpose (an escalation costs people's time).

Population accuracy is an estimate, not a count ratio: its change is tested with the same
z statistic built from the two estimates' standard errors, z = (e1 - e0) / sqrt(SE1^2 +
SE0^2), p = 2(1 - Phi(|z|)).

A grouped rule tests many slices at once, so the p-values of all its slices that were
tested are adjusted with Benjamini-Hochberg first and the adjusted value (``q_value``) is
compared with ``alpha``; an ungrouped rule's q equals its p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.stats.intervals import two_proportion_z_test, wilson_interval
from shared.stats.multiple_testing import benjamini_hochberg

LOWER_IS_WORSE = frozenset({"accuracy", "population_accuracy"})


@dataclass(frozen=True, slots=True)
class Measurement:
    """A metric over one window: ``value`` with its interval, the counts it comes from.

    ``successes`` / ``trials`` is the proportion (for population accuracy the audited
    correct / audited, kept for the record); ``standard_error`` is set for an estimate that
    is not a count ratio (population accuracy) and selects the estimate test.
    """

    audited: int
    successes: int
    trials: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    standard_error: float | None = None


def proportion(successes: int, trials: int, *, audited: int) -> Measurement:
    """A count ratio with its Wilson 95 % interval (value None without trials)."""
    if trials <= 0 or not 0 <= successes <= trials:
        return Measurement(audited, successes, trials, None, None, None)
    low, high = wilson_interval(successes, trials)
    return Measurement(audited, successes, trials, successes / trials, low, high)


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a rule calls a breach (see the module docstring)."""

    metric: str
    min_audits: int
    alpha: float
    threshold: float | None = None
    relative_drop: float | None = None


@dataclass(frozen=True, slots=True)
class SliceInput:
    """One slice to judge: its key, its window's measurement and its baseline's (if any)."""

    key: str
    window: Measurement
    baseline: Measurement | None = None


@dataclass(frozen=True, slots=True)
class SliceJudgement:
    """The verdict on one slice and the evidence it rests on (stored with an escalation)."""

    key: str
    judged: bool
    breach: bool
    evidence: dict[str, Any] = field(default_factory=dict)


def change_p_value(window: Measurement, baseline: Measurement) -> float | None:
    """The two-sided p-value of the change from ``baseline`` to ``window``; None when either
    has no value."""
    if window.value is None or baseline.value is None:
        return None
    if window.standard_error is not None and baseline.standard_error is not None:
        variance = window.standard_error**2 + baseline.standard_error**2
        if variance == 0.0:
            return 1.0
        z = (window.value - baseline.value) / math.sqrt(variance)
        return math.erfc(abs(z) / math.sqrt(2.0))
    _, p_value = two_proportion_z_test(
        window.successes, window.trials, baseline.successes, baseline.trials
    )
    return p_value


def relative_worsening(metric: str, observed: float, baseline: float) -> float:
    """How much worse ``observed`` is than ``baseline``, relative to the baseline (negative
    for an improvement); infinite for a rise from a baseline of 0 (a rate metric) or any
    value from a baseline accuracy of 0 is never a drop."""
    worse = baseline - observed if metric in LOWER_IS_WORSE else observed - baseline
    if baseline == 0.0:
        return math.inf if worse > 0 else 0.0
    return worse / baseline


def outside_threshold(metric: str, window: Measurement, threshold: float) -> bool:
    """Whether the whole interval lies on the wrong side of ``threshold``."""
    if window.ci_low is None or window.ci_high is None:
        return False
    if metric in LOWER_IS_WORSE:
        return window.ci_high < threshold
    return window.ci_low > threshold


def judge_slices(slices: Sequence[SliceInput], criteria: Criteria) -> list[SliceJudgement]:
    """Judge every slice of one evaluation, in order (Benjamini-Hochberg over the p-values of
    the slices judged, when there are several)."""
    judged = [
        s.window.audited >= criteria.min_audits and s.window.value is not None for s in slices
    ]
    p_values: list[float | None] = [
        change_p_value(s.window, s.baseline) if ok and s.baseline is not None else None
        for s, ok in zip(slices, judged, strict=True)
    ]
    tested = [index for index, p in enumerate(p_values) if p is not None]
    adjusted = benjamini_hochberg([p_values[index] or 0.0 for index in tested])
    q_of = dict(zip(tested, adjusted, strict=True))
    judgements: list[SliceJudgement] = []
    for index, (item, ok) in enumerate(zip(slices, judged, strict=True)):
        window, baseline = item.window, item.baseline
        below_threshold = ok and (
            criteria.threshold is not None
            and outside_threshold(criteria.metric, window, criteria.threshold)
        )
        change = None
        if window.value is not None and baseline is not None and baseline.value is not None:
            change = relative_worsening(criteria.metric, window.value, baseline.value)
        q_value = q_of.get(index)
        dropped = (
            ok
            and criteria.relative_drop is not None
            and change is not None
            and change >= criteria.relative_drop
            and q_value is not None
            and q_value < criteria.alpha
        )
        evidence: dict[str, Any] = {
            "metric": criteria.metric,
            "observed": window.value,
            "ci_low": window.ci_low,
            "ci_high": window.ci_high,
            "baseline": None if baseline is None else baseline.value,
            "p_value": p_values[index],
            "audited": window.audited,
            "q_value": q_value,
            "p_adjustment": "benjamini-hochberg" if len(slices) > 1 else None,
            "relative_change": None if change is None or math.isinf(change) else change,
            "threshold": criteria.threshold,
            "relative_drop": criteria.relative_drop,
            "alpha": criteria.alpha,
            "min_audits": criteria.min_audits,
            "successes": window.successes,
            "trials": window.trials,
            "baseline_audited": None if baseline is None else baseline.audited,
            "criteria_met": [
                name
                for name, met in (("threshold", below_threshold), ("relative_drop", dropped))
                if met
            ],
        }
        judgements.append(
            SliceJudgement(
                key=item.key, judged=ok, breach=bool(below_threshold or dropped), evidence=evidence
            )
        )
    return judgements
