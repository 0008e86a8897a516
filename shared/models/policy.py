"""Policy updates (what changed in a policy, and who has read it) and policy questions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

POLICY_UPDATE_STATUSES = ("draft", "published")
ACKNOWLEDGEMENT_VIA = ("api", "link")


class PolicyUpdate(CreatedAtMixin, Base):
    """A change to one or more policy codes, for the reviewers of some markets.

    ``texts`` holds the title, summary and body per language (``{"en": {"title", "summary",
    "body"}, "de": {...}}``); ``language`` names the original. A draft can be edited (and a
    question's answer promoted into it); publishing makes it immutable, gives each of its
    policy codes a new version in force from ``effective_at``, and notifies the channels.
    """

    __tablename__ = "policy_updates"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'published')", name="status"),
        CheckConstraint("cardinality(markets) > 0", name="markets"),
        CheckConstraint("cardinality(policy_codes) > 0", name="policy_codes"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    language: Mapped[str] = mapped_column(String(8))
    texts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy_codes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    markets: Mapped[list[str]] = mapped_column(ARRAY(String(2)))
    effective_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(128))
    # The reminder to those who have not acknowledged goes once, before effective_at.
    reminder_sent_at: Mapped[datetime | None]
    # A knowledge quiz attached to the update, assigned to its reviewers when it is published.
    quiz_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("quizzes.id", ondelete="SET NULL"))


class PolicyVersion(Base):
    """One version of a policy code: in force from ``effective_at`` until the next one."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("policy_code", "version"),
        Index("ix_policy_versions_code_effective", "policy_code", "effective_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    policy_code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    effective_at: Mapped[datetime]
    policy_update_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("policy_updates.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class PolicyAcknowledgement(Base):
    """A reviewer has read a published policy update (once; the first time counts)."""

    __tablename__ = "policy_acknowledgements"
    __table_args__ = (CheckConstraint("via IN ('api', 'link')", name="via"),)

    policy_update_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("policy_updates.id", ondelete="CASCADE"), primary_key=True
    )
    reviewer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    acknowledged_at: Mapped[datetime]
    via: Mapped[str] = mapped_column(String(8))


class PolicyQuestion(CreatedAtMixin, Base):
    """A question on a policy code in a market, routed to that market's policy POCs."""

    __tablename__ = "policy_questions"
    __table_args__ = (
        Index(
            "ix_policy_questions_unanswered",
            "created_at",
            postgresql_where=text("answered_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    policy_code: Mapped[str] = mapped_column(String(64), index=True)
    market: Mapped[str] = mapped_column(String(2), index=True)
    question: Mapped[str] = mapped_column(Text)
    # The reviewer id of the asker's key, or the key's name when it is bound to no reviewer.
    asked_by: Mapped[str] = mapped_column(String(128))
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime | None]
    # policy_question.overdue is sent once per question.
    overdue_notified_at: Mapped[datetime | None]
    # The draft policy update the answer was promoted into.
    promoted_to_update_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("policy_updates.id", ondelete="SET NULL")
    )
