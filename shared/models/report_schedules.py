"""Report schedules and the immutable snapshots each run stores."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

SCHEDULED_REPORTS = ("briefing", "accuracy", "trend", "comparison")
CADENCES = ("daily", "weekly", "monthly")


class ReportSchedule(CreatedAtMixin, Base):
    """Which report, with which query, runs when (a local time in an IANA zone), in which
    language and formats, and to which channels."""

    __tablename__ = "report_schedules"
    __table_args__ = (
        CheckConstraint("report IN ('briefing', 'accuracy', 'trend', 'comparison')", name="report"),
        CheckConstraint("cadence IN ('daily', 'weekly', 'monthly')", name="cadence"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    report: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    cadence: Mapped[str] = mapped_column(String(8))
    at: Mapped[time]
    timezone: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8))
    formats: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    channel_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()))
    enabled: Mapped[bool] = mapped_column(default=True, server_default="true")
    created_by: Mapped[str | None] = mapped_column(String(128))
    # The next slot (UTC) this schedule runs at; a run claims it by moving it on.
    next_run_at: Mapped[datetime] = mapped_column(index=True)


class ReportSnapshot(CreatedAtMixin, Base):
    """One run of a report: its data and files as they were, never changed afterwards.

    ``slot_at`` is the scheduled slot a run belongs to (unique per schedule, so two workers
    never run one slot twice); null for a run asked for by hand.
    """

    __tablename__ = "report_snapshots"
    __table_args__ = (UniqueConstraint("schedule_id", "slot_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("report_schedules.id", ondelete="SET NULL"), index=True
    )
    slot_at: Mapped[datetime | None]
    report: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    lang: Mapped[str] = mapped_column(String(8))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # For market scoping of reads: the markets the query covered (null: all).
    markets: Mapped[list[str] | None] = mapped_column(ARRAY(String(2)))
    created_by: Mapped[str | None] = mapped_column(String(128))


class ReportSnapshotFile(Base):
    """One file of a snapshot (xlsx, pptx, csv...)."""

    __tablename__ = "report_snapshot_files"

    snapshot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(8), primary_key=True)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(128))
    content: Mapped[bytes] = mapped_column(LargeBinary)
