"""day rollups: the slice totals of quality_rollups summed per market, queue and day, and
the population estimate's strata sums per day (every market, and each market), filled from
the rollups there are; the briefing reads them (the console overview at 10 M decisions)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 02:10:00.000000
"""

# The statements are assembled from this module's constants only.
# ruff: noqa: S608

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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

# What shared.analytics.day_rollups computes, as it computes it (frozen here: a migration
# must not change with the code).
_FILL_QUEUE_DAY = f"""
    INSERT INTO queue_day_rollups (day, market, queue, {", ".join(_COUNTERS)})
    SELECT day, market, queue, {", ".join(f"sum({c})" for c in _COUNTERS)}
    FROM quality_rollups WHERE policy = '*'
    GROUP BY day, market, queue
"""
_STRATA_SUMS = """
    sum(decisions)::bigint,
    coalesce(sum(decisions) FILTER (WHERE audited > 0), 0)::bigint,
    coalesce(sum(decisions * (correct / audited)) FILTER (WHERE audited > 0), 0.0),
    coalesce(sum(decisions * decisions * (correct / audited) * (1.0 - correct / audited)
                 / audited * greatest(0.0, 1.0 - audited / decisions))
             FILTER (WHERE audited > 0 AND decisions > 0), 0.0),
    sum(audited)::bigint,
    sum(correct)::bigint"""
_POPULATION_COLUMNS = (
    "day, market, decisions, covered_decisions, weighted_correct, variance_sum, audited, correct"
)
_FILL_POPULATION_DAY = f"""
    INSERT INTO population_day_rollups ({_POPULATION_COLUMNS})
    SELECT day, '*', {_STRATA_SUMS}
    FROM (
        SELECT day, moderator_id, sum(decisions::float8) AS decisions,
               sum(audited::float8) AS audited, sum(correct::float8) AS correct
        FROM quality_rollups WHERE policy = '*' GROUP BY day, moderator_id
    ) AS strata
    GROUP BY day
    UNION ALL
    SELECT day, market, {_STRATA_SUMS}
    FROM (
        SELECT day, market, moderator_id, sum(decisions::float8) AS decisions,
               sum(audited::float8) AS audited, sum(correct::float8) AS correct
        FROM quality_rollups WHERE policy = '*' GROUP BY day, market, moderator_id
    ) AS strata
    GROUP BY day, market
"""


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "queue_day_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        *(_count(name) for name in _COUNTERS),
        sa.PrimaryKeyConstraint("day", "market", "queue", name=op.f("pk_queue_day_rollups")),
    )
    op.create_table(
        "population_day_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        _count("decisions"),
        _count("covered_decisions"),
        sa.Column("weighted_correct", sa.Float(), server_default="0", nullable=False),
        sa.Column("variance_sum", sa.Float(), server_default="0", nullable=False),
        _count("audited"),
        _count("correct"),
        sa.PrimaryKeyConstraint("day", "market", name=op.f("pk_population_day_rollups")),
    )
    op.execute(_FILL_QUEUE_DAY)
    op.execute(_FILL_POPULATION_DAY)


def downgrade() -> None:
    op.drop_table("population_day_rollups")
    op.drop_table("queue_day_rollups")
