"""Sources: moderation platforms posting decisions."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.fields import SourceName

MAX_GRACE_SECONDS = 30 * 24 * 3600


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SourceName


class SourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None


class SourceCreated(BaseModel):
    id: uuid.UUID
    name: str
    secret: str = Field(description="The signing secret. Shown only in this response.")
    created_at: datetime


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int = Field(
        3600,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the previous secret is still accepted.",
    )


class SecretRotated(SourceCreated):
    previous_secret_expires_at: datetime | None
