"""Golden items: decisions with a known right verdict, mixed into auditors' work to test them."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

GOLDEN_SOURCES = ("curated", "calibration")


class GoldenItem(CreatedAtMixin, Base):
    """A decision whose right verdict is known (curated by a QA lead or from a calibration)."""

    __tablename__ = "golden_items"
    __table_args__ = (
        CheckConstraint("expected_outcome IN ('correct', 'incorrect')", name="expected_outcome"),
        CheckConstraint("source IN ('curated', 'calibration')", name="source"),
        CheckConstraint(
            "expected_outcome = 'incorrect' OR expected_action IS NULL", name="expected_action"
        ),
        # A decision is an active golden item at most once.
        Index(
            "uq_golden_items_active_decision_id",
            "decision_id",
            unique=True,
            postgresql_where=text("active"),
        ),
        Index("ix_golden_items_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    decision_id: Mapped[int] = mapped_column(BigInteger, index=True)
    # The decision's market (market-scoped keys see only their markets' items).
    market: Mapped[str] = mapped_column(String(2))
    expected_outcome: Mapped[str] = mapped_column(String(16))
    expected_action: Mapped[str | None] = mapped_column(String(16))
    expected_labels: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    source: Mapped[str] = mapped_column(String(16))
    calibration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calibration_sessions.id", ondelete="SET NULL")
    )
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
    # The API key that created it and, for reviewer-bound keys, the reviewer (never tested on it).
    created_by: Mapped[str] = mapped_column(String(64))
    created_by_reviewer_id: Mapped[str | None] = mapped_column(String(128))
    deactivated_at: Mapped[datetime | None]


class GoldenVerdict(Base):
    """An auditor's verdict on a golden audit, compared with the golden expectation."""

    __tablename__ = "golden_verdicts"
    __table_args__ = (
        CheckConstraint("outcome IN ('correct', 'incorrect')", name="outcome"),
        Index("ix_golden_verdicts_judged_at_auditor_id", "judged_at", "auditor_id"),
    )

    verdict_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("verdicts.id"), primary_key=True)
    golden_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("golden_items.id"), index=True)
    audit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audits.id"))
    decision_id: Mapped[int] = mapped_column(BigInteger, index=True)
    auditor_id: Mapped[str] = mapped_column(String(128))
    market: Mapped[str] = mapped_column(String(2))
    outcome: Mapped[str] = mapped_column(String(16))
    expected_action: Mapped[str | None] = mapped_column(String(16))
    matched: Mapped[bool]
    judged_at: Mapped[datetime]


class AuditorAccuracyAnnouncement(Base):
    """An ``auditor.accuracy_dropped`` event sent: one per auditor and ISO week."""

    __tablename__ = "auditor_accuracy_announcements"

    auditor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The Monday of the ISO week announced.
    week_start: Mapped[date] = mapped_column(primary_key=True)
    judged: Mapped[int]
    matched: Mapped[int]
    accuracy: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    event_id: Mapped[uuid.UUID | None]
    announced_at: Mapped[datetime] = mapped_column(server_default=func.now())
