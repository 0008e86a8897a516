"""Escalation rules (what quality drop opens an RCA), escalations and their actions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

ESCALATION_METRICS = ("accuracy", "population_accuracy", "dispute_rate", "overturn_rate")
ESCALATION_GROUPINGS = ("moderator", "queue", "market", "policy")
ESCALATION_STATUSES = ("open", "investigating", "actions_pending", "resolved")
ROOT_CAUSES = (
    "policy_ambiguity",
    "training_gap",
    "tooling",
    "process",
    "individual_performance",
    "upstream_change",
)


class EscalationRule(CreatedAtMixin, Base):
    """When a slice's quality counts as dropped, and how often to look (DESIGN "Escalations")."""

    __tablename__ = "escalation_rules"
    __table_args__ = (
        CheckConstraint(
            "metric IN ('accuracy', 'population_accuracy', 'dispute_rate', 'overturn_rate')",
            name="metric",
        ),
        CheckConstraint(
            "group_by IS NULL OR group_by IN ('moderator', 'queue', 'market', 'policy')",
            name="group_by",
        ),
        CheckConstraint("schedule IN ('hourly', 'daily')", name="schedule"),
        CheckConstraint("window_days > 0", name="window_days"),
        CheckConstraint("threshold IS NOT NULL OR relative_drop IS NOT NULL", name="criterion"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    metric: Mapped[str] = mapped_column(String(32))
    group_by: Mapped[str | None] = mapped_column(String(16))
    market: Mapped[str | None] = mapped_column(String(2))
    queue: Mapped[str | None] = mapped_column(String(128))
    policy: Mapped[str | None] = mapped_column(String(64))
    moderator_id: Mapped[str | None] = mapped_column(String(128))
    window_days: Mapped[int]
    baseline_days: Mapped[int | None]
    threshold: Mapped[float | None]
    relative_drop: Mapped[float | None]
    min_audits: Mapped[int]
    alpha: Mapped[float] = mapped_column(default=0.05, server_default="0.05")
    schedule: Mapped[str] = mapped_column(String(8))
    # A resolved escalation of this rule and slice that breaches again within this many days
    # is re-opened, not duplicated.
    cooldown_days: Mapped[int] = mapped_column(default=7, server_default="7")
    enabled: Mapped[bool] = mapped_column(default=True, server_default="true")
    created_by: Mapped[str | None] = mapped_column(String(128))
    last_evaluated_at: Mapped[datetime | None]
    next_evaluation_at: Mapped[datetime | None] = mapped_column(index=True)


class Escalation(CreatedAtMixin, Base):
    """A root-cause analysis of a quality drop in one slice, from a rule's breach or by hand.

    ``slice_key`` is the slice in one canonical text (``market=DE;queue=q1``): at most one
    escalation per rule and slice is not resolved at any time (a partial unique index), so
    two workers evaluating at once cannot both open one.
    """

    __tablename__ = "escalations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'investigating', 'actions_pending', 'resolved')", name="status"
        ),
        CheckConstraint(
            "root_cause IS NULL OR root_cause IN ('policy_ambiguity', 'training_gap', 'tooling', "
            "'process', 'individual_performance', 'upstream_change')",
            name="root_cause",
        ),
        Index(
            "uq_escalations_rule_slice_unresolved",
            "rule_id",
            "slice_key",
            unique=True,
            postgresql_where=text("status <> 'resolved' AND rule_id IS NOT NULL"),
        ),
        Index("ix_escalations_status_opened", "status", "opened_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escalation_rules.id", ondelete="SET NULL"), index=True
    )
    slice: Mapped[dict[str, str]] = mapped_column(JSONB)
    slice_key: Mapped[str] = mapped_column(Text)
    # For market scoping of reads and writes; null for a slice across markets.
    market: Mapped[str | None] = mapped_column(String(2), index=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    # The breach that opened (or last re-opened) it; null for a manual escalation.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    opened_at: Mapped[datetime]
    opened_by: Mapped[str | None] = mapped_column(String(128))
    owner_id: Mapped[str | None] = mapped_column(String(128))
    root_cause: Mapped[str | None] = mapped_column(String(32))
    analysis: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    resolved_at: Mapped[datetime | None]
    # After resolution the rule keeps watching: when the slice stays healthy, it is recorded.
    recovered_at: Mapped[datetime | None]
    reopened_count: Mapped[int] = mapped_column(default=0, server_default="0")


class EscalationBreach(Base):
    """One evaluation that found the slice breaching: the escalation's history."""

    __tablename__ = "escalation_breaches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    escalation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    evaluated_at: Mapped[datetime]
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB)


class EscalationAction(CreatedAtMixin, Base):
    """A corrective action of an escalation, with its owner and due date."""

    __tablename__ = "escalation_actions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    escalation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(String(128))
    due_on: Mapped[date]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(128))
    # escalation.action_overdue goes once per action and (UTC) day.
    overdue_notified_on: Mapped[date | None]
