"""delivery order per channel: the pending deliveries of a channel in production order, the
dead deliveries holding their channel through an outage, and the send lease of the one
delivery of a channel in flight

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 16:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deliveries",
        sa.Column("holds_channel", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column(
        "deliveries", sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_deliveries_channel_pending",
        "deliveries",
        ["channel_id", "created_at", "event_id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_deliveries_holding",
        "deliveries",
        ["channel_id", "dead_at"],
        unique=False,
        postgresql_where=sa.text("status = 'dead' AND holds_channel"),
    )
    op.create_index(
        "ix_deliveries_leased",
        "deliveries",
        ["channel_id"],
        unique=False,
        postgresql_where=sa.text("leased_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_deliveries_leased",
        table_name="deliveries",
        postgresql_where=sa.text("leased_until IS NOT NULL"),
    )
    op.drop_index(
        "ix_deliveries_holding",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'dead' AND holds_channel"),
    )
    op.drop_index(
        "ix_deliveries_channel_pending",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_column("deliveries", "leased_until")
    op.drop_column("deliveries", "holds_channel")
