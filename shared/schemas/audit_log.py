"""The audit log: ``GET /v1/audit-log``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.common import PageQuery
from shared.schemas.fields import Instant, ReviewerId


class AuditLogQuery(PageQuery):
    """Filters of the audit log; every one optional, all of them combined."""

    actor: str | None = Field(None, max_length=64, description="The acting API key's id.")
    actor_reviewer_id: ReviewerId | None = None
    entity_type: str | None = Field(None, max_length=64, examples=["api_key"])
    entity_id: str | None = Field(None, max_length=128)
    action: str | None = Field(None, max_length=64, examples=["api_key.created"])
    from_: Instant | None = Field(None, alias="from", description="Inclusive.")
    to: Instant | None = Field(None, description="Exclusive.")


class AuditLogEntryRead(BaseModel):
    """One change: who (key, role, reviewer), when, what, and the entity before and after."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    actor: str | None = Field(
        validation_alias="actor_key_id",
        description="The acting API key's id; null for changes made outside the API.",
    )
    actor_role: str | None
    actor_reviewer_id: str | None
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
