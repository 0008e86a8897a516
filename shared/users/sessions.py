"""Console sessions: a random token in an HttpOnly cookie, its SHA-256 in PostgreSQL.

Every replica sees every session; sign-out and disabling end them at once.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import token_digest
from shared.models import ConsoleSession, User
from shared.models.base import utcnow

# last_seen_at is written at most this often, so reading pages does not write a row each.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its person."""

    session_id: uuid.UUID
    user: User
    csrf_token: str


async def start_session(
    session: AsyncSession, *, user: User, absolute_timeout: timedelta
) -> tuple[ConsoleSession, str]:
    """A new session for ``user`` and the cookie token for it (never stored in plain)."""
    now = utcnow()
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(
        user_id=user.id,
        token_hash=token_digest(token),
        csrf_token=secrets.token_urlsafe(32),
        last_seen_at=now,
        expires_at=now + absolute_timeout,
    )
    session.add(row)
    await session.flush()
    return row, token


async def resolve_session(
    session: AsyncSession, *, token: str, idle_timeout: timedelta
) -> SignedIn | None:
    """The live session of a cookie token: not ended, not past its absolute or idle limit,
    its person enabled. Touches ``last_seen_at`` (at most once a minute)."""
    if not token or len(token) > 256:
        return None
    now = utcnow()
    row = await session.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(
            ConsoleSession.token_hash == token_digest(token),
            ConsoleSession.ended_at.is_(None),
            ConsoleSession.expires_at > now,
            ConsoleSession.last_seen_at > now - idle_timeout,
            User.disabled_at.is_(None),
        )
    )
    found = row.first()
    if found is None:
        return None
    console_session, user = found
    if now - console_session.last_seen_at >= _TOUCH_EVERY:
        console_session.last_seen_at = now
        await session.flush()
    return SignedIn(session_id=console_session.id, user=user, csrf_token=console_session.csrf_token)


async def end_session(session: AsyncSession, *, token: str) -> None:
    """Sign out: the session stops working at once (idempotent)."""
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_hash == token_digest(token), ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
