"""Reviewer profiles: moderators, QA auditors and policy contacts, known by external id."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.common import PageQuery
from shared.schemas.fields import Day, LanguageTag, MarketCode, TeamName


class ReviewerUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=200)
    markets: list[MarketCode] = Field(max_length=300)
    languages: list[LanguageTag] = Field(max_length=50)
    started_on: Day | None = None
    team: TeamName | None = None


class ReviewerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str | None
    markets: list[str]
    languages: list[str]
    started_on: date | None
    team: str | None
    created_at: datetime


class ReviewerQuery(PageQuery):
    market: MarketCode | None = None
    language: LanguageTag | None = None
    team: TeamName | None = None
