"""Golden items and auditor quality: requests and responses of ``/v1/golden-items`` and
``/v1/auditor-quality``."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas.audits import Outcome
from shared.schemas.common import PageQuery, StrictQuery
from shared.schemas.decisions import Action
from shared.schemas.fields import BigintId, Day, PolicyCode

GoldenSource = Literal["curated", "calibration"]
MAX_EXPECTED_LABELS = 32


class GoldenItemCreate(BaseModel):
    """A curated golden item: an existing decision and the verdict it should get.

    ``incorrect`` needs the ``expected_action``; ``expected_labels`` defaults like a verdict's
    (the decision's labels, or none when the expected action is ``approve``). ``correct``
    takes neither.
    """

    model_config = ConfigDict(extra="forbid")

    decision_id: BigintId
    expected_outcome: Outcome
    expected_action: Action | None = None
    expected_labels: list[PolicyCode] | None = Field(None, max_length=MAX_EXPECTED_LABELS)

    @model_validator(mode="after")
    def _fields_match_outcome(self) -> GoldenItemCreate:
        if self.expected_outcome == "incorrect" and self.expected_action is None:
            raise ValueError("an incorrect golden item needs the expected_action")
        if self.expected_outcome == "correct" and (
            self.expected_action is not None or self.expected_labels is not None
        ):
            raise ValueError("a correct golden item takes no expected_action or expected_labels")
        return self


class GoldenItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    decision_id: int
    market: str
    expected_outcome: Outcome
    expected_action: str | None
    expected_labels: list[str] | None
    source: GoldenSource
    calibration_id: uuid.UUID | None
    active: bool
    created_by: str = Field(description="The id of the API key that created it.")
    created_by_reviewer_id: str | None
    created_at: datetime
    deactivated_at: datetime | None


class SkippedCalibrationItem(BaseModel):
    content_id: str
    reason: str


class CalibrationImport(BaseModel):
    """What importing a closed calibration session created, and what it left out and why."""

    created: list[GoldenItemRead]
    skipped: list[SkippedCalibrationItem]


class GoldenItemQuery(PageQuery):
    """Filters of ``GET /v1/golden-items``: newest first."""

    active: bool | None = None
    source: GoldenSource | None = None


class AuditorQualityQuery(StrictQuery):
    """``from`` and ``to`` are UTC dates, inclusive; by default the last 8 ISO weeks."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Day | None = Field(None, alias="from")
    to: Day | None = None
    auditor_id: str | None = Field(None, min_length=1, max_length=128)


class AuditorQualityRow(BaseModel):
    """One auditor's golden-item results in one ISO week (of the verdicts' UTC time)."""

    auditor_id: str
    week: str = Field(description="The ISO week, e.g. 2026-W47.")
    week_start: date = Field(description="The Monday of the week.")
    golden_judged: int
    golden_matched: int
    accuracy: float | None
    ci_low: float | None = Field(description="Wilson score interval at 95 %.")
    ci_high: float | None
    agreement: float | None = Field(
        description="Share of the auditor's golden verdicts whose outcome equals the majority"
        " outcome of the other auditors on the same golden decision; null when no other"
        " auditor judged any of them (or only with a tie)."
    )
    agreement_compared: int = Field(
        description="How many of the week's golden verdicts the agreement compares."
    )


class AuditorQualityReport(BaseModel):
    from_: date = Field(alias="from")
    to: date
    threshold: float = Field(description="The accuracy below which an auditor is announced.")
    rows: list[AuditorQualityRow]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
