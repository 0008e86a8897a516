"""teams: a reviewer profile's team; quizzes assigned to teams

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reviewers", sa.Column("team", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_reviewers_team"), "reviewers", ["team"], unique=False)
    op.add_column(
        "quizzes",
        sa.Column(
            "assignee_teams",
            postgresql.ARRAY(sa.String(length=64)),
            server_default="{}",
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("quizzes", "assignee_teams")
    op.drop_index(op.f("ix_reviewers_team"), table_name="reviewers")
    op.drop_column("reviewers", "team")
