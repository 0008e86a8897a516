"""Sampling plans, sampling runs, on-demand sampling jobs and the sample-size helper."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas.common import PageQuery
from shared.schemas.decisions import Action
from shared.schemas.fields import Day, MarketCode, PolicyCode, QueueName

JobStatus = Literal["queued", "running", "complete", "failed"]

# Generous bounds that still catch typos (a boost of 1e9, a minimum of a million a day).
MAX_MULTIPLIER = 1000.0
MAX_PER_DAY = 1_000_000

# A narrower interval needs more audits than any team makes (and 1e-300 overflowed).
MIN_MARGIN = 0.0001

Multiplier = Annotated[float, Field(ge=0.0, le=MAX_MULTIPLIER)]
DailyCount = Annotated[int, Field(ge=0, le=MAX_PER_DAY)]


class SamplingPlanFields(BaseModel):
    """The tunable part of a plan, shared by creation and change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    rate: float = Field(ge=0.0, le=1.0, description="Base share of decisions audited, 0..1.")
    min_per_moderator: int = Field(
        ge=0, le=MAX_PER_DAY, description="Audits per moderator per day at least."
    )
    new_moderator_days: int = Field(
        30, ge=0, le=3650, description="A moderator is new for this many days after starting."
    )
    new_moderator_multiplier: float = Field(
        1.0, ge=0.0, le=MAX_MULTIPLIER, description="Rate multiplier for new moderators."
    )
    low_accuracy_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Accuracy below which a moderator's rate is boosted."
    )
    low_accuracy_multiplier: float = Field(1.0, ge=0.0, le=MAX_MULTIPLIER)
    low_accuracy_window_days: int = Field(
        14, ge=1, le=365, description="Days of verdicts (before the sampled day) judged."
    )
    label_boosts: dict[PolicyCode, Multiplier] = Field(
        default_factory=dict,
        max_length=200,
        description="Rate multiplier per policy label (a decision takes its largest).",
    )
    label_quotas: dict[PolicyCode, DailyCount] = Field(
        default_factory=dict,
        max_length=200,
        description="Audits per day at least among decisions carrying the label.",
    )
    action_boosts: dict[Action, Multiplier] = Field(
        default_factory=dict, description="Rate multiplier per action."
    )
    daily_cap: int | None = Field(
        None, ge=0, le=MAX_PER_DAY, description="Audits per market day at most (this plan)."
    )


class SamplingPlanCreate(SamplingPlanFields):
    """A new plan for a queue, a market, or a queue within a market."""

    queue: QueueName | None = None
    market: MarketCode | None = None

    @model_validator(mode="after")
    def _has_scope(self) -> SamplingPlanCreate:
        if self.queue is None and self.market is None:
            raise ValueError("a plan needs a queue or a market (or both)")
        return self


class SamplingPlanUpdate(BaseModel):
    """A change to a plan: only the fields sent change (null clears an optional one; a map
    such as ``label_boosts`` is replaced whole)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    queue: QueueName | None = None
    market: MarketCode | None = None
    rate: float | None = Field(None, ge=0.0, le=1.0)
    min_per_moderator: int | None = Field(None, ge=0, le=MAX_PER_DAY)
    new_moderator_days: int | None = Field(None, ge=0, le=3650)
    new_moderator_multiplier: float | None = Field(None, ge=0.0, le=MAX_MULTIPLIER)
    low_accuracy_threshold: float | None = Field(None, ge=0.0, le=1.0)
    low_accuracy_multiplier: float | None = Field(None, ge=0.0, le=MAX_MULTIPLIER)
    low_accuracy_window_days: int | None = Field(None, ge=1, le=365)
    label_boosts: dict[PolicyCode, Multiplier] | None = Field(None, max_length=200)
    label_quotas: dict[PolicyCode, DailyCount] | None = Field(None, max_length=200)
    action_boosts: dict[Action, Multiplier] | None = None
    daily_cap: int | None = Field(None, ge=0, le=MAX_PER_DAY)
    active: bool | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> SamplingPlanUpdate:
        nullable = {"name", "queue", "market", "low_accuracy_threshold", "daily_cap"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        return self


class SamplingPlanRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    queue: str | None
    market: str | None
    rate: float
    min_per_moderator: int
    new_moderator_days: int
    new_moderator_multiplier: float
    low_accuracy_threshold: float | None
    low_accuracy_multiplier: float
    low_accuracy_window_days: int
    label_boosts: dict[str, float]
    label_quotas: dict[str, int]
    action_boosts: dict[str, float]
    daily_cap: int | None
    active: bool
    version: int = Field(description="Starts at 1; every change adds one.")
    created_at: datetime
    updated_at: datetime


class SamplingPlanQuery(PageQuery):
    market: MarketCode | None = None
    queue: QueueName | None = None
    active: bool | None = None


class SampleRequest(BaseModel):
    """Sample one day now: one market's, or (without ``market``) every market with a plan."""

    model_config = ConfigDict(extra="forbid")

    day: Day = Field(description="The day, in the market's time zone (YYYY-MM-DD).")
    market: MarketCode | None = None


class SampleAccepted(BaseModel):
    job_id: uuid.UUID


class JobRead(BaseModel):
    """Work requested through the API and done by a worker."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    status: JobStatus
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SamplingRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    day: date
    market: str | None
    job_id: uuid.UUID | None
    seed: str
    decisions_considered: int
    audits_created: int
    created_at: datetime
    finished_at: datetime | None


class SamplingRunQuery(PageQuery):
    market: MarketCode | None = None
    day: Day | None = None


class SampleSizeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_accuracy: float = Field(ge=0.0, le=1.0)
    margin: float = Field(
        ge=MIN_MARGIN,
        lt=1.0,
        description="Half-width of the 95 % interval, at least 0.0001 (about 96 million audits).",
    )


class SampleSize(BaseModel):
    n: int = Field(description="Audits needed for the interval to be ± margin wide.")
    expected_accuracy: float
    margin: float
    confidence: float = 0.95


class PlanSampleResult(BaseModel):
    """What one plan sampled on one market day."""

    plan_id: uuid.UUID
    plan_version: int
    decisions_considered: int
    already_audited: int
    audits_selected: int
    audits_created: int
    dropped_by_cap: int
    by_reason: dict[str, int]


class MarketSampleResult(BaseModel):
    market: str
    day: date
    time_zone: str
    sampling_run_id: uuid.UUID
    seed: str
    decisions_considered: int
    audits_created: int
    plans: list[PlanSampleResult]
    audits_per_moderator: dict[str, int] = Field(
        description="New audits per moderator (moderators without new audits left out)."
    )


class SamplingJobResult(BaseModel):
    """The ``result`` of a finished ``sample_daily_audits`` job."""

    day: date
    decisions_considered: int
    audits_created: int
    markets: list[MarketSampleResult]
