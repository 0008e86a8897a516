"""policy communication: policy updates with versions and acknowledgements, policy
questions, channel queues, digests and time zones, personal e-mail channels

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:48:31.608253
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_items",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "collected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("digest_event_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_digest_items_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["digest_event_id"],
            ["events.id"],
            name=op.f("fk_digest_items_digest_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_digest_items_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", "event_id", name=op.f("pk_digest_items")),
    )
    op.create_index(
        "ix_digest_items_unsent",
        "digest_items",
        ["channel_id", "event_id"],
        unique=False,
        postgresql_where=sa.text("digest_event_id IS NULL"),
    )
    op.create_table(
        "policy_updates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("texts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("policy_codes", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("markets", postgresql.ARRAY(sa.String(length=2)), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=128), nullable=True),
        sa.Column("reminder_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quiz_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'published')", name=op.f("ck_policy_updates_status")
        ),
        sa.CheckConstraint("cardinality(markets) > 0", name=op.f("ck_policy_updates_markets")),
        sa.CheckConstraint(
            "cardinality(policy_codes) > 0", name=op.f("ck_policy_updates_policy_codes")
        ),
        sa.ForeignKeyConstraint(
            ["quiz_id"],
            ["quizzes.id"],
            name=op.f("fk_policy_updates_quiz_id_quizzes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_updates")),
    )
    op.create_table(
        "policy_acknowledgements",
        sa.Column("policy_update_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer_id", sa.String(length=128), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.CheckConstraint("via IN ('api', 'link')", name=op.f("ck_policy_acknowledgements_via")),
        sa.ForeignKeyConstraint(
            ["policy_update_id"],
            ["policy_updates.id"],
            name=op.f("fk_policy_acknowledgements_policy_update_id_policy_updates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "policy_update_id", "reviewer_id", name=op.f("pk_policy_acknowledgements")
        ),
    )
    op.create_table(
        "policy_questions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("policy_code", sa.String(length=64), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("asked_by", sa.String(length=128), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.String(length=128), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promoted_to_update_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["promoted_to_update_id"],
            ["policy_updates.id"],
            name=op.f("fk_policy_questions_promoted_to_update_id_policy_updates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_questions")),
    )
    op.create_index(
        op.f("ix_policy_questions_market"), "policy_questions", ["market"], unique=False
    )
    op.create_index(
        op.f("ix_policy_questions_policy_code"), "policy_questions", ["policy_code"], unique=False
    )
    op.create_index(
        "ix_policy_questions_unanswered",
        "policy_questions",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("answered_at IS NULL"),
    )
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("policy_code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_update_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["policy_update_id"],
            ["policy_updates.id"],
            name=op.f("fk_policy_versions_policy_update_id_policy_updates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint(
            "policy_code", "version", name=op.f("uq_policy_versions_policy_code_version")
        ),
    )
    op.create_index(
        "ix_policy_versions_code_effective",
        "policy_versions",
        ["policy_code", "effective_at"],
        unique=False,
    )
    op.add_column(
        "channels", sa.Column("queues", postgresql.ARRAY(sa.String(length=128)), nullable=True)
    )
    op.add_column(
        "channels", sa.Column("digest", sa.String(length=8), server_default="off", nullable=False)
    )
    op.add_column(
        "channels", sa.Column("digest_hour", sa.Integer(), server_default="9", nullable=False)
    )
    op.add_column(
        "channels",
        sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False),
    )
    op.add_column("channels", sa.Column("reviewer_id", sa.String(length=128), nullable=True))
    op.create_unique_constraint(op.f("uq_channels_reviewer_id"), "channels", ["reviewer_id"])
    op.create_check_constraint(
        op.f("ck_channels_digest"), "channels", "digest IN ('off', 'hourly', 'daily')"
    )
    op.create_check_constraint(
        op.f("ck_channels_digest_hour"), "channels", "digest_hour >= 0 AND digest_hour < 24"
    )
    op.add_column("events", sa.Column("queue", sa.String(length=128), nullable=True))
    op.add_column(
        "events", sa.Column("recipients", postgresql.ARRAY(sa.String(length=128)), nullable=True)
    )
    op.add_column("reviewers", sa.Column("email", sa.String(length=320), nullable=True))
    op.add_column(
        "reviewers", sa.Column("notification_language", sa.String(length=8), nullable=True)
    )
    # Every policy's current version becomes the first entry of its history, in force since
    # the policy was first seen.
    op.execute(
        "INSERT INTO policy_versions (id, policy_code, version, effective_at) "
        "SELECT gen_random_uuid(), code, version, created_at FROM policies"
    )


def downgrade() -> None:
    op.drop_column("reviewers", "notification_language")
    op.drop_column("reviewers", "email")
    op.drop_column("events", "recipients")
    op.drop_column("events", "queue")
    op.drop_constraint(op.f("uq_channels_reviewer_id"), "channels", type_="unique")
    op.drop_constraint(op.f("ck_channels_digest_hour"), "channels", type_="check")
    op.drop_constraint(op.f("ck_channels_digest"), "channels", type_="check")
    op.drop_column("channels", "reviewer_id")
    op.drop_column("channels", "time_zone")
    op.drop_column("channels", "digest_hour")
    op.drop_column("channels", "digest")
    op.drop_column("channels", "queues")
    op.drop_index("ix_policy_versions_code_effective", table_name="policy_versions")
    op.drop_table("policy_versions")
    op.drop_index(
        "ix_policy_questions_unanswered",
        table_name="policy_questions",
        postgresql_where=sa.text("answered_at IS NULL"),
    )
    op.drop_index(op.f("ix_policy_questions_policy_code"), table_name="policy_questions")
    op.drop_index(op.f("ix_policy_questions_market"), table_name="policy_questions")
    op.drop_table("policy_questions")
    op.drop_table("policy_acknowledgements")
    op.drop_table("policy_updates")
    op.drop_index(
        "ix_digest_items_unsent",
        table_name="digest_items",
        postgresql_where=sa.text("digest_event_id IS NULL"),
    )
    op.drop_table("digest_items")
