"""Decision intake: sources that post decisions, and the decisions themselves."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Identity,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
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


class Decision(Base):
    """One moderator decision as posted by a platform. Append-only."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("source_id", "event_id"),
        # Every index is paid on each of ~50,000 inserts a second, so only these: a
        # moderator's decisions (selective, newest first), and decision time as a BRIN
        # (rows arrive in rough time order; sampling reads a day at a time). Market, queue
        # and policy filters are not selective: a newest-first scan of the primary key
        # meets a page of matches quickly.
        Index("ix_decisions_moderator_id_id", "moderator_id", "id"),
        Index("ix_decisions_decided_at", "decided_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
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
    decided_at: Mapped[datetime]
    handling_time_ms: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The intake transaction that stored this decision (see IntakeBatch).
    intake_batch_id: Mapped[uuid.UUID]


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
    "Decision",
    "IntakeBatch",
    "RejectedBatch",
    "Source",
]
