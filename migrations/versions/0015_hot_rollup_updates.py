"""hot rollup updates: no index of quality_rollups holds a decision counter any more, and
its pages keep room for new row versions, so the intake rollup's upserts are HOT updates; a
partial index on the unfinished background jobs for the lost-job sweep

Every intake rollup job upserts the quality_rollups rows its batches touch, changing only
the decision counters (decisions, handling_time_ms_sum, handling_time_count). The two partial
indexes over the slice totals held them (INCLUDE), so no update could be HOT: each wrote a
new row version elsewhere in the table and a new entry in every index (0 HOT updates of
135,853 in a benchmark run, and twice the table's live size in dead versions). Without them
in any index, and with fillfactor 70, 76 % of those updates are HOT and the rollup's
PostgreSQL CPU per event fell by about a third (1,000-event batches: 14.6 -> 10.0 µs).
The verdict counters stay in the indexes (the verdict side is recomputed far less often), so
reports on verdicts keep their index-only scans; those that sum ``decisions`` read the heap.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 10:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Room left on each page for the updated versions of its rows (HOT needs it on the same page).
_FILLFACTOR = 70

# The counters as 0007 declared them (frozen here: a migration must not change with the code).
_DECISION_COUNTERS = ("decisions", "handling_time_ms_sum", "handling_time_count")
_VERDICT_COUNTERS = (
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
_KEYS = ["market", "queue", "moderator_id"]


def _totals_indexes(*, with_decision_counters: bool) -> None:
    """The two partial indexes over the slice totals (0007's and 0013's), with the decision
    counters (as before 0015) or without them."""
    decisions = list(_DECISION_COUNTERS if with_decision_counters else ())
    op.create_index(
        "ix_quality_rollups_totals_day",
        "quality_rollups",
        ["day"],
        postgresql_where=sa.text("policy = '*'"),
        postgresql_include=[*_KEYS, *decisions, *_VERDICT_COUNTERS],
    )
    op.create_index(
        "ix_quality_rollups_totals_strata",
        "quality_rollups",
        ["day", "moderator_id"],
        postgresql_where=sa.text("policy = '*'"),
        postgresql_include=[*decisions[:1], "audited", "correct"],
    )


def _drop_totals_indexes() -> None:
    op.drop_index("ix_quality_rollups_totals_strata", table_name="quality_rollups")
    op.drop_index("ix_quality_rollups_totals_day", table_name="quality_rollups")


def upgrade() -> None:
    _drop_totals_indexes()
    _totals_indexes(with_decision_counters=False)
    # Applies to the pages written from now on (a table rewrite would lock the table).
    op.execute(f"ALTER TABLE quality_rollups SET (fillfactor = {_FILLFACTOR})")
    op.create_index(
        "ix_background_jobs_unfinished",
        "background_jobs",
        ["id"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_background_jobs_unfinished", table_name="background_jobs")
    op.execute("ALTER TABLE quality_rollups RESET (fillfactor)")
    _drop_totals_indexes()
    _totals_indexes(with_decision_counters=True)
