"""Decision intake: the event a platform posts, and the decision as the API returns it."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.schemas.common import PageQuery
from shared.schemas.fields import (
    Day,
    Instant,
    LanguageTag,
    MarketCode,
    PolicyCode,
    QueueName,
    ReviewerId,
)

Action = Literal["approve", "remove", "restrict", "escalate"]
MAX_METADATA_BYTES = 16 * 1024
MAX_BATCH_EVENTS = 1000


class DecisionEvent(BaseModel):
    """One moderator decision, as a moderation platform posts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    content_id: str = Field(min_length=1, max_length=256)
    content_type: str = Field(min_length=1, max_length=64)
    queue: QueueName
    market: MarketCode
    language: LanguageTag
    moderator_id: ReviewerId
    action: Action
    policy_labels: list[PolicyCode] = Field(default_factory=list, max_length=32)
    decided_at: AwareDatetime
    handling_time_ms: int | None = Field(None, ge=0, le=7 * 24 * 3600 * 1000)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value)) if value else 0
        except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits, say
            raise ValueError(f"metadata cannot be stored: {exc}") from exc
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
        return value


class DecisionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[DecisionEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class IntakeResult(BaseModel):
    accepted: int
    duplicates: int


class DecisionRead(BaseModel):
    id: int
    source: str
    event_id: str
    content_id: str
    content_type: str
    queue: str
    market: str
    language: str
    moderator_id: str
    action: Action
    policy_labels: list[str]
    decided_at: datetime
    handling_time_ms: int | None
    metadata: dict[str, Any]
    received_at: datetime


class DecisionQuery(PageQuery):
    market: MarketCode | None = None
    queue: QueueName | None = None
    moderator_id: ReviewerId | None = None
    policy_label: PolicyCode | None = None
    from_: Instant | None = Field(None, alias="from")
    to: Instant | None = None


class IntakeRollupRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: date
    market: str
    queue: str
    moderator_id: str
    decisions: int


class IntakeRollupQuery(PageQuery):
    market: MarketCode | None = None
    queue: QueueName | None = None
    moderator_id: ReviewerId | None = None
    from_: Day | None = Field(None, alias="from")
    to: Day | None = None


class RejectedBatchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: int
    reason: str
    errors: list[dict[str, Any]]
    event_count: int | None
    created_at: datetime
