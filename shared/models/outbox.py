"""The transactional outbox: jobs written with the change that causes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, new_id


class OutboxJob(Base):
    __tablename__ = "outbox_jobs"
    __table_args__ = (
        # The relay only ever scans rows not yet handed to arq.
        Index(
            "ix_outbox_jobs_pending",
            "created_at",
            postgresql_where=text("enqueued_at IS NULL"),
        ),
    )

    # Also the arq job id, so a relay that crashes after enqueueing cannot enqueue twice.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    queue_name: Mapped[str] = mapped_column(String(64))
    function: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    enqueued_at: Mapped[datetime | None]
