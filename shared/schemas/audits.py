"""Audits (the auditor work queue), verdicts, and the wellbeing caps on sensitive categories.

Audits are blind: until its verdict is in, an audit shows an auditor neither the moderator's
id nor anything else naming the moderator. ``moderator_id`` is then absent from the JSON (not
null), on the audit and on its decision.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas.common import PageQuery
from shared.schemas.decisions import Action
from shared.schemas.fields import Day, MarketCode, PolicyCode, QueueName, ReviewerId
from shared.verdicts import ErrorType

AuditStatus = Literal["pending", "claimed", "completed"]
Outcome = Literal["correct", "incorrect"]
Severity = Literal["critical", "major", "minor"]

MAX_COMMENT_CHARS = 4000
MAX_EXPECTED_LABELS = 32
MAX_DAILY_CAP = 10_000

_BLIND = "Absent while the audit is blind (until its verdict is in)."


def _hidden(value: object) -> bool:
    return value is None


class AuditDecision(BaseModel):
    """The audited decision as auditors see it: the moderator is named only after the verdict."""

    id: int
    event_id: str
    content_id: str
    content_type: str
    queue: str
    market: str
    language: str
    action: Action
    policy_labels: list[str]
    decided_at: datetime
    metadata: dict[str, Any]
    moderator_id: str | None = Field(None, exclude_if=_hidden, description=_BLIND)


class VerdictRead(BaseModel):
    """An auditor's judgment of an audited decision."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    auditor_id: str
    outcome: Outcome
    effective_outcome: Outcome = Field(
        description="What every report counts: the outcome, or 'correct' once overturned."
    )
    expected_action: Action | None
    expected_labels: list[str] | None
    severity: Severity | None
    error_type: ErrorType | None
    comment: str | None
    policy_versions: dict[str, int] = Field(
        description="The version of each policy concerned (the decision's and the expected labels)."
    )
    created_at: datetime


class AuditRead(BaseModel):
    """An audit with its (blind until judged) decision and, once judged, its verdict."""

    id: uuid.UUID
    status: AuditStatus
    reason: str = Field(description="Why the sampler chose it (base rate, quota, boost...).")
    market: str
    queue: str
    language: str
    day: date = Field(description="The decision's day in its market's time zone.")
    priority: float = Field(description="Claim order: lower values are handed out first.")
    is_golden: bool
    auditor_id: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    moderator_id: str | None = Field(None, exclude_if=_hidden, description=_BLIND)
    decision: AuditDecision
    verdict: VerdictRead | None
    error_type: ErrorType | None = Field(description="The verdict's error type when incorrect.")
    disagreement_id: uuid.UUID | None = Field(
        description="The disagreement an incorrect verdict opened."
    )


class VerdictCreate(BaseModel):
    """An auditor's verdict on the audit they hold.

    ``incorrect`` needs the ``expected_action`` and a ``severity``; ``expected_labels``
    defaults to the moderator's labels (the auditor disputes the action only), or to none
    when the expected action is ``approve``. ``correct`` takes none of the three.
    """

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    expected_action: Action | None = None
    expected_labels: list[PolicyCode] | None = Field(None, max_length=MAX_EXPECTED_LABELS)
    severity: Severity | None = None
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)

    @model_validator(mode="after")
    def _fields_match_outcome(self) -> VerdictCreate:
        if self.outcome == "incorrect":
            if self.expected_action is None:
                raise ValueError("an incorrect verdict needs the expected_action")
            if self.severity is None:
                raise ValueError("an incorrect verdict needs a severity (critical, major, minor)")
        else:
            given = [
                name
                for name in ("expected_action", "expected_labels", "severity")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(f"a correct verdict takes no {', '.join(given)}")
        return self


class AuditQuery(PageQuery):
    """Filters of ``GET /v1/audits``; ``from`` and ``to`` are audit days, inclusive."""

    status: AuditStatus | None = None
    moderator_id: ReviewerId | None = None
    auditor_id: ReviewerId | None = None
    market: MarketCode | None = None
    queue: QueueName | None = None
    from_: Day | None = Field(None, alias="from")
    to: Day | None = None
    outcome: Outcome | None = Field(
        None,
        description="Judged audits whose verdict counts as this (`effective_outcome`: "
        "overturned verdicts count as correct), as the reports count them.",
    )
    error_type: ErrorType | None = Field(
        None, description="Judged audits whose verdict has this error type."
    )
    golden: bool | None = Field(
        None,
        description="Only golden audits (true) or only real ones (false: what the reports "
        "count). Not for QA auditor keys (403): golden audits are blind to them.",
    )


# --- wellbeing ---------------------------------------------------------------------------


class CapSet(BaseModel):
    """How many items carrying a sensitive policy label an auditor may be handed a day."""

    model_config = ConfigDict(extra="forbid")

    daily_cap: int = Field(ge=0, le=MAX_DAILY_CAP, description="0: never hand such items out.")


class CapRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    policy_code: str
    daily_cap: int
    updated_at: datetime


class CapQuery(PageQuery):
    pass


class ExposureQuery(PageQuery):
    """One auditor (default: every auditor who claimed work that day) on one UTC day."""

    auditor_id: ReviewerId | None = None
    day: Day | None = Field(None, description="A UTC day; default today.")


class ExposureRow(BaseModel):
    """An auditor's exposure to one sensitive category on one UTC day, against its cap."""

    auditor_id: str
    day: date
    policy_code: str
    exposure: int = Field(description="Audits claimed that day whose labels include the code.")
    daily_cap: int
    remaining: int = Field(description="How many more such items may be handed out that day.")
    capped: bool = Field(description="True once the cap is reached: such items are skipped.")


__all__ = [
    "AuditDecision",
    "AuditQuery",
    "AuditRead",
    "AuditStatus",
    "CapQuery",
    "CapRead",
    "CapSet",
    "ExposureQuery",
    "ExposureRow",
    "Outcome",
    "Severity",
    "VerdictCreate",
    "VerdictRead",
]
