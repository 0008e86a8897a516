"""Domain event types and their payloads: what the notifier renders for people."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from shared.jobs import FanOutEvent
from shared.models import Event
from shared.models.base import utcnow
from shared.observability import request_id_var
from shared.outbox import add_job


class EventType(StrEnum):
    SOURCE_REJECTED_BATCH = "source.rejected_batch"
    SOURCE_SECRET_ROTATED = "source.secret_rotated"  # noqa: S105
    POLICY_UPDATE_PUBLISHED = "policy_update.published"
    DISAGREEMENT_OPENED = "disagreement.opened"
    DISPUTE_AWAITING_ARBITRATION = "dispute.awaiting_arbitration"
    DECISION_CORRECTED = "decision.corrected"


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


EVENT_PAYLOADS: dict[EventType, type[EventPayload]] = {
    EventType.SOURCE_REJECTED_BATCH: SourceRejectedBatch,
    EventType.SOURCE_SECRET_ROTATED: SourceSecretRotated,
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
