"""API keys: stored as a SHA-256 digest of a high-entropy secret, shown once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, Text
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


class User(CreatedAtMixin, Base):
    """A person who signs in to the console: e-mail and password (argon2) or OpenID Connect.

    Role, reviewer and markets mean what they mean on an API key: the console builds the same
    ``Principal`` from them, so every page meets the API's role checks and visibility rules.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'manager', 'policy_poc', 'qa_auditor', 'moderator')",
            name="role",
        ),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    reviewer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    markets: Mapped[list[str] | None] = mapped_column(ARRAY(String(2)))
    # argon2id PHC string; None until the person sets a password through their link (or
    # for people who only ever sign in through OpenID Connect).
    password_hash: Mapped[str | None] = mapped_column(Text)
    # The OpenID Connect issuer's ``sub`` once the person has signed in that way.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    disabled_at: Mapped[datetime | None]
    last_sign_in_at: Mapped[datetime | None]


class PasswordLink(CreatedAtMixin, Base):
    """A one-time link that sets a person's password (first sign-in, or a reset by an admin).

    Only the SHA-256 of the link's token is stored; the link works once and until it expires.
    """

    __tablename__ = "password_links"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(CreatedAtMixin, Base):
    """A signed-in browser: the cookie holds a random token, the row its SHA-256.

    A new row (and token) on every sign-in, so a token planted before sign-in is worthless
    (session fixation); ``last_seen_at`` drives the idle timeout, ``expires_at`` the absolute
    one; sign-out sets ``ended_at``.
    """

    __tablename__ = "console_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # Compared in constant time with the form field or the X-CSRF-Token header.
    csrf_token: Mapped[str] = mapped_column(String(64))
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
