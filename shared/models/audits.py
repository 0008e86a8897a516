"""Daily audits: sampling plans and runs, audits, verdicts, disagreements, appeals."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

AUDIT_STATUSES = ("pending", "claimed", "completed")
OUTCOMES = ("correct", "incorrect")
SEVERITIES = ("critical", "major", "minor")
ERROR_TYPES = ("missed_violation", "over_enforcement", "wrong_policy", "wrong_action")
DISAGREEMENT_STATUSES = ("open", "disputed", "upheld", "overturned", "closed")


class SamplingPlan(CreatedAtMixin, Base):
    """How many of a queue's (or market's) decisions are audited each day, and which."""

    __tablename__ = "sampling_plans"
    __table_args__ = (
        CheckConstraint("rate >= 0 AND rate <= 1", name="rate"),
        CheckConstraint("min_per_moderator >= 0", name="min_per_moderator"),
        CheckConstraint("queue IS NOT NULL OR market IS NOT NULL", name="scope"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(Text)
    market: Mapped[str | None] = mapped_column(String(2), index=True)
    queue: Mapped[str | None] = mapped_column(String(128), index=True)
    rate: Mapped[float] = mapped_column(Float)
    min_per_moderator: Mapped[int]
    # Moderators in their first ``new_moderator_days`` get their rate multiplied.
    new_moderator_days: Mapped[int] = mapped_column(default=30, server_default="30")
    new_moderator_multiplier: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    # Moderators whose recent accuracy is below the threshold get their rate multiplied.
    low_accuracy_threshold: Mapped[float | None] = mapped_column(Float)
    low_accuracy_multiplier: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    low_accuracy_window_days: Mapped[int] = mapped_column(default=14, server_default="14")
    # {policy code: rate multiplier}, {policy code: minimum audits a day}, {action: multiplier}.
    label_boosts: Mapped[dict[str, float]] = mapped_column(JSONB, default=dict, server_default="{}")
    label_quotas: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    action_boosts: Mapped[dict[str, float]] = mapped_column(
        JSONB, default=dict, server_default="{}"
    )
    daily_cap: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True, server_default="true")
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class BackgroundJob(CreatedAtMixin, Base):
    """Work requested through the API and done by a worker: ``GET /v1/jobs/{id}``."""

    __tablename__ = "background_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'complete', 'failed')", name="status"),
        # The lost-job sweep reads the unfinished jobs, a handful among every job ever run
        # (``shared.background_jobs.recovery``; migration 0015).
        Index(
            "ix_background_jobs_unfinished",
            "id",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    # Also the outbox (and so the arq) job id.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class SamplingRun(CreatedAtMixin, Base):
    """One sampling of one market day (scheduled or on demand)."""

    __tablename__ = "sampling_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    day: Mapped[date]
    market: Mapped[str | None] = mapped_column(String(2))
    job_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    seed: Mapped[str] = mapped_column(String(128))
    decisions_considered: Mapped[int] = mapped_column(default=0, server_default="0")
    audits_created: Mapped[int] = mapped_column(default=0, server_default="0")
    finished_at: Mapped[datetime | None]


class Audit(CreatedAtMixin, Base):
    """A decision sampled for QA: ``pending → claimed → completed``."""

    __tablename__ = "audits"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'claimed', 'completed')", name="status"),
        # The claim query: pending work of a market and language, in sampled random order.
        Index(
            "ix_audits_claimable",
            "market",
            "language",
            "priority",
            postgresql_where=text("status <> 'completed'"),
        ),
        Index("ix_audits_moderator_id_day", "moderator_id", "day"),
        Index("ix_audits_auditor_id_status", "auditor_id", "status"),
        Index("ix_audits_day_market", "day", "market"),
        # One real audit per decision, however often a day is sampled; golden audits of a
        # decision are one per auditor.
        Index(
            "uq_audits_decision_id",
            "decision_id",
            unique=True,
            postgresql_where=text("NOT is_golden"),
        ),
        Index(
            "uq_audits_golden_decision_id_auditor_id",
            "decision_id",
            "auditor_id",
            unique=True,
            postgresql_where=text("is_golden"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    decision_id: Mapped[int] = mapped_column(BigInteger)
    sampling_run_id: Mapped[uuid.UUID | None]
    plan_id: Mapped[uuid.UUID | None]
    reason: Mapped[str] = mapped_column(String(32))
    market: Mapped[str] = mapped_column(String(2))
    queue: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(16))
    moderator_id: Mapped[str] = mapped_column(String(128))
    policy_labels: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # The decision's day in its market's time zone.
    day: Mapped[date]
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    priority: Mapped[float] = mapped_column(Float)
    auditor_id: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # Golden items (issue 4) test auditors and never count in moderators' numbers.
    is_golden: Mapped[bool] = mapped_column(default=False, server_default="false")


class Verdict(CreatedAtMixin, Base):
    """An auditor's judgment of an audited decision."""

    __tablename__ = "verdicts"
    __table_args__ = (
        CheckConstraint("outcome IN ('correct', 'incorrect')", name="outcome"),
        CheckConstraint("effective_outcome IN ('correct', 'incorrect')", name="effective_outcome"),
        CheckConstraint(
            "severity IS NULL OR severity IN ('critical', 'major', 'minor')", name="severity"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    audit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audits.id"), unique=True)
    decision_id: Mapped[int] = mapped_column(BigInteger, index=True)
    auditor_id: Mapped[str] = mapped_column(String(128))
    moderator_id: Mapped[str] = mapped_column(String(128))
    market: Mapped[str] = mapped_column(String(2))
    queue: Mapped[str] = mapped_column(String(128))
    day: Mapped[date]
    outcome: Mapped[str] = mapped_column(String(16))
    # What every report counts: the outcome, or "correct" once a dispute overturned it.
    effective_outcome: Mapped[str] = mapped_column(String(16))
    expected_action: Mapped[str | None] = mapped_column(String(16))
    expected_labels: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    severity: Mapped[str | None] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    # {policy code: version in force when the moderator decided}.
    policy_versions: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)


class Disagreement(CreatedAtMixin, Base):
    """Opened by an incorrect verdict; the moderator may dispute, a POC or manager rules."""

    __tablename__ = "disagreements"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'disputed', 'upheld', 'overturned', 'closed')", name="status"
        ),
        Index("ix_disagreements_status_market", "status", "market"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    audit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audits.id"), unique=True)
    verdict_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("verdicts.id"))
    moderator_id: Mapped[str] = mapped_column(String(128), index=True)
    auditor_id: Mapped[str] = mapped_column(String(128))
    market: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    dispute_deadline: Mapped[datetime]
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    disputed_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    sla_reminded_at: Mapped[datetime | None]


class DisagreementChange(Base):
    """Every state change of a disagreement, kept."""

    __tablename__ = "disagreement_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    disagreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disagreements.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Appeal(Base):
    """An appeal outcome from the appeals platform, linked to the decision it concerns."""

    __tablename__ = "appeals"
    __table_args__ = (
        UniqueConstraint("source_id", "event_id"),
        CheckConstraint("outcome IN ('upheld', 'reversed')", name="outcome"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_id: Mapped[uuid.UUID]
    event_id: Mapped[str] = mapped_column(String(128))
    content_id: Mapped[str] = mapped_column(String(256), index=True)
    original_event_id: Mapped[str | None] = mapped_column(String(128))
    decision_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    moderator_id: Mapped[str | None] = mapped_column(String(128), index=True)
    original_action: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SensitiveCategoryCap(Base):
    """Wellbeing: how many items of a sensitive policy category an auditor gets a day."""

    __tablename__ = "sensitive_category_caps"

    policy_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    daily_cap: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AuditLogEntry(Base):
    """Every change made through the API: who, when, what, before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    actor_key_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    actor_reviewer_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
