"""analytics: rollups per market-local day and slice that every report reads (replacing the
intake rollup), and the dirty slices that keep them current

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every counter, covered by the partial index over the slice totals.
_COUNTERS = (
    "decisions",
    "handling_time_ms_sum",
    "handling_time_count",
    "audited",
    "correct",
    "judged_incorrect",
    "missed_violation",
    "over_enforcement",
    "wrong_policy",
    "wrong_action",
    "critical",
    "major",
    "minor",
    "disputed",
    "overturned",
    "audit_delay_seconds_sum",
    "appealed",
    "appeal_reversed",
    "enforcement_tp",
    "enforcement_fp",
    "enforcement_fn",
)


def upgrade() -> None:
    op.create_table(
        "quality_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("moderator_id", sa.String(length=128), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("decisions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("handling_time_ms_sum", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("handling_time_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("audited", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("correct", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("judged_incorrect", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("missed_violation", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("over_enforcement", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("wrong_policy", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("wrong_action", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("critical", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("major", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("disputed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("overturned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("audit_delay_seconds_sum", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("appealed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("appeal_reversed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("enforcement_tp", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("enforcement_fp", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("enforcement_fn", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "day", "market", "queue", "moderator_id", "policy", name=op.f("pk_quality_rollups")
        ),
    )
    op.create_index("ix_quality_rollups_moderator_day", "quality_rollups", ["moderator_id", "day"])
    op.create_index("ix_quality_rollups_policy_day", "quality_rollups", ["policy", "day"])
    op.create_index(
        "ix_quality_rollups_totals_day",
        "quality_rollups",
        ["day"],
        postgresql_where=sa.text("policy = '*'"),
        postgresql_include=["market", "queue", "moderator_id", *_COUNTERS],
    )
    op.create_table(
        "action_confusion_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("moderator_id", sa.String(length=128), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("expected_action", sa.String(length=16), nullable=False),
        sa.Column("verdicts", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "market",
            "queue",
            "moderator_id",
            "policy",
            "action",
            "expected_action",
            name=op.f("pk_action_confusion_rollups"),
        ),
    )
    op.create_table(
        "dirty_rollup_slices",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("moderator_id", sa.String(length=128), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dirty_rollup_slices")),
    )
    # quality_rollups' total rows replace the intake rollup (one count of decisions). Its
    # counts move over as they are; the policy rows, handling times and verdict-side counts
    # of existing history come from ``plumbline rollups rebuild`` after the upgrade.
    op.execute(
        """
        INSERT INTO quality_rollups (day, market, queue, moderator_id, policy, decisions)
        SELECT day, market, queue, moderator_id, '*', decisions FROM intake_daily_rollups
        """
    )
    op.drop_table("intake_daily_rollups")


def downgrade() -> None:
    op.create_table(
        "intake_daily_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("moderator_id", sa.String(length=128), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "day", "market", "queue", "moderator_id", name=op.f("pk_intake_daily_rollups")
        ),
    )
    op.execute(
        """
        INSERT INTO intake_daily_rollups (day, market, queue, moderator_id, decisions)
        SELECT day, market, queue, moderator_id, decisions FROM quality_rollups
        WHERE policy = '*' AND decisions > 0
        """
    )
    op.drop_table("dirty_rollup_slices")
    op.drop_table("action_confusion_rollups")
    op.drop_index("ix_quality_rollups_totals_day", table_name="quality_rollups")
    op.drop_index("ix_quality_rollups_policy_day", table_name="quality_rollups")
    op.drop_index("ix_quality_rollups_moderator_day", table_name="quality_rollups")
    op.drop_table("quality_rollups")
