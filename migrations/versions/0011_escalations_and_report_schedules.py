"""escalations and report schedules: rules, escalations with their breaches and actions,
schedules and the immutable snapshots of their runs

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 16:39:52.205035
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escalation_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("group_by", sa.String(length=16), nullable=True),
        sa.Column("market", sa.String(length=2), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("policy", sa.String(length=64), nullable=True),
        sa.Column("moderator_id", sa.String(length=128), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("baseline_days", sa.Integer(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("relative_drop", sa.Double(), nullable=True),
        sa.Column("min_audits", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Double(), server_default="0.05", nullable=False),
        sa.Column("schedule", sa.String(length=8), nullable=False),
        sa.Column("cooldown_days", sa.Integer(), server_default="7", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_evaluation_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "group_by IS NULL OR group_by IN ('moderator', 'queue', 'market', 'policy')",
            name=op.f("ck_escalation_rules_group_by"),
        ),
        sa.CheckConstraint(
            "metric IN ('accuracy', 'population_accuracy', 'dispute_rate', 'overturn_rate')",
            name=op.f("ck_escalation_rules_metric"),
        ),
        sa.CheckConstraint(
            "schedule IN ('hourly', 'daily')", name=op.f("ck_escalation_rules_schedule")
        ),
        sa.CheckConstraint(
            "threshold IS NOT NULL OR relative_drop IS NOT NULL",
            name=op.f("ck_escalation_rules_criterion"),
        ),
        sa.CheckConstraint("window_days > 0", name=op.f("ck_escalation_rules_window_days")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_escalation_rules_name")),
    )
    op.create_index(
        op.f("ix_escalation_rules_next_evaluation_at"),
        "escalation_rules",
        ["next_evaluation_at"],
        unique=False,
    )
    op.create_table(
        "report_schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("cadence", sa.String(length=8), nullable=False),
        sa.Column("at", sa.Time(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("formats", postgresql.ARRAY(sa.String(length=8)), nullable=False),
        sa.Column("channel_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "cadence IN ('daily', 'weekly', 'monthly')", name=op.f("ck_report_schedules_cadence")
        ),
        sa.CheckConstraint(
            "report IN ('briefing', 'accuracy', 'trend', 'comparison')",
            name=op.f("ck_report_schedules_report"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_report_schedules_name")),
    )
    op.create_index(
        op.f("ix_report_schedules_next_run_at"), "report_schedules", ["next_run_at"], unique=False
    )
    op.create_table(
        "escalations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("slice", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("slice_key", sa.Text(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=128), nullable=True),
        sa.Column("owner_id", sa.String(length=128), nullable=True),
        sa.Column("root_cause", sa.String(length=32), nullable=True),
        sa.Column("analysis", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recovered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "root_cause IS NULL OR root_cause IN ('policy_ambiguity', 'training_gap', 'tooling', "
            "'process', 'individual_performance', 'upstream_change')",
            name=op.f("ck_escalations_root_cause"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'actions_pending', 'resolved')",
            name=op.f("ck_escalations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["escalation_rules.id"],
            name=op.f("fk_escalations_rule_id_escalation_rules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
    )
    op.create_index(op.f("ix_escalations_market"), "escalations", ["market"], unique=False)
    op.create_index(op.f("ix_escalations_rule_id"), "escalations", ["rule_id"], unique=False)
    op.create_index(
        "ix_escalations_status_opened", "escalations", ["status", "opened_at"], unique=False
    )
    op.create_index(
        "uq_escalations_rule_slice_unresolved",
        "escalations",
        ["rule_id", "slice_key"],
        unique=True,
        postgresql_where=sa.text("status <> 'resolved' AND rule_id IS NOT NULL"),
    )
    op.create_table(
        "report_snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=True),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("markets", postgresql.ARRAY(sa.String(length=2)), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["report_schedules.id"],
            name=op.f("fk_report_snapshots_schedule_id_report_schedules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_snapshots")),
        sa.UniqueConstraint(
            "schedule_id", "slot_at", name=op.f("uq_report_snapshots_schedule_id_slot_at")
        ),
    )
    op.create_index(
        op.f("ix_report_snapshots_schedule_id"), "report_snapshots", ["schedule_id"], unique=False
    )
    op.create_table(
        "escalation_actions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("escalation_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=128), nullable=True),
        sa.Column("overdue_notified_on", sa.Date(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.id"],
            name=op.f("fk_escalation_actions_escalation_id_escalations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_actions")),
    )
    op.create_index(
        op.f("ix_escalation_actions_escalation_id"),
        "escalation_actions",
        ["escalation_id"],
        unique=False,
    )
    op.create_table(
        "escalation_breaches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("escalation_id", sa.Uuid(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.id"],
            name=op.f("fk_escalation_breaches_escalation_id_escalations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_breaches")),
    )
    op.create_index(
        op.f("ix_escalation_breaches_escalation_id"),
        "escalation_breaches",
        ["escalation_id"],
        unique=False,
    )
    op.create_table(
        "report_snapshot_files",
        sa.Column("snapshot_id", sa.Uuid(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["report_snapshots.id"],
            name=op.f("fk_report_snapshot_files_snapshot_id_report_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "format", name=op.f("pk_report_snapshot_files")),
    )
    op.add_column("events", sa.Column("channel_ids", postgresql.ARRAY(sa.Uuid()), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "channel_ids")
    op.drop_table("report_snapshot_files")
    op.drop_index(op.f("ix_escalation_breaches_escalation_id"), table_name="escalation_breaches")
    op.drop_table("escalation_breaches")
    op.drop_index(op.f("ix_escalation_actions_escalation_id"), table_name="escalation_actions")
    op.drop_table("escalation_actions")
    op.drop_index(op.f("ix_report_snapshots_schedule_id"), table_name="report_snapshots")
    op.drop_table("report_snapshots")
    op.drop_index(
        "uq_escalations_rule_slice_unresolved",
        table_name="escalations",
        postgresql_where=sa.text("status <> 'resolved' AND rule_id IS NOT NULL"),
    )
    op.drop_index("ix_escalations_status_opened", table_name="escalations")
    op.drop_index(op.f("ix_escalations_rule_id"), table_name="escalations")
    op.drop_index(op.f("ix_escalations_market"), table_name="escalations")
    op.drop_table("escalations")
    op.drop_index(op.f("ix_report_schedules_next_run_at"), table_name="report_schedules")
    op.drop_table("report_schedules")
    op.drop_index(op.f("ix_escalation_rules_next_evaluation_at"), table_name="escalation_rules")
    op.drop_table("escalation_rules")
