"""calibration sessions: sessions, items, labels

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:08:52.598485
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "calibration_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("participants", postgresql.ARRAY(sa.String(length=128)), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_by_key_id", sa.String(length=64), nullable=False),
        sa.Column("created_by_reviewer_id", sa.String(length=128), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_key_id", sa.String(length=64), nullable=True),
        sa.Column("krippendorff_alpha", sa.Float(), nullable=True),
        sa.Column("percent_agreement", sa.Float(), nullable=True),
        sa.Column("n_units", sa.Integer(), nullable=True),
        sa.Column("n_raters", sa.Integer(), nullable=True),
        sa.Column("flagged_items", sa.Integer(), nullable=True),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'closed')", name=op.f("ck_calibration_sessions_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_sessions")),
    )
    op.create_index(
        "ix_calibration_sessions_created_at", "calibration_sessions", ["created_at"], unique=False
    )
    op.create_index(
        "ix_calibration_sessions_market_closed_at",
        "calibration_sessions",
        ["market", "closed_at"],
        unique=False,
    )
    op.create_table(
        "calibration_items",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("content_id", sa.String(length=256), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.BigInteger(), nullable=True),
        sa.Column("golden", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("note_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["calibration_sessions.id"],
            name=op.f("fk_calibration_items_session_id_calibration_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "content_id", name=op.f("pk_calibration_items")),
    )
    op.create_table(
        "calibration_labels",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("content_id", sa.String(length=256), nullable=False),
        sa.Column("reviewer_id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column(
            "labeled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["session_id", "content_id"],
            ["calibration_items.session_id", "calibration_items.content_id"],
            name="fk_calibration_labels_item",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "content_id", "reviewer_id", name=op.f("pk_calibration_labels")
        ),
    )


def downgrade() -> None:

    op.drop_table("calibration_labels")
    op.drop_table("calibration_items")
    op.drop_index("ix_calibration_sessions_market_closed_at", table_name="calibration_sessions")
    op.drop_index("ix_calibration_sessions_created_at", table_name="calibration_sessions")
    op.drop_table("calibration_sessions")
