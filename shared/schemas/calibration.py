"""Calibration sessions: ``/v1/calibrations`` requests and responses.

A session is a set of items (content ids, optionally decisions) that several participants
label blind with one of the session's categories (policy codes, plus "no_violation"). Once
closed, its results compare the participants with each other and with the golden answers.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.schemas.agreement import AgreementResult
from shared.schemas.common import PageQuery
from shared.schemas.fields import BigintId, Instant, MarketCode, PolicyCode, ReviewerId

CalibrationStatus = Literal["open", "closed"]
# A category: a policy code, or "no_violation" (which matches the same pattern).
Category = PolicyCode
ContentId = Annotated[str, StringConstraints(min_length=1, max_length=256)]

NO_VIOLATION = "no_violation"
MAX_ITEMS = 1_000
MAX_PARTICIPANTS = 200
MAX_CATEGORIES = 100
# An item is flagged when fewer than this share of its labels agree on the consensus.
CONSENSUS_THRESHOLD = 0.6


class CalibrationItemCreate(BaseModel):
    """An item to label: a content id, optionally the decision it comes from and the answer."""

    model_config = ConfigDict(extra="forbid")

    content_id: ContentId
    decision_id: BigintId | None = Field(
        None, description="An existing decision on this content (its id in /v1/decisions)."
    )
    golden: Category | None = Field(None, description="The right answer: one of the categories.")


class CalibrationCreate(BaseModel):
    """A new calibration session."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Hate speech, week 48",
                    "market": "DE",
                    "categories": ["hate_speech", "harassment", "no_violation"],
                    "items": [
                        {"content_id": "vid-1", "golden": "hate_speech"},
                        {"content_id": "vid-2"},
                    ],
                    "participants": ["qa-1", "qa-2", "qa-3"],
                    "deadline": "2026-12-01T17:00:00Z",
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200)
    market: MarketCode
    categories: list[Category] = Field(
        min_length=2,
        max_length=MAX_CATEGORIES,
        description='Policy codes, usually with "no_violation"; the labels participants may give.',
    )
    items: list[CalibrationItemCreate] = Field(min_length=1, max_length=MAX_ITEMS)
    participants: list[ReviewerId] = Field(
        max_length=MAX_PARTICIPANTS, description="Reviewer ids; at least two."
    )
    deadline: Instant | None = Field(
        None, description="Labels are refused after it (and after the session is closed)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must not repeat")
        declared = set(self.categories)
        seen: set[str] = set()
        for index, item in enumerate(self.items):
            if item.content_id in seen:
                raise ValueError(f"items[{index}]: content_id {item.content_id!r} is listed twice")
            seen.add(item.content_id)
            if item.golden is not None and item.golden not in declared:
                raise ValueError(
                    f"items[{index}]: golden answer {item.golden!r} is not one of the categories"
                )
        if len(set(self.participants)) != len(self.participants):
            raise ValueError("participants must not repeat")
        if len(self.participants) < 2:
            raise ValueError("a calibration needs at least two participants")
        return self


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_id: ContentId
    label: Category


class LabelsPut(BaseModel):
    """Labels of the calling participant, item by item (others they gave stay)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _no_repeats(self) -> Self:
        seen: set[str] = set()
        for index, label in enumerate(self.labels):
            if label.content_id in seen:
                raise ValueError(
                    f"labels[{index}]: content_id {label.content_id!r} is listed twice"
                )
            seen.add(label.content_id)
        return self


class NotePut(BaseModel):
    """A discussion note on an item (null clears it)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(max_length=10_000)


class LabelRead(BaseModel):
    reviewer_id: str
    content_id: str
    label: str
    labeled_at: AwareDatetime


class CalibrationItemRead(BaseModel):
    content_id: str
    decision_id: int | None
    golden: str | None = Field(description="Hidden (null) from participants until close.")
    golden_hidden: bool = Field(description="True when a golden answer exists but is hidden.")
    note: str | None
    labeled: int = Field(description="How many participants labeled this item.")


class ParticipantProgress(BaseModel):
    reviewer_id: str
    labeled: int


class CalibrationRead(BaseModel):
    """A session. Before close, ``labels`` holds only the caller's own labels (blind)."""

    id: uuid.UUID
    title: str
    market: str
    categories: list[str]
    participants: list[str]
    deadline: AwareDatetime | None
    status: CalibrationStatus
    created_at: AwareDatetime
    created_by_reviewer_id: str | None
    closed_at: AwareDatetime | None
    items: list[CalibrationItemRead]
    progress: list[ParticipantProgress] = Field(description="How many items each one labeled.")
    labels: list[LabelRead] = Field(
        description="Open: the caller's own labels only. Closed: everyone's."
    )


class CalibrationListItem(BaseModel):
    id: uuid.UUID
    title: str
    market: str
    status: CalibrationStatus
    deadline: AwareDatetime | None
    created_at: AwareDatetime
    closed_at: AwareDatetime | None
    n_items: int
    n_participants: int


class CalibrationQuery(PageQuery):
    market: MarketCode | None = None
    status: CalibrationStatus | None = None


class TrendQuery(PageQuery):
    market: MarketCode


class TrendPoint(BaseModel):
    """One closed session of the market: its overall agreement."""

    id: uuid.UUID
    title: str
    closed_at: AwareDatetime
    krippendorff_alpha: float | None
    percent_agreement: float | None
    n_units: int
    n_raters: int


class ParticipantResult(BaseModel):
    reviewer_id: str
    labeled: int
    accuracy_vs_golden: float | None = Field(
        description="Share right among the participant's labeled items with a golden answer."
    )
    agreement_with_consensus: float | None = Field(
        description="Share of the participant's labeled items whose consensus is their label."
    )


class ItemResult(BaseModel):
    content_id: str
    consensus_label: str | None = Field(
        description="The most chosen label; a tie goes to the alphabetically first label."
    )
    consensus_share: float | None = Field(description="Its votes / the item's labels.")
    golden: str | None
    flagged: bool = Field(
        description=f"Consensus share below {CONSENSUS_THRESHOLD} or consensus differs from golden."
    )
    note: str | None


class CategoryAgreement(BaseModel):
    """Agreement on one category: each label recoded chosen (1) / not chosen (0)."""

    category: str
    chosen: int = Field(description="Labels that chose this category.")
    krippendorff_alpha: float | None
    percent_agreement: float | None
    notes: list[str]


class CalibrationResults(BaseModel):
    agreement: AgreementResult
    participants: list[ParticipantResult]
    items: list[ItemResult]
    per_category: list[CategoryAgreement]


class LabelsRead(BaseModel):
    """The calling participant's labels in the session, after the change."""

    labels: list[LabelRead]
