"""A briefing built by hand (no database): what the renderers' tests and the rendered pages
in docs/ draw. Its numbers are consistent (accuracy = correct / audited, intervals are the
Wilson intervals of those counts), so the pictures look like a real month."""

from __future__ import annotations

from datetime import date, timedelta

from shared.analytics.schemas import (
    Briefing,
    BriefingHeadline,
    CalibrationAgreementRow,
    ComparisonReport,
    ComparisonRow,
    ErrorsReport,
    ErrorsRow,
    EscalationsSection,
    QuizCompletionRow,
    TrainingCompletionRow,
    TrendReport,
    TrendRow,
)
from shared.stats.intervals import wilson_interval

DAY_FROM = date(2026, 10, 26)
DAY_TO = date(2026, 11, 29)
TARGET = 0.95


def _rate(part: int, whole: int) -> tuple[float | None, float | None, float | None]:
    if whole == 0:
        return None, None, None
    low, high = wilson_interval(part, whole)
    return part / whole, low, high


def _trend() -> list[TrendRow]:
    counts = [(412, 389), (436, 409), (451, 431), (398, 383), (447, 432)]
    rows: list[TrendRow] = []
    previous: float | None = None
    for week, (audited, correct) in enumerate(counts):
        accuracy, low, high = _rate(correct, audited)
        assert accuracy is not None
        rows.append(
            TrendRow(
                period_start=DAY_FROM + timedelta(weeks=week),
                audited=audited,
                correct=correct,
                accuracy=accuracy,
                ci_low=low,
                ci_high=high,
                change=None if previous is None else accuracy - previous,
                p_value=None if previous is None else 0.21 + 0.1 * week,
                significant=False,
                small_sample=False,
            )
        )
        previous = accuracy
    return rows


_MARKETS = [
    # market, audited, correct, missed, over, wrong policy, wrong action, critical, major
    ("PL", 214, 193, 9, 5, 4, 3, 4, 9),
    ("FR", 402, 376, 10, 7, 5, 4, 3, 12),
    ("IT", 287, 272, 6, 4, 3, 2, 2, 6),
    ("DE", 498, 478, 8, 5, 4, 3, 2, 8),
    ("ES", 356, 343, 5, 4, 2, 2, 1, 5),
    ("NL", 287, 282, 2, 1, 1, 1, 0, 2),
    ("SE", 18, 17, 1, 0, 0, 0, 0, 1),
]


def _comparison() -> list[ComparisonRow]:
    rows: list[ComparisonRow] = []
    total_audited = sum(m[1] for m in _MARKETS)
    total_correct = sum(m[2] for m in _MARKETS)
    q_values = [0.004, 0.03, 0.41, 0.62, 0.55, 0.12]
    for index, (market, audited, correct, *_) in enumerate(_MARKETS):
        accuracy, low, high = _rate(correct, audited)
        assert high is not None
        small = audited < 30
        rest_accuracy, _, _ = _rate(total_correct - correct, total_audited - audited)
        rows.append(
            ComparisonRow(
                rank=None if small else index + 1,
                key=market,
                audited=audited,
                correct=correct,
                accuracy=accuracy,
                ci_low=low,
                ci_high=high,
                below_target=None if small else high < TARGET,
                rest_audited=total_audited - audited,
                rest_accuracy=rest_accuracy,
                p_value=None if small else q_values[index] / 2,
                q_value=None if small else q_values[index],
                significant=not small and q_values[index] < 0.05,
                small_sample=small,
            )
        )
    return rows


def _errors() -> list[ErrorsRow]:
    rows: list[ErrorsRow] = []
    for market, audited, correct, missed, over, policy, action, critical, major in _MARKETS:
        incorrect = audited - correct
        rate, low, high = _rate(incorrect, audited)
        minor = incorrect - critical - major
        score = 1 - (5 * critical + 3 * major + minor) / (5 * audited)
        rows.append(
            ErrorsRow(
                key=market,
                audited=audited,
                incorrect=incorrect,
                error_rate=rate,
                error_rate_ci_low=low,
                error_rate_ci_high=high,
                missed_violation=missed,
                over_enforcement=over,
                wrong_policy=policy,
                wrong_action=action + incorrect - (missed + over + policy + action),
                critical=critical,
                major=major,
                minor=minor,
                quality_score=score,
                small_sample=audited < 30,
            )
        )
    return rows


