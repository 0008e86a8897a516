"""API keys: stored as a SHA-256 digest of a high-entropy secret, shown once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.core.auth import Role
from shared.models.base import Base, CreatedAtMixin, new_id

ROLES = tuple(role.value for role in Role)


class ApiKey(CreatedAtMixin, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'manager', 'policy_poc', 'qa_auditor', 'moderator')",
            name="role",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    # First characters of the key, to recognise it in listings without revealing it.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    reviewer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    markets: Mapped[list[str] | None] = mapped_column(ARRAY(String(2)))
    revoked_at: Mapped[datetime | None]
