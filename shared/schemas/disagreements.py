"""Disagreements (opened by incorrect verdicts), disputes, arbitration, and corrections.

Also the payloads of the events this part of the domain emits (``disagreement.opened``,
``dispute.awaiting_arbitration``, ``decision.corrected``): what the notifier renders for
people and what a source platform receives back as a correction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.schemas.channels import MIN_SECRET_LENGTH, ChannelRead
from shared.schemas.common import PageQuery
from shared.schemas.fields import MarketCode, ReviewerId

DisagreementStatus = Literal["open", "disputed", "upheld", "overturned", "closed"]
ResolutionOutcome = Literal["upheld", "overturned"]
VerdictOutcome = Literal["correct", "incorrect"]

MAX_NOTE_CHARS = 4000


def _not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


class DisputeCreate(BaseModel):
    """The moderator contests an incorrect verdict, saying why."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)

    _reason = field_validator("reason")(_not_blank)


class ResolutionCreate(BaseModel):
    """A policy POC's or manager's ruling on a disputed verdict."""

    model_config = ConfigDict(extra="forbid")

    outcome: ResolutionOutcome = Field(
        description="'upheld': the verdict stands; 'overturned': it counts as correct everywhere."
    )
    note: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)

    _note = field_validator("note")(_not_blank)


class DisagreementChangeRead(BaseModel):
    """One state change of a disagreement (``from_status`` is null for its opening)."""

    model_config = ConfigDict(from_attributes=True)

    from_status: DisagreementStatus | None
    to_status: DisagreementStatus
    actor: str | None = Field(description="Who made the change; null for scheduled jobs.")
    note: str | None
    created_at: datetime


class DisagreementRead(BaseModel):
    id: uuid.UUID
    audit_id: uuid.UUID
    verdict_id: uuid.UUID
    decision_id: int
    moderator_id: str
    auditor_id: str
    market: str
    queue: str
    status: DisagreementStatus
    verdict_outcome: VerdictOutcome = Field(description="The auditor's verdict, as given.")
    effective_outcome: VerdictOutcome = Field(
        description="What every report counts: 'correct' once the verdict was overturned."
    )
    error_type: str | None
    severity: str | None
    expected_action: str | None
    dispute_deadline: datetime
    dispute_reason: str | None
    disputed_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    resolved_at: datetime | None
    sla_reminded_at: datetime | None
    created_at: datetime


class DisagreementDetail(DisagreementRead):
    history: list[DisagreementChangeRead] = Field(description="Every state change, oldest first.")


class DisagreementQuery(PageQuery):
    status: DisagreementStatus | None = None
    moderator_id: ReviewerId | None = None
    market: MarketCode | None = None


# --- corrections back to the source platform ---------------------------------------------


class CorrectionTargetSet(BaseModel):
    """Where a source platform receives corrections of its decisions (a signed webhook)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "An https:// URL (plain http:// only to hosts listed in "
            "PLUMBLINE_INSECURE_TARGET_HOSTS). Stored encrypted; never returned."
        ),
    )
    secret: SecretStr | None = Field(
        None,
        min_length=MIN_SECRET_LENGTH,
        max_length=256,
        description=(
            "The HMAC key signing each correction. Omitted on creation: one is generated and "
            "returned once. Omitted on update: the current secret is kept."
        ),
    )

    @field_validator("url")
    @classmethod
    def _strip_url(cls, value: str) -> str:
        return value.strip()


class CorrectionTargetRead(ChannelRead):
    """The source's corrections channel (a ``webhook`` channel bound to the source)."""

    source_id: uuid.UUID


class CorrectionTargetSaved(CorrectionTargetRead):
    secret: str | None = Field(
        description=(
            "The generated signing secret, shown only in the response that generated it; "
            "null when the secret was supplied or kept."
        )
    )


# --- event payloads (to be unified into shared/events.py) --------------------------------


__all__ = [
    "CorrectionTargetRead",
    "CorrectionTargetSaved",
    "CorrectionTargetSet",
    "DisagreementChangeRead",
    "DisagreementDetail",
    "DisagreementQuery",
    "DisagreementRead",
    "DisagreementStatus",
    "DisputeCreate",
    "ResolutionCreate",
    "ResolutionOutcome",
]
