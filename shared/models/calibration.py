"""Calibration sessions: the same items labeled blind by several reviewers, then compared."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

CALIBRATION_STATUSES = ("open", "closed")


class CalibrationSession(CreatedAtMixin, Base):
    """A calibration session: its categories, participants, and (once closed) its summary."""

    __tablename__ = "calibration_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        Index("ix_calibration_sessions_market_closed_at", "market", "closed_at"),
        Index("ix_calibration_sessions_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(Text)
    market: Mapped[str] = mapped_column(String(2))
    # In the order declared: the category set of every agreement statistic of the session.
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    participants: Mapped[list[str]] = mapped_column(ARRAY(String(128)))
    deadline: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    # The creator: the API key that created it and, for reviewer-bound keys, the reviewer.
    created_by_key_id: Mapped[str] = mapped_column(String(64))
    created_by_reviewer_id: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None]
    closed_by_key_id: Mapped[str | None] = mapped_column(String(64))
    # The overall agreement at close: what the trend shows.
    krippendorff_alpha: Mapped[float | None] = mapped_column(Float)
    percent_agreement: Mapped[float | None] = mapped_column(Float)
    n_units: Mapped[int | None]
    n_raters: Mapped[int | None]
    flagged_items: Mapped[int | None]
    # The results computed at close (labels never change after), without the item notes.
    results: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class CalibrationItem(Base):
    """One piece of content to label in a session, with its optional golden answer."""

    __tablename__ = "calibration_items"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("calibration_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    content_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # Items keep the order they were given in (the units' order in every statistic).
    position: Mapped[int]
    decision_id: Mapped[int | None] = mapped_column(BigInteger)
    golden: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    note_updated_at: Mapped[datetime | None]


class CalibrationLabel(Base):
    """A participant's label for an item; changeable until the deadline or the close."""

    __tablename__ = "calibration_labels"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "content_id"],
            ["calibration_items.session_id", "calibration_items.content_id"],
            name="fk_calibration_labels_item",
            ondelete="CASCADE",
        ),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    content_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    labeled_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