def sample_briefing(*, market: str | None = None) -> Briefing:
    """A five-week briefing over seven markets, every section filled."""
    audited = sum(m[1] for m in _MARKETS)
    correct = sum(m[2] for m in _MARKETS)
    accuracy, low, high = _rate(correct, audited)
    dispute_rate, dispute_low, dispute_high = _rate(61, audited - correct)
    overturn_rate, overturn_low, overturn_high = _rate(17, 61)
    return Briefing(
        day_from=DAY_FROM,
        day_to=DAY_TO,
        market=market,
        dimension="market",
        headline=BriefingHeadline(
            decisions=184_233,
            audited=audited,
            correct=correct,
            accuracy=accuracy,
            ci_low=low,
            ci_high=high,
            population_accuracy=0.9612,
            population_ci_low=0.9534,
            population_ci_high=0.9690,
            coverage=0.972,
            quality_score=0.9641,
            dispute_rate=dispute_rate,
            dispute_rate_ci_low=dispute_low,
            dispute_rate_ci_high=dispute_high,
            overturn_rate=overturn_rate,
            overturn_rate_ci_low=overturn_low,
            overturn_rate_ci_high=overturn_high,
            small_sample=False,
        ),
        trend=TrendReport(
            rows=_trend(), interval="week", alpha=0.05, day_from=DAY_FROM, day_to=DAY_TO
        ),
        comparison=ComparisonReport(
            rows=_comparison(),
            dimension="market",
            target=TARGET,
            alpha=0.05,
            day_from=DAY_FROM,
            day_to=DAY_TO,
        ),
        errors=ErrorsReport(
            rows=_errors(),
            severity_weights={"critical": 5.0, "major": 3.0, "minor": 1.0},
            day_from=DAY_FROM,
            day_to=DAY_TO,
        ),
        calibrations=[
            CalibrationAgreementRow(
                id="5b0f3c1e-0000-4000-8000-000000000001",
                title="Hate speech: borderline satire",
                market="DE",
                closed_at=date(2026, 11, 6),
                krippendorff_alpha=0.81,
                percent_agreement=0.913,
                n_units=40,
                n_raters=9,
                flagged_items=3,
            ),
            CalibrationAgreementRow(
                id="5b0f3c1e-0000-4000-8000-000000000002",
                title="Violent extremism: news context",
                market="FR",
                closed_at=date(2026, 11, 20),
                krippendorff_alpha=0.64,
                percent_agreement=0.842,
                n_units=35,
                n_raters=7,
                flagged_items=6,
            ),
        ],
        escalations=EscalationsSection(rows=[], note="Escalations arrive in a later release."),
        quizzes=[
            QuizCompletionRow(
                quiz_id="9a1d0000-0000-4000-8000-000000000001",
                title="Hate speech policy, November update",
                policy_code="hate_speech",
                attempts=131,
                reviewers=118,
                passed=104,
                pass_rate=104 / 118,
                pass_rate_ci_low=wilson_interval(104, 118)[0],
                pass_rate_ci_high=wilson_interval(104, 118)[1],
                mean_score=0.872,
            ),
            QuizCompletionRow(
                quiz_id="9a1d0000-0000-4000-8000-000000000002",
                title="Spam and scams refresher",
                policy_code="spam",
                attempts=64,
                reviewers=61,
                passed=58,
                pass_rate=58 / 61,
                pass_rate_ci_low=wilson_interval(58, 61)[0],
                pass_rate_ci_high=wilson_interval(58, 61)[1],
                mean_score=0.914,
            ),
        ],
        training=[
            TrainingCompletionRow(
                plan_id="77c20000-0000-4000-8000-000000000001",
                title="Onboarding, November cohort",
                kind="onboarding",
                items=96,
                completed=81,
                completion_rate=81 / 96,
                completion_rate_ci_low=wilson_interval(81, 96)[0],
                completion_rate_ci_high=wilson_interval(81, 96)[1],
                overdue=9,
            ),
            TrainingCompletionRow(
                plan_id="77c20000-0000-4000-8000-000000000002",
                title="Remedial: PL over-enforcement",
                kind="remedial",
                items=24,
                completed=15,
                completion_rate=15 / 24,
                completion_rate_ci_low=wilson_interval(15, 24)[0],
                completion_rate_ci_high=wilson_interval(15, 24)[1],
                overdue=4,
            ),
        ],
    )
