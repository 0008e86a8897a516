"""decisions partitioned by month of decided_at; idempotency keys in decision_event_keys

Converts an existing table: the rows (ids kept) move into a table partitioned by RANGE on
``decided_at``, with one partition per month that holds data, the current month and the
next three (the report worker keeps creating months ahead), and a DEFAULT partition for any
other time. A partitioned table's unique indexes must contain the partition key, so the
idempotency key ``(source_id, event_id)`` moves to ``decision_event_keys``, filled from the
rows. Ids come from the sequence ``decisions_id_seq`` (no IDENTITY on a partitioned table),
set past the largest id. The downgrade puts the rows back into one table.

Self-contained on purpose (no import of ``shared.decisions.partitions``): a migration must
do the same thing whatever the code looks like later.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 13:00:00
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Months created ahead of the current one (Settings.decision_partitions_ahead_months'
# default; the report worker creates more if it is set higher).
MONTHS_AHEAD = 3
COLUMNS = (
    "id, source_id, event_id, content_id, content_type, queue, market, language, "
    "moderator_id, action, policy_labels, decided_at, handling_time_ms, metadata, "
    "received_at, intake_batch_id"
)


def _columns() -> list[sa.Column[object]]:
    """The decision columns after ``id`` (as 0001 created them)."""
    return [
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("content_id", sa.String(length=256), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("moderator_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("policy_labels", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handling_time_ms", sa.BigInteger(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("intake_batch_id", sa.Uuid(), nullable=False),
    ]


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _create_month(month: date) -> None:
    following = _add_months(month, 1)
    op.execute(
        f"CREATE TABLE decisions_p{month.year:04d}_{month.month:02d} PARTITION OF decisions "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
        f"TO ('{following.isoformat()} 00:00:00+00')"
    )


def upgrade() -> None:
    bind = op.get_bind()
    # The old table steps aside and frees its names (indexes are global); the new one is
    # created under the old names.
    op.rename_table("decisions", "decisions_unpartitioned")
    op.execute(
        "ALTER TABLE decisions_unpartitioned DROP CONSTRAINT uq_decisions_source_id_event_id"
    )
    op.execute("ALTER TABLE decisions_unpartitioned DROP CONSTRAINT pk_decisions")
    op.drop_index("ix_decisions_decided_at", table_name="decisions_unpartitioned")
    op.drop_index("ix_decisions_moderator_id_id", table_name="decisions_unpartitioned")
    # Dropping the identity drops its sequence, decisions_id_seq, whose name is reused.
    op.execute("ALTER TABLE decisions_unpartitioned ALTER COLUMN id DROP IDENTITY")
    op.execute("CREATE SEQUENCE decisions_id_seq AS bigint")
    op.create_table(
        "decisions",
        sa.Column(
            "id",
            sa.BigInteger(),
            server_default=sa.text("nextval('decisions_id_seq'::regclass)"),
            nullable=False,
        ),
        *_columns(),
        sa.PrimaryKeyConstraint("id", "decided_at", name=op.f("pk_decisions")),
        postgresql_partition_by="RANGE (decided_at)",
    )
    op.execute("ALTER SEQUENCE decisions_id_seq OWNED BY decisions.id")
    op.create_index("ix_decisions_decided_at", "decisions", ["decided_at"], postgresql_using="brin")
    op.create_index("ix_decisions_moderator_id_id", "decisions", ["moderator_id", "id"])
    op.execute("CREATE TABLE decisions_default PARTITION OF decisions DEFAULT")

    this_month = bind.scalar(sa.text("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date"))
    months = {_add_months(this_month, ahead) for ahead in range(MONTHS_AHEAD + 1)}
    months |= set(
        bind.scalars(
            sa.text(
                "SELECT DISTINCT date_trunc('month', decided_at AT TIME ZONE 'UTC')::date "
                "FROM decisions_unpartitioned"
            )
        )
    )
    for month in sorted(months):
        _create_month(month)
    op.execute(
        f"INSERT INTO decisions ({COLUMNS}) "  # noqa: S608 (constant column list)
        f"SELECT {COLUMNS} FROM decisions_unpartitioned"
    )

    op.create_table(
        "decision_event_keys",
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("decision_id", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "event_id", name=op.f("pk_decision_event_keys")),
    )
    op.execute(
        "INSERT INTO decision_event_keys (source_id, event_id, decision_id, decided_at) "
        "SELECT source_id, event_id, id, decided_at FROM decisions_unpartitioned"
    )
    op.create_index(
        "ix_decision_event_keys_decided_at",
        "decision_event_keys",
        ["decided_at"],
        postgresql_using="brin",
    )
    op.execute(
        "SELECT setval('decisions_id_seq', coalesce(max(id), 0) + 1, false) "
        "FROM decisions_unpartitioned"
    )
    op.drop_table("decisions_unpartitioned")


def downgrade() -> None:
    # The partitioned table steps aside (names, its sequence's included) ...
    op.rename_table("decisions", "decisions_partitioned")
    op.execute("ALTER INDEX pk_decisions RENAME TO pk_decisions_partitioned")
    op.execute("ALTER INDEX ix_decisions_decided_at RENAME TO ix_decisions_partitioned_decided_at")
    op.execute(
        "ALTER INDEX ix_decisions_moderator_id_id RENAME TO ix_decisions_partitioned_moderator_id"
    )
    op.execute("ALTER SEQUENCE decisions_id_seq RENAME TO decisions_partitioned_id_seq")
    # ... and the rows go back into one table, as 0001 created it, ids kept.
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        *_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("source_id", "event_id", name=op.f("uq_decisions_source_id_event_id")),
    )
    # Rows written around the key table (a bulk load without keys) may repeat a key: the
    # first stored stays, as intake would have had it.
    op.execute(
        f"INSERT INTO decisions ({COLUMNS}) "  # noqa: S608 (constant column list)
        f"SELECT {COLUMNS} FROM decisions_partitioned ORDER BY id "
        "ON CONFLICT (source_id, event_id) DO NOTHING"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('decisions', 'id'), coalesce(max(id), 0) + 1, false) "
        "FROM decisions"
    )
    op.create_index("ix_decisions_decided_at", "decisions", ["decided_at"], postgresql_using="brin")
    op.create_index("ix_decisions_moderator_id_id", "decisions", ["moderator_id", "id"])
    op.drop_table("decisions_partitioned")
    op.drop_index("ix_decision_event_keys_decided_at", table_name="decision_event_keys")
    op.drop_table("decision_event_keys")
