"""Decision intake: sources that post decisions, and the decisions themselves."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    LargeBinary,
    Sequence,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id


class Source(CreatedAtMixin, Base):
    """A moderation platform allowed to post decisions, with its signing secret."""

    __tablename__ = "sources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # Fernet-encrypted: the secret must be recoverable to verify HMACs, so it is not hashed.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]


# The decisions' partitions: one per month of decided_at (UTC) and the DEFAULT one. They are
# created and dropped at run time (shared.decisions.partitions), not by migrations.
DECISION_PARTITION_NAME = re.compile(r"decisions_(p\d{4}_\d{2}|default)")


def is_decision_partition(table_name: str) -> bool:
    """Whether ``table_name`` is one of the decisions' partitions (not a model's table)."""
    return DECISION_PARTITION_NAME.fullmatch(table_name) is not None


# Decision ids: a sequence of their own, since PostgreSQL allows no IDENTITY column on a
# partitioned table. Ids keep increasing across partitions (pages and cursors order by id).
DECISION_ID_SEQUENCE = Sequence("decisions_id_seq")


class Decision(Base):
    """One moderator decision as posted by a platform. Append-only.

    Partitioned by month of ``decided_at`` (``shared.decisions.partitions`` creates the
    months ahead and drops expired ones), with a DEFAULT partition for any time no month
    covers, so intake never fails for want of a partition. A unique index on a partitioned
    table must contain the partition key, so the idempotency key ``(source_id, event_id)``
    is kept unique in ``DecisionEventKey`` instead; every decision has its key row.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        # Every index is paid on each of ~50,000 inserts a second, so only these: a
        # moderator's decisions (selective, newest first), and decision time as a BRIN
        # (rows arrive in rough time order; sampling reads a day at a time). Market, queue
        # and policy filters are not selective: a newest-first scan of the primary key
        # meets a page of matches quickly. Each is a partitioned index (one per partition).
        Index("ix_decisions_moderator_id_id", "moderator_id", "id"),
        Index("ix_decisions_decided_at", "decided_at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (decided_at)"},
    )

    id: Mapped[int] = mapped_column(
        BigInteger,
        DECISION_ID_SEQUENCE,
        server_default=DECISION_ID_SEQUENCE.next_value(),
        primary_key=True,
    )
    source_id: Mapped[uuid.UUID]
    event_id: Mapped[str] = mapped_column(String(128))
    content_id: Mapped[str] = mapped_column(String(256))
    content_type: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(128))
    market: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(16))
    moderator_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    policy_labels: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # Part of the primary key: a partitioned table's unique indexes must hold its
    # partition key.
    decided_at: Mapped[datetime] = mapped_column(primary_key=True)
    handling_time_ms: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The intake transaction that stored this decision (see IntakeBatch).
    intake_batch_id: Mapped[uuid.UUID]


class DecisionEventKey(Base):
    """The idempotency key of a stored decision: ``(source_id, event_id)``, once.

    Intake inserts the key first and stores only the decisions whose key was new, in the
    same statement (which fails on a stored key and is run again with ``ON CONFLICT DO
    NOTHING``): an event sent again, also concurrently, is stored once, whichever partition
    its ``decided_at`` falls in. Anything that writes decisions some other way (bulk loads)
    writes their keys too. Retention deletes the key rows of the decisions it drops.
    """

    __tablename__ = "decision_event_keys"
    __table_args__ = (
        # Retention finds the keys of a dropped month by time; keys arrive in rough time
        # order, so a BRIN index does, at next to no cost per insert.
        Index("ix_decision_event_keys_decided_at", "decided_at", postgresql_using="brin"),
    )

    source_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    decision_id: Mapped[int] = mapped_column(BigInteger)
    # The decision's partition key: with it, ``(decision_id, decided_at)`` finds the one
    # partition that holds the decision.
    decided_at: Mapped[datetime]


class IntakeBatch(Base):
    """One intake transaction's decisions, waiting to be counted into the rollups.

    Written with the decisions; the intake rollup job claims pending batches (``FOR UPDATE SKIP
    LOCKED``) and marks them applied in the same transaction, so each is counted once.
    """

    __tablename__ = "intake_batches"
    __table_args__ = (
        Index(
            "ix_intake_batches_pending",
            "created_at",
            postgresql_where=text("applied_at IS NULL"),
        ),
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # The batch's decision ids lie in this range (other batches' ids may interleave).
    first_decision_id: Mapped[int] = mapped_column(BigInteger)
    last_decision_id: Mapped[int] = mapped_column(BigInteger)
    decisions: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    applied_at: Mapped[datetime | None]


class RejectedBatch(CreatedAtMixin, Base):
    """A signed request from a known source that was refused: kept for the source's owners."""

    __tablename__ = "rejected_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_id: Mapped[uuid.UUID] = mapped_column(index=True)
    status: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    event_count: Mapped[int | None]


__all__ = [
    "DECISION_ID_SEQUENCE",
    "DECISION_PARTITION_NAME",
    "Decision",
    "DecisionEventKey",
    "IntakeBatch",
    "RejectedBatch",
    "Source",
    "is_decision_partition",
]
