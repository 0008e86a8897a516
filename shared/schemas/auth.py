"""API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.core.auth import Role
from shared.schemas.fields import MarketCode, ReviewerId


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role
    reviewer_id: ReviewerId | None = None
    markets: list[MarketCode] | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="The markets the key is limited to; leave it out for every market (an"
        " empty list is refused, never read as every market).",
    )

    @model_validator(mode="after")
    def _moderator_needs_reviewer(self) -> ApiKeyCreate:
        if self.role == "moderator" and self.reviewer_id is None:
            raise ValueError("a moderator key must be bound to a reviewer_id")
        return self


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    prefix: str
    reviewer_id: str | None
    markets: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself. Shown only in this response; store it now.")
