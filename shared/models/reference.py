"""Reference data registered on first reference: markets, queues, policies, reviewers."""

from __future__ import annotations

from datetime import date

from sqlalchemy import String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin


class Market(CreatedAtMixin, Base):
    __tablename__ = "markets"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    default_language: Mapped[str] = mapped_column(String(16))
    time_zone: Mapped[str] = mapped_column(String(64))


class Queue(CreatedAtMixin, Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    market_code: Mapped[str] = mapped_column(String(2), index=True)


class Policy(CreatedAtMixin, Base):
    __tablename__ = "policies"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    severity_tier: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(default=1, server_default="1")


class Reviewer(CreatedAtMixin, Base):
    __tablename__ = "reviewers"

    # The external id the moderation platform knows the person by.
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    markets: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list, server_default="{}")
    languages: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), default=list, server_default="{}"
    )
    started_on: Mapped[date | None]
    # The team the person works in (free text); quizzes may be assigned to a team.
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    # Where personal messages go (a policy update to acknowledge, an answered question).
    email: Mapped[str | None] = mapped_column(String(320))
    # The language of personal messages; null: the first of ``languages`` we have templates
    # in, else English.
    notification_language: Mapped[str | None] = mapped_column(String(8))
