"""golden items, golden verdicts, auditor accuracy announcements; golden audits per auditor

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One real audit per decision; golden audits of a decision: one per auditor.
    op.drop_constraint("uq_audits_decision_id", "audits", type_="unique")
    op.create_index(
        "uq_audits_decision_id",
        "audits",
        ["decision_id"],
        unique=True,
        postgresql_where=sa.text("NOT is_golden"),
    )
    op.create_index(
        "uq_audits_golden_decision_id_auditor_id",
        "audits",
        ["decision_id", "auditor_id"],
        unique=True,
        postgresql_where=sa.text("is_golden"),
    )
    op.create_table(
        "golden_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("decision_id", sa.BigInteger(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("expected_outcome", sa.String(length=16), nullable=False),
        sa.Column("expected_action", sa.String(length=16), nullable=True),
        sa.Column("expected_labels", postgresql.ARRAY(sa.String(length=64)), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("calibration_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_by_reviewer_id", sa.String(length=128), nullable=True),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "expected_outcome IN ('correct', 'incorrect')",
            name=op.f("ck_golden_items_expected_outcome"),
        ),
        sa.CheckConstraint(
            "source IN ('curated', 'calibration')", name=op.f("ck_golden_items_source")
        ),
        sa.CheckConstraint(
            "expected_outcome = 'incorrect' OR expected_action IS NULL",
            name=op.f("ck_golden_items_expected_action"),
        ),
        sa.ForeignKeyConstraint(
            ["calibration_id"],
            ["calibration_sessions.id"],
            name=op.f("fk_golden_items_calibration_id_calibration_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_items")),
    )
    op.create_index(
        op.f("ix_golden_items_decision_id"), "golden_items", ["decision_id"], unique=False
    )
    op.create_index(
        "ix_golden_items_created_at_id", "golden_items", ["created_at", "id"], unique=False
    )
    op.create_index(
        "uq_golden_items_active_decision_id",
        "golden_items",
        ["decision_id"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "golden_verdicts",
        sa.Column("verdict_id", sa.Uuid(), nullable=False),
        sa.Column("golden_item_id", sa.Uuid(), nullable=False),
        sa.Column("audit_id", sa.Uuid(), nullable=False),
        sa.Column("decision_id", sa.BigInteger(), nullable=False),
        sa.Column("auditor_id", sa.String(length=128), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("expected_action", sa.String(length=16), nullable=True),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('correct', 'incorrect')", name=op.f("ck_golden_verdicts_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["verdict_id"], ["verdicts.id"], name=op.f("fk_golden_verdicts_verdict_id_verdicts")
        ),
        sa.ForeignKeyConstraint(
            ["golden_item_id"],
            ["golden_items.id"],
            name=op.f("fk_golden_verdicts_golden_item_id_golden_items"),
        ),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["audits.id"], name=op.f("fk_golden_verdicts_audit_id_audits")
        ),
        sa.PrimaryKeyConstraint("verdict_id", name=op.f("pk_golden_verdicts")),
    )
    op.create_index(
        op.f("ix_golden_verdicts_golden_item_id"),
        "golden_verdicts",
        ["golden_item_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_golden_verdicts_decision_id"), "golden_verdicts", ["decision_id"], unique=False
    )
    op.create_index(
        "ix_golden_verdicts_judged_at_auditor_id",
        "golden_verdicts",
        ["judged_at", "auditor_id"],
        unique=False,
    )
    op.create_table(
        "auditor_accuracy_announcements",
        sa.Column("auditor_id", sa.String(length=128), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("judged", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column(
            "announced_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "auditor_id", "week_start", name=op.f("pk_auditor_accuracy_announcements")
        ),
    )


def downgrade() -> None:
    op.drop_table("auditor_accuracy_announcements")
    op.drop_index("ix_golden_verdicts_judged_at_auditor_id", table_name="golden_verdicts")
    op.drop_index(op.f("ix_golden_verdicts_decision_id"), table_name="golden_verdicts")
    op.drop_index(op.f("ix_golden_verdicts_golden_item_id"), table_name="golden_verdicts")
    op.drop_table("golden_verdicts")
    op.drop_index("uq_golden_items_active_decision_id", table_name="golden_items")
    op.drop_index("ix_golden_items_created_at_id", table_name="golden_items")
    op.drop_index(op.f("ix_golden_items_decision_id"), table_name="golden_items")
    op.drop_table("golden_items")
    # Golden audits go: the old constraint allows one audit per decision.
    op.execute("DELETE FROM verdicts WHERE audit_id IN (SELECT id FROM audits WHERE is_golden)")
    op.execute("DELETE FROM audits WHERE is_golden")
    op.drop_index("uq_audits_golden_decision_id_auditor_id", table_name="audits")
    op.drop_index("uq_audits_decision_id", table_name="audits")
    op.create_unique_constraint("uq_audits_decision_id", "audits", ["decision_id"])
