"""Console users (people), as the admin API creates and lists them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr, model_validator

from shared.core.auth import Role
from shared.schemas.fields import MarketCode, ReviewerId
from shared.users.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

CONSOLE_LANGUAGES = ("en", "de")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    role: Role
    reviewer_id: ReviewerId | None = None
    markets: list[MarketCode] | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="The markets the person is limited to; leave it out for every market.",
    )
    language: str = Field("en", pattern="^(en|de)$")
    password: SecretStr | None = Field(
        None,
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description="Leave it out to get a one-time link with which the person sets it.",
    )

    @model_validator(mode="after")
    def _moderator_needs_reviewer(self) -> UserCreate:
        if self.role in (Role.MODERATOR, Role.QA_AUDITOR) and self.reviewer_id is None:
            raise ValueError(f"a {self.role} must be bound to a reviewer_id")
        return self


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    markets: list[MarketCode] | None = Field(None, min_length=1, max_length=300)
    language: str | None = Field(None, pattern="^(en|de)$")
    disabled: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    reviewer_id: str | None
    markets: list[str] | None
    language: str
    created_at: datetime
    last_sign_in_at: datetime | None
    disabled_at: datetime | None


class UserCreated(UserRead):
    password_link: str | None = Field(
        None,
        description="The one-time link that sets the person's password (when none was"
        " given). Shown only in this response.",
    )


class PasswordLinkCreated(BaseModel):
    password_link: str
    expires_at: datetime
