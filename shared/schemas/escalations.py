"""Escalation rules and RCA escalations: the contract of ``/v1/escalation-rules`` and
``/v1/escalations`` (DESIGN.md "Escalations and RCA")."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.schemas.common import PageQuery
from shared.schemas.fields import Day, MarketCode, PolicyCode, QueueName, ReviewerId

EscalationMetric = Literal["accuracy", "population_accuracy", "dispute_rate", "overturn_rate"]
EscalationGroup = Literal["moderator", "queue", "market", "policy"]
RuleSchedule = Literal["hourly", "daily"]
EscalationStatus = Literal["open", "investigating", "actions_pending", "resolved"]
RootCause = Literal[
    "policy_ambiguity",
    "training_gap",
    "tooling",
    "process",
    "individual_performance",
    "upstream_change",
]

MAX_WINDOW_DAYS = 366
# A rate (disputes, overturns) may rise by more than 100 % of its baseline; accuracy cannot
# drop by more than all of it.
MAX_RELATIVE_RISE = 100.0
MAX_ANALYSIS_STEPS = 10
MAX_ANALYSIS_LENGTH = 2000

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
RuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
AnalysisStep = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ANALYSIS_LENGTH)
]


class EscalationRuleFields(BaseModel):
    """What a rule watches and when it calls a drop a breach (checked together)."""

    model_config = ConfigDict(extra="forbid")

    name: RuleName
    metric: EscalationMetric
    group_by: EscalationGroup | None = None
    market: MarketCode | None = None
    queue: QueueName | None = None
    policy: PolicyCode | None = None
    moderator_id: ReviewerId | None = None
    window_days: int = Field(ge=1, le=MAX_WINDOW_DAYS)
    baseline_days: int | None = Field(None, ge=1, le=MAX_WINDOW_DAYS)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    relative_drop: float | None = Field(
        None,
        gt=0.0,
        le=MAX_RELATIVE_RISE,
        description=(
            "Relative worsening against the baseline window that counts (with p < alpha): "
            "0.1 = accuracy 10 % below its baseline, or a rate 10 % above its baseline. At "
            "most 1 for the accuracy metrics."
        ),
    )
    min_audits: int = Field(ge=1, le=1_000_000)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    schedule: RuleSchedule
    cooldown_days: int = Field(
        7,
        ge=0,
        le=365,
        description="A resolved escalation that breaches again within this many days is "
        "re-opened rather than duplicated.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.threshold is None and self.relative_drop is None:
            raise ValueError("a rule needs a threshold, a relative_drop, or both")
        if self.relative_drop is not None and self.baseline_days is None:
            raise ValueError("relative_drop compares with a baseline: baseline_days is required")
        if (
            self.relative_drop is not None
            and self.metric in ("accuracy", "population_accuracy")
            and self.relative_drop > 1.0
        ):
            raise ValueError("an accuracy cannot drop by more than all of it (relative_drop <= 1)")
        if self.metric == "population_accuracy" and self.group_by == "policy":
            raise ValueError(
                "population_accuracy is stratified by moderator and day: "
                "group it by market, queue or moderator"
            )
        return self


class EscalationRuleCreate(EscalationRuleFields):
    """``POST /v1/escalation-rules``."""


class EscalationRuleUpdate(BaseModel):
    """``PATCH /v1/escalation-rules/{id}``: only the fields sent change (the result is
    checked as a whole, like a new rule)."""

    model_config = ConfigDict(extra="forbid")

    name: RuleName | None = None
    enabled: bool | None = None
    window_days: int | None = Field(None, ge=1, le=MAX_WINDOW_DAYS)
    baseline_days: int | None = Field(None, ge=1, le=MAX_WINDOW_DAYS)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    relative_drop: float | None = Field(None, gt=0.0, le=MAX_RELATIVE_RISE)
    min_audits: int | None = Field(None, ge=1, le=1_000_000)
    alpha: float | None = Field(None, gt=0.0, lt=1.0)
    schedule: RuleSchedule | None = None
    cooldown_days: int | None = Field(None, ge=0, le=365)


class EscalationRuleRead(BaseModel):
    id: uuid.UUID
    name: str
    metric: EscalationMetric
    group_by: EscalationGroup | None
    market: str | None
    queue: str | None
    policy: str | None
    moderator_id: str | None
    window_days: int
    baseline_days: int | None
    threshold: float | None
    relative_drop: float | None
    min_audits: int
    alpha: float
    schedule: RuleSchedule
    cooldown_days: int
    enabled: bool
    created_by: str | None
    created_at: datetime
    last_evaluated_at: datetime | None
    next_evaluation_at: datetime | None


class EscalationRuleQuery(PageQuery):
    market: MarketCode | None = None
    metric: EscalationMetric | None = None
    enabled: bool | None = None


class EvaluationAccepted(BaseModel):
    job_id: uuid.UUID


class EscalationSlice(BaseModel):
    """The slice an escalation is about: at least one dimension."""

    model_config = ConfigDict(extra="forbid")

    market: MarketCode | None = None
    queue: QueueName | None = None
    policy: PolicyCode | None = None
    moderator: ReviewerId | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.parts():
            raise ValueError("a slice names at least one of market, queue, policy, moderator")
        return self

    def parts(self) -> dict[str, str]:
        """The dimensions given, in canonical order."""
        return {
            name: value
            for name in ("market", "queue", "policy", "moderator")
            if (value := getattr(self, name)) is not None
        }


class EscalationCreate(BaseModel):
    """``POST /v1/escalations``: an escalation opened by hand."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description
    slice: EscalationSlice


class EscalationUpdate(BaseModel):
    """``PATCH /v1/escalations/{id}``: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    owner_id: ReviewerId | None = None
    root_cause: RootCause | None = None
    analysis: list[AnalysisStep] | None = Field(
        None, max_length=MAX_ANALYSIS_STEPS, description="The five whys (at most 10 steps)."
    )
    status: EscalationStatus | None = None


class ActionCreate(BaseModel):
    """``POST /v1/escalations/{id}/actions``: a corrective action."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    owner_id: ReviewerId
    due_on: Day


class ActionRead(BaseModel):
    id: uuid.UUID
    title: str
    owner_id: str
    due_on: date
    completed_at: datetime | None
    completed_by: str | None


class BreachRead(BaseModel):
    """One evaluation that found the slice breaching."""

    evaluated_at: datetime
    evidence: dict[str, Any]


class EscalationRead(BaseModel):
    """An escalation as lists show it (DESIGN's item, and a few more fields)."""

    id: uuid.UUID
    rule_id: uuid.UUID | None
    slice: dict[str, str]
    status: EscalationStatus
    evidence: dict[str, Any] | None = Field(
        description="The breach that opened (or last re-opened) it: metric, observed, ci_low, "
        "ci_high, baseline, p_value, audited, and how it was judged; null when opened by hand."
    )
    opened_at: datetime
    owner_id: str | None
    root_cause: RootCause | None
    actions: list[ActionRead]
    title: str
    description: str | None
    market: str | None
    analysis: list[str]
    opened_by: str | None
    resolved_at: datetime | None
    recovered_at: datetime | None
    reopened_count: int


class EscalationDetail(EscalationRead):
    """One escalation with its history: every breach found, oldest first."""

    history: list[BreachRead]


class EscalationQuery(PageQuery):
    status: EscalationStatus | None = None
    rule_id: uuid.UUID | None = None
    market: MarketCode | None = None
