"""Scores of a slice's verdicts: the severity-weighted quality score, precision and recall.

Pure functions of counts, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.stats.intervals import wilson_interval

SEVERITIES = ("critical", "major", "minor")


def check_severity_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` as a dict, after checking it has exactly one positive number per severity.

    Raises ValueError naming what is wrong (Settings.severity_weights uses it too).
    """
    if set(weights) != set(SEVERITIES):
        raise ValueError(f"severity weights need exactly the keys {', '.join(SEVERITIES)}")
    checked: dict[str, float] = {}
    for severity in SEVERITIES:
        weight = weights[severity]
        # bool is an int; a weight of True is a mistake, not 1.
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"the {severity} weight must be a number")
        if not 0.0 < weight < float("inf"):
            raise ValueError(f"the {severity} weight must be a positive finite number")
        checked[severity] = float(weight)
    return checked


def quality_score(
    *, audited: int, critical: int, major: int, minor: int, weights: Mapping[str, float]
) -> float | None:
    """The severity-weighted quality score, 1 - sum(weight * errors) / (max weight * audited).

    1 when no audited decision has an error, 0 when every one has an error of the heaviest
    severity; an error of a lighter severity costs its weight's share of the heaviest. None
    when nothing was audited. ``weights`` maps critical, major and minor to positive numbers.
    """
    checked = check_severity_weights(weights)
    if min(audited, critical, major, minor) < 0:
        raise ValueError("counts must not be negative")
    if critical + major + minor > audited:
        raise ValueError("there cannot be more errors with a severity than audits")
    if audited == 0:
        return None
    penalty = checked["critical"] * critical + checked["major"] * major + checked["minor"] * minor
    return 1.0 - penalty / (max(checked.values()) * audited)


@dataclass(frozen=True, slots=True)
class Proportion:
    """A proportion with its Wilson score interval at 95 %."""

    value: float
    ci_low: float
    ci_high: float


def _proportion(successes: int, trials: int) -> Proportion | None:
    if trials == 0:
        return None
    low, high = wilson_interval(successes, trials)
    return Proportion(value=successes / trials, ci_low=low, ci_high=high)


@dataclass(frozen=True, slots=True)
class PrecisionRecall:
    """Precision tp / (tp + fp) and recall tp / (tp + fn); None where the denominator is 0."""

    precision: Proportion | None
    recall: Proportion | None


def precision_recall(*, tp: int, fp: int, fn: int) -> PrecisionRecall:
    """Precision and recall of an enforcement, each with its Wilson 95 % interval.

    For a policy: tp = verdicts where moderator and auditor both applied it, fp = the
    moderator applied it and the auditor did not expect it, fn = the auditor expected it and
    the moderator did not apply it.
    """
    if min(tp, fp, fn) < 0:
        raise ValueError("counts must not be negative")
    return PrecisionRecall(precision=_proportion(tp, tp + fp), recall=_proportion(tp, tp + fn))
