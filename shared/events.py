"""Domain event types and their payloads: what the notifier renders for people."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.observability import request_id_var
from shared.core.outbox import add_job
from shared.jobs import FanOutEvent
from shared.models import Event
from shared.models.base import utcnow


class EventType(StrEnum):
    SOURCE_REJECTED_BATCH = "source.rejected_batch"
    SOURCE_SECRET_ROTATED = "source.secret_rotated"  # noqa: S105
    POLICY_UPDATE_PUBLISHED = "policy_update.published"
    DISAGREEMENT_OPENED = "disagreement.opened"
    DISPUTE_AWAITING_ARBITRATION = "dispute.awaiting_arbitration"
    DECISION_CORRECTED = "decision.corrected"
    CALIBRATION_OPENED = "calibration.opened"
    CALIBRATION_CLOSED = "calibration.closed"
    TRAINING_ITEM_OVERDUE = "training.item_overdue"
    AUDITOR_ACCURACY_DROPPED = "auditor.accuracy_dropped"


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRejectedBatch(EventPayload):
    """A signed request from a known source was refused; its owners should fix the sender."""

    id: uuid.UUID
    source: str
    status: int
    reason: str
    errors: list[dict[str, Any]]
    event_count: int | None


class SourceSecretRotated(EventPayload):
    id: uuid.UUID
    source: str
    previous_secret_expires_at: datetime | None


class DisagreementOpened(EventPayload):
    """An incorrect verdict opened a disagreement; the moderator may dispute it."""

    id: uuid.UUID
    audit_id: uuid.UUID
    decision_id: int
    moderator_id: str
    market: str
    queue: str
    error_type: str | None
    severity: str | None
    expected_action: str | None
    dispute_deadline: AwareDatetime


class DisputeAwaitingArbitration(EventPayload):
    """A disputed verdict has waited for a ruling longer than the SLA."""

    id: uuid.UUID
    audit_id: uuid.UUID
    decision_id: int
    moderator_id: str
    auditor_id: str
    market: str
    queue: str
    dispute_reason: str | None
    disputed_at: AwareDatetime
    waiting_hours: int
    sla_hours: int


class DecisionCorrected(EventPayload):
    """An audit found a source's decision wrong: what it should have been (sent to the source)."""

    decision_id: int
    event_id: str = Field(description="The source's own event id of the corrected decision.")
    content_id: str
    original_action: str
    corrected_action: str | None
    corrected_labels: list[str] | None
    severity: str | None
    error_type: str | None
    verdict_id: uuid.UUID
    corrected_at: AwareDatetime


class CalibrationOpened(EventPayload):
    """A calibration session was opened: its participants are asked to label its items."""

    id: uuid.UUID
    title: str
    market: str
    participants: list[str]
    deadline: AwareDatetime | None


class CalibrationClosed(EventPayload):
    """A calibration session was closed: the summary of how consistently policy was applied."""

    id: uuid.UUID
    title: str
    market: str
    krippendorff_alpha: float | None
    percent_agreement: float | None
    flagged_items: int
    n_items: int
    participants: int


class TrainingItemOverdue(EventPayload):
    """A training-plan item is past its due date and not done (sent once per assignee)."""

    plan_id: uuid.UUID
    plan_title: str
    plan_kind: str
    item_id: str
    item_kind: str
    reviewer_id: str
    owners: list[str]
    policy_code: str | None
    quiz_id: uuid.UUID | None
    due_at: AwareDatetime


class AuditorAccuracyDropped(EventPayload):
    """An auditor's golden-item accuracy of an ISO week fell below the threshold."""

    auditor_id: str
    week: str = Field(description="The ISO week, e.g. 2026-W47.")
    judged: int
    matched: int
    accuracy: float
    threshold: float


EVENT_PAYLOADS: dict[EventType, type[EventPayload]] = {
    EventType.SOURCE_REJECTED_BATCH: SourceRejectedBatch,
    EventType.SOURCE_SECRET_ROTATED: SourceSecretRotated,
    EventType.DISAGREEMENT_OPENED: DisagreementOpened,
    EventType.DISPUTE_AWAITING_ARBITRATION: DisputeAwaitingArbitration,
    EventType.DECISION_CORRECTED: DecisionCorrected,
    EventType.CALIBRATION_OPENED: CalibrationOpened,
    EventType.CALIBRATION_CLOSED: CalibrationClosed,
    EventType.TRAINING_ITEM_OVERDUE: TrainingItemOverdue,
    EventType.AUDITOR_ACCURACY_DROPPED: AuditorAccuracyDropped,
}


async def record_event(
    session: AsyncSession,
    *,
    type: EventType,
    data: EventPayload,
    market: str | None = None,
    source_id: uuid.UUID | None = None,
) -> Event:
    """Store the event and, in the same transaction, queue its fan-out to channels."""
    event = Event(
        id=uuid.uuid4(),
        type=type.value,
        occurred_at=utcnow(),
        market=market,
        data=data.model_dump(mode="json"),
        request_id=request_id_var.get(),
        source_id=source_id,
    )
    session.add(event)
    await session.flush()
    await add_job(session, FanOutEvent(event_id=event.id))
    return event
