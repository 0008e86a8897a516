"""Reviewer profiles: moderators, QA auditors and policy contacts, known by external id."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.channels.languages import MessageLanguage
from shared.schemas.common import PageQuery
from shared.schemas.fields import Day, LanguageTag, MarketCode, TeamName

# Deliberately loose (like an e-mail channel's target): the mail server is the judge; this
# only catches obvious mistakes. 320 is the longest address SMTP allows (64 + @ + 255).
EmailAddress = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320),
    Field(description="Where personal messages go (an answered question, an update to read)."),
]


class ReviewerUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=200)
    markets: list[MarketCode] = Field(max_length=300)
    languages: list[LanguageTag] = Field(max_length=50)
    started_on: Day | None = None
    team: TeamName | None = None
    email: EmailAddress | None = None
    notification_language: MessageLanguage | None = Field(
        None,
        description=(
            "The language of personal messages; null: the first of the reviewer's languages "
            "messages are written in, else English."
        ),
    )


class ReviewerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str | None
    markets: list[str]
    languages: list[str]
    started_on: date | None
    team: str | None
    email: str | None = Field(
        description=("Shown to admins, managers and the reviewer themself; null for everyone else.")
    )
    notification_language: str | None
    created_at: datetime


class ReviewerQuery(PageQuery):
    market: MarketCode | None = None
    language: LanguageTag | None = None
    team: TeamName | None = None
