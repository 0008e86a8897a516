"""The analytics reports' queries and rows: the contract of ``/v1/reports/*``.

Every report takes the same filters (``AnalyticsFilters``) and answers flat rows, so the
JSON, the CSV (header = the row keys) and the XLSX (the same columns, headers in ``lang``)
carry the same numbers. A rate comes with its Wilson 95 % interval; a slice with fewer audits
than ``min_audits`` is marked ``small_sample`` and never ranked; an empty slice has nulls
and a ``note``, never a division by zero.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.schemas.common import StrictQuery
from shared.schemas.fields import Day, MarketCode, PolicyCode, QueueName, ReviewerId
from shared.schemas.reports import ReportLanguage

FileFormat = Literal["json", "csv", "xlsx"]
ChartFormat = Literal["json", "csv", "xlsx", "png"]
TrendInterval = Literal["day", "week", "month"]
SliceGroup = Literal["moderator", "queue", "market", "policy", "day"]
PopulationGroup = Literal["market", "queue", "moderator"]
ComparisonDimension = Literal["market", "queue", "policy"]
BriefingFormat = Literal["json", "pptx", "xlsx"]

DEFAULT_MIN_AUDITS = 30
DEFAULT_ALPHA = 0.05
# The key of the one row a report answers when it is asked for no grouping.
ALL_KEY = "(all)"


class AnalyticsFilters(StrictQuery):
    """What every analytics report counts; unknown parameters are refused (422)."""

    from_: Day | None = Field(
        None,
        alias="from",
        description=(
            "First market-local day counted (inclusive): a decision and its verdict count on "
            "the decision's day in its market's time zone. Default: `to` minus 29 days."
        ),
    )
    to: Day | None = Field(
        None, description="Last market-local day counted (inclusive). Default: today (UTC)."
    )
    market: MarketCode | None = None
    queue: QueueName | None = None
    moderator_id: ReviewerId | None = Field(
        None, description="Only this moderator. A moderator key may name only itself."
    )
    policy: PolicyCode | None = Field(
        None,
        description=(
            "Only verdicts concerning this policy code (applied by the moderator or expected "
            "by the auditor) and decisions carrying it."
        ),
    )
    min_audits: int = Field(
        DEFAULT_MIN_AUDITS,
        ge=1,
        le=1_000_000,
        description="Slices with fewer audits are marked `small_sample` and never ranked.",
    )
    lang: ReportLanguage = Field(
        "en", description="Language of file headers, sheets, slides and chart labels."
    )


class TrendQuery(AnalyticsFilters):
    interval: TrendInterval = Field(
        "week",
        description="Period length; weeks start on Monday (ISO 8601), months on the 1st.",
    )
    alpha: float = Field(
        DEFAULT_ALPHA,
        gt=0,
        lt=1,
        description="Significance level of the period-over-period two-proportion z-test.",
    )
    format: ChartFormat = Field("json", description="`png`: a chart of the trend.")


class PopulationQuery(AnalyticsFilters):
    group_by: PopulationGroup | None = Field(
        None, description="One row per slice; without it one row for the whole filter."
    )
    format: FileFormat = "json"


class ErrorsQuery(AnalyticsFilters):
    group_by: SliceGroup | None = Field(
        None, description="One row per slice; without it one row for the whole filter."
    )
    format: FileFormat = "json"


class ConfusionQuery(AnalyticsFilters):
    format: FileFormat = "json"


class ComparisonQuery(AnalyticsFilters):
    dimension: ComparisonDimension = Field("market", description="What the slices are.")
    target: float = Field(0.95, ge=0, le=1, description="The accuracy target, in [0, 1].")
    alpha: float = Field(
        DEFAULT_ALPHA,
        gt=0,
        lt=1,
        description="Significance level applied to the Benjamini-Hochberg q-values.",
    )
    format: ChartFormat = Field("json", description="`png`: a chart of the ranking.")


class RatesQuery(AnalyticsFilters):
    group_by: SliceGroup | None = Field(
        None, description="One row per slice; without it one row for the whole filter."
    )
    format: FileFormat = "json"


class BriefingQuery(StrictQuery):
    from_: Day | None = Field(None, alias="from", description="First market-local day.")
    to: Day | None = Field(None, description="Last market-local day (inclusive).")
    market: MarketCode | None = None
    lang: ReportLanguage = "en"
    format: BriefingFormat = Field(
        "json", description="`pptx`: a slide deck; `xlsx`: a workbook with a sheet per section."
    )


def _small_sample() -> Any:
    return Field(description="Fewer audits than `min_audits`: never ranked.")


def _note() -> Any:
    return Field(None, description="Why a value is null, when one is.")


class AnalyticsReport(BaseModel):
    """What every report envelope carries besides its rows: the days it counted (the default
    window resolved), so a reader and a file name can say which period the numbers cover."""

    day_from: date = Field(description="First market-local day counted (inclusive).")
    day_to: date = Field(description="Last market-local day counted (inclusive).")


class TrendRow(BaseModel):
    period_start: date = Field(description="First day of the period.")
    audited: int
    correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    change: float | None = Field(
        description="accuracy minus the previous period's; null for the first or an empty one."
    )
    p_value: float | None = Field(
        description="Pooled two-sided two-proportion z-test against the previous period."
    )
    significant: bool = Field(description="`p_value < alpha`; false when there is no p-value.")
    small_sample: bool = _small_sample()
    note: str | None = _note()


class TrendReport(AnalyticsReport):
    rows: list[TrendRow]
    interval: TrendInterval
    alpha: float


class PopulationRow(BaseModel):
    key: str = Field(description=f"The slice, or `{ALL_KEY}` without `group_by`.")
    estimate: float | None = Field(description="Post-stratified accuracy of all decisions.")
    ci_low: float | None
    ci_high: float | None
    audited_accuracy: float | None = Field(description="correct / audited, unweighted.")
    audited_ci_low: float | None
    audited_ci_high: float | None
    decisions: int
    audited: int
    coverage: float | None = Field(
        description="Share of decisions in strata with at least one audit."
    )
    small_sample: bool = _small_sample()
    note: str | None = _note()


class PopulationReport(AnalyticsReport):
    rows: list[PopulationRow]


class ErrorsRow(BaseModel):
    key: str
    audited: int
    incorrect: int = Field(description="Verdicts still incorrect (not overturned).")
    error_rate: float | None
    error_rate_ci_low: float | None
    error_rate_ci_high: float | None
    missed_violation: int
    over_enforcement: int
    wrong_policy: int
    wrong_action: int
    critical: int
    major: int
    minor: int
    quality_score: float | None = Field(
        description="1 - sum(weight * errors) / (max weight * audited)."
    )
    small_sample: bool = _small_sample()
    note: str | None = _note()


class ErrorsReport(AnalyticsReport):
    rows: list[ErrorsRow]
    severity_weights: dict[str, float]


class ConfusionCell(BaseModel):
    action: str = Field(description="The moderator's action.")
    expected_action: str = Field(description="The action the auditor expected.")
    verdicts: int
    share: float | None = Field(description="Of the verdicts on the moderator's action.")


class PolicyEnforcementRow(BaseModel):
    policy: str
    tp: int
    fp: int
    fn: int
    precision: float | None
    precision_ci_low: float | None
    precision_ci_high: float | None
    recall: float | None
    recall_ci_low: float | None
    recall_ci_high: float | None
    small_sample: bool = _small_sample()
    note: str | None = _note()


class ConfusionReport(AnalyticsReport):
    rows: list[ConfusionCell] = Field(description="The matrix, one cell per row.")
    policies: list[PolicyEnforcementRow]


class ComparisonRow(BaseModel):
    rank: int | None = Field(description="1 = furthest below target; null when small.")
    key: str
    audited: int
    correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    below_target: bool | None = Field(description="The whole interval is below `target`.")
    rest_audited: int
    rest_accuracy: float | None = Field(description="Accuracy of every other slice together.")
    p_value: float | None = Field(description="Two-proportion z-test against the rest.")
    q_value: float | None = Field(description="Benjamini-Hochberg adjusted over ranked slices.")
    significant: bool
    small_sample: bool = _small_sample()
    note: str | None = _note()


class ComparisonReport(AnalyticsReport):
    rows: list[ComparisonRow]
    dimension: ComparisonDimension
    target: float
    alpha: float
    adjustment: Literal["benjamini-hochberg"] = "benjamini-hochberg"


class RatesRow(BaseModel):
    key: str
    decisions: int
    audited: int
    audit_coverage: float | None
    audit_coverage_ci_low: float | None
    audit_coverage_ci_high: float | None
    judged_incorrect: int
    disputed: int
    dispute_rate: float | None = Field(description="disputed / judged incorrect.")
    dispute_rate_ci_low: float | None
    dispute_rate_ci_high: float | None
    overturned: int
    overturn_rate: float | None = Field(description="overturned / disputed.")
    overturn_rate_ci_low: float | None
    overturn_rate_ci_high: float | None
    appealed: int
    appeal_reversed: int
    appeal_overturn_rate: float | None = Field(description="appeal_reversed / appealed.")
    appeal_overturn_rate_ci_low: float | None
    appeal_overturn_rate_ci_high: float | None
    mean_hours_to_audit: float | None = Field(description="From decision to verdict.")
    mean_handling_seconds: float | None
    small_sample: bool = _small_sample()
    note: str | None = _note()


class RatesReport(AnalyticsReport):
    rows: list[RatesRow]


# --- the management briefing ------------------------------------------------------------


class BriefingHeadline(BaseModel):
    """The window's numbers on one slide: volume, audited and population accuracy, the
    severity-weighted quality score and the dispute and overturn rates."""

    decisions: int
    audited: int
    correct: int
    accuracy: float | None = Field(description="correct / audited of the audited sample.")
    ci_low: float | None
    ci_high: float | None
    population_accuracy: float | None = Field(
        description="Post-stratified accuracy of all decisions (DESIGN.md, Statistics)."
    )
    population_ci_low: float | None
    population_ci_high: float | None
    coverage: float | None = Field(
        description="Share of decisions in strata with at least one audit."
    )
    quality_score: float | None
    dispute_rate: float | None
    dispute_rate_ci_low: float | None
    dispute_rate_ci_high: float | None
    overturn_rate: float | None
    overturn_rate_ci_low: float | None
    overturn_rate_ci_high: float | None
    small_sample: bool = _small_sample()
    note: str | None = _note()


class CalibrationAgreementRow(BaseModel):
    """A calibration session closed in the window, with the agreement stored at its close
    (the statistics ``GET /v1/calibrations/{id}/results`` answers)."""

    id: str
    title: str
    market: str
    closed_at: date = Field(description="The day (UTC) the session was closed.")
    krippendorff_alpha: float | None
    percent_agreement: float | None
    n_units: int
    n_raters: int
    flagged_items: int


class EscalationRow(BaseModel):
    """An open escalation (the escalations domain arrives with its own issue)."""

    id: str
    metric: str
    slice: str
    status: str
    opened_at: date


class EscalationsSection(BaseModel):
    rows: list[EscalationRow]
    note: str | None = Field(None, description="Why the section is empty, when it is.")


class QuizCompletionRow(BaseModel):
    """A quiz attempted in the window: who attempted it, who passed, the mean score."""

    quiz_id: str
    title: str
    policy_code: str | None
    attempts: int
    reviewers: int = Field(description="Reviewers with an attempt in the window.")
    passed: int = Field(description="Of those, reviewers with a passing attempt.")
    pass_rate: float | None
    pass_rate_ci_low: float | None
    pass_rate_ci_high: float | None
    mean_score: float | None


class TrainingCompletionRow(BaseModel):
    """A training plan's items due in the window: how many are done, how many overdue."""

    plan_id: str
    title: str
    kind: str
    items: int = Field(description="Assignees' items due in the window.")
    completed: int
    completion_rate: float | None
    completion_rate_ci_low: float | None
    completion_rate_ci_high: float | None
    overdue: int = Field(description="Still open after their due date.")


class Briefing(AnalyticsReport):
    """The management briefing: every section computed by the report functions."""

    market: str | None
    dimension: ComparisonDimension = Field(
        description="What the comparison and error breakdown compare: markets, or the queues "
        "of the one market asked for."
    )
    headline: BriefingHeadline
    trend: TrendReport
    comparison: ComparisonReport
    errors: ErrorsReport
    calibrations: list[CalibrationAgreementRow]
    escalations: EscalationsSection
    quizzes: list[QuizCompletionRow]
    training: list[TrainingCompletionRow]
