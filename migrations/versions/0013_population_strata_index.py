"""population strata index: the totals rows of quality_rollups in (day, moderator) order
with the three counters the post-stratified estimate sums, so its strata are read in order
and summed as they end instead of hashed (the briefing's population accuracy at 10 M
decisions)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_quality_rollups_totals_strata",
        "quality_rollups",
        ["day", "moderator_id"],
        postgresql_where=sa.text("policy = '*'"),
        postgresql_include=["decisions", "audited", "correct"],
    )


def downgrade() -> None:
    op.drop_index("ix_quality_rollups_totals_strata", table_name="quality_rollups")
