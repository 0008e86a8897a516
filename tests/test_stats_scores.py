"""The severity-weighted quality score and precision/recall, against hand computations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.core.settings import Settings
from shared.stats.intervals import wilson_interval
from shared.stats.scores import check_severity_weights, precision_recall, quality_score

pytestmark = pytest.mark.no_db

WEIGHTS = {"critical": 5, "major": 3, "minor": 1}


def test_quality_score_by_hand() -> None:
    """200 audits with 2 critical, 5 major and 10 minor errors, weights 5/3/1:

    penalty = 5 * 2 + 3 * 5 + 1 * 10 = 35; max weight * audited = 5 * 200 = 1000;
    score = 1 - 35 / 1000 = 0.965.
    """
    score = quality_score(audited=200, critical=2, major=5, minor=10, weights=WEIGHTS)
    assert score == pytest.approx(0.965, abs=1e-12)


def test_quality_score_bounds() -> None:
    assert quality_score(audited=10, critical=0, major=0, minor=0, weights=WEIGHTS) == 1.0
    assert quality_score(audited=4, critical=4, major=0, minor=0, weights=WEIGHTS) == 0.0
    # Only minor errors: each costs 1/5 of a critical one. 1 - 4 * 1 / (5 * 4) = 0.8.
    assert quality_score(audited=4, critical=0, major=0, minor=4, weights=WEIGHTS) == 0.8
    assert quality_score(audited=0, critical=0, major=0, minor=0, weights=WEIGHTS) is None


def test_quality_score_uses_the_heaviest_weight_whichever_it_is() -> None:
    """Weights 1/2/4 (minor heaviest): 10 audits, 1 critical and 1 minor error:
    1 - (1 * 1 + 4 * 1) / (4 * 10) = 1 - 5/40 = 0.875."""
    weights = {"critical": 1, "major": 2, "minor": 4}
    assert quality_score(audited=10, critical=1, major=0, minor=1, weights=weights) == 0.875


def test_quality_score_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="more errors"):
        quality_score(audited=2, critical=1, major=1, minor=1, weights=WEIGHTS)
    with pytest.raises(ValueError, match="negative"):
        quality_score(audited=2, critical=-1, major=0, minor=0, weights=WEIGHTS)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"critical": 5, "major": 3}, "exactly the keys"),
        ({"critical": 5, "major": 3, "minor": 1, "trivial": 0.5}, "exactly the keys"),
        ({"critical": 5, "major": 0, "minor": 1}, "positive"),
        ({"critical": 5, "major": -3, "minor": 1}, "positive"),
        ({"critical": float("inf"), "major": 3, "minor": 1}, "positive"),
        ({"critical": float("nan"), "major": 3, "minor": 1}, "positive"),
        ({"critical": True, "major": 3, "minor": 1}, "number"),
        ({"critical": "5", "major": 3, "minor": 1}, "number"),
    ],
)
def test_severity_weights_are_checked(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_severity_weights(weights)


def test_precision_and_recall_by_hand() -> None:
    """tp 40, fp 10, fn 20: precision 40/50 = 0.8, recall 40/60 = 0.666667, each with the
    Wilson interval of its counts (checked against published values in test_stats_intervals)."""
    result = precision_recall(tp=40, fp=10, fn=20)
    assert result.precision is not None
    assert result.recall is not None
    assert result.precision.value == 0.8
    assert (result.precision.ci_low, result.precision.ci_high) == wilson_interval(40, 50)
    assert result.recall.value == pytest.approx(2 / 3)
    assert (result.recall.ci_low, result.recall.ci_high) == wilson_interval(40, 60)


def test_precision_and_recall_are_none_without_a_denominator() -> None:
    result = precision_recall(tp=0, fp=0, fn=3)
    assert result.precision is None
    assert result.recall is not None
    assert result.recall.value == 0.0
    assert precision_recall(tp=0, fp=2, fn=0).recall is None
    with pytest.raises(ValueError, match="negative"):
        precision_recall(tp=-1, fp=0, fn=0)


def test_settings_take_severity_weights_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().severity_weights == {"critical": 5.0, "major": 3.0, "minor": 1.0}
    monkeypatch.setenv("PLUMBLINE_SEVERITY_WEIGHTS", '{"critical": 10, "major": 4, "minor": 1}')
    assert Settings().severity_weights == {"critical": 10.0, "major": 4.0, "minor": 1.0}
    monkeypatch.setenv("PLUMBLINE_SEVERITY_WEIGHTS", '{"critical": 10, "major": 0, "minor": 1}')
    with pytest.raises(ValidationError, match="major weight must be a positive"):
        Settings()
    monkeypatch.setenv("PLUMBLINE_SEVERITY_WEIGHTS", '{"critical": 10, "minor": 1}')
    with pytest.raises(ValidationError, match="exactly the keys"):
        Settings()
