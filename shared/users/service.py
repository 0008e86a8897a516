"""People: create (with a one-time link to set the password), sign-in by password or by
OpenID Connect, language, disabling. Domain functions flush, never commit."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import Actor, record_change
from shared.core.auth import Principal, Role, token_digest
from shared.core.errors import Conflict, NotFound, UnprocessableEntity
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.models import ConsoleSession, PasswordLink, User
from shared.models.base import utcnow
from shared.reference import register_markets, register_reviewers
from shared.schemas.users import UserRead
from shared.users.passwords import hash_password, needs_rehash, verify_password

USER_ORDER = Keyset(User.id)
PASSWORD_LINK_PATH = "/console/password"  # noqa: S105 (a path, not a password)


def principal_for(user: User) -> Principal:
    """The caller a signed-in person is: the same ``Principal`` an API key gives, so the
    console meets the API's role checks and visibility rules to the letter."""
    return Principal(
        key_id=f"user:{user.id}",
        role=Role(user.role),
        reviewer_id=user.reviewer_id,
        markets=tuple(user.markets) if user.markets is not None else None,
    )


def _snapshot(user: User) -> dict[str, object]:
    return UserRead.model_validate(user).model_dump(mode="json")


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    role: str,
    reviewer_id: str | None = None,
    markets: Sequence[str] | None = None,
    language: str = "en",
    password: str | None = None,
    password_link_ttl: timedelta,
    actor: Actor | None = None,
) -> tuple[User, str | None]:
    """Create a person; without ``password`` also a one-time link token that sets it.

    409 when the e-mail address has an account already. Audit-logged (``user.created``)
    without any secret.
    """
    if markets is not None and not markets:
        raise UnprocessableEntity(
            "markets must name at least one market (leave it out for every market)",
            errors=[{"loc": ["markets"], "msg": "must not be empty"}],
        )
    email = normalise_email(email)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("a person with this e-mail address exists already")
    if reviewer_id is not None:
        await register_reviewers(session, [reviewer_id])
    if markets is not None:
        await register_markets(session, markets)
    user = User(
        id=uuid.uuid4(),
        email=email,
        role=role,
        reviewer_id=reviewer_id,
        markets=sorted(set(markets)) if markets is not None else None,
        language=language,
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise Conflict("a person with this e-mail address exists already") from error
    await record_change(
        session,
        actor=actor,
        action="user.created",
        entity_type="user",
        entity_id=user.id,
        after=_snapshot(user),
    )
    token = None
    if password is None:
        token = await issue_password_link(session, user=user, ttl=password_link_ttl)
    return user, token


async def issue_password_link(session: AsyncSession, *, user: User, ttl: timedelta) -> str:
    """A new one-time link token for ``user``; earlier unused links stop working."""
    now = utcnow()
    await session.execute(
        update(PasswordLink)
        .where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None))
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    session.add(PasswordLink(user_id=user.id, token_hash=token_digest(token), expires_at=now + ttl))
    await session.flush()
    return token


async def user_for_password_link(session: AsyncSession, *, token: str) -> User | None:
    """The person an unused, unexpired link belongs to (None for any other token)."""
    if len(token) > 256:
        return None
    return await session.scalar(
        select(User)
        .join(PasswordLink, PasswordLink.user_id == User.id)
        .where(
            PasswordLink.token_hash == token_digest(token),
            PasswordLink.used_at.is_(None),
            PasswordLink.expires_at > utcnow(),
            User.disabled_at.is_(None),
        )
    )


async def set_password_with_link(session: AsyncSession, *, token: str, password: str) -> User:
    """Use a one-time link: set the password, spend the link, end the person's sessions.

    404 for an unknown, used or expired link (they are told apart nowhere).
    """
    link = await session.scalar(
        select(PasswordLink)
        .where(
            PasswordLink.token_hash == token_digest(token),
            PasswordLink.used_at.is_(None),
            PasswordLink.expires_at > utcnow(),
        )
        .with_for_update()
    )
    user = await session.get(User, link.user_id) if link is not None else None
    if link is None or user is None or user.disabled_at is not None:
        raise NotFound("this link is not valid: it was used, it expired or it never existed")
    link.used_at = utcnow()
    user.password_hash = hash_password(password)
    await end_all_sessions(session, user_id=user.id)
    await session.flush()
    await record_change(
        session,
        actor=principal_for(user),
        action="user.password_set",
        entity_type="user",
        entity_id=user.id,
    )
    return user


async def authenticate_password(session: AsyncSession, *, email: str, password: str) -> User | None:
    """The enabled person with this address and password, or None (same cost either way)."""
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    valid = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not valid or user.disabled_at is not None:
        return None
    if user.password_hash is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_sign_in_at = utcnow()
    await session.flush()
    return user


async def sign_in_with_oidc(
    session: AsyncSession, *, subject: str, email: str | None, role: Role
) -> User:
    """The person behind an OpenID Connect sign-in, created on first sign-in.

    Found by the issuer's subject, else by verified e-mail address (an account an admin
    made beforehand); the role comes from the identity provider's claim every time.
    """
    user = await session.scalar(select(User).where(User.oidc_subject == subject))
    if user is None and email:
        user = await session.scalar(select(User).where(User.email == normalise_email(email)))
        if user is not None and user.oidc_subject not in (None, subject):
            raise Conflict("this e-mail address belongs to another sign-in")
    if user is None:
        if not email:
            raise UnprocessableEntity("the identity provider sent no e-mail address")
        user = User(id=uuid.uuid4(), email=normalise_email(email), role=role.value)
        session.add(user)
        await session.flush()
        await record_change(
            session,
            actor=None,
            action="user.created",
            entity_type="user",
            entity_id=user.id,
            after=_snapshot(user),
        )
    if user.disabled_at is not None:
        raise NotFound("this account is disabled")
    user.oidc_subject = subject
    user.role = role.value
    user.last_sign_in_at = utcnow()
    await session.flush()
    return user


async def set_language(session: AsyncSession, *, user_id: uuid.UUID, language: str) -> None:
    """Remember the person's console language."""
    await session.execute(update(User).where(User.id == user_id).values(language=language))


async def update_user(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    role: str | None = None,
    markets: Sequence[str] | None = None,
    language: str | None = None,
    disabled: bool | None = None,
    actor: Actor | None = None,
) -> User:
    """Change a person's role, markets, language or disable them (which ends their sessions)."""
    user = await get_user(session, user_id=user_id)
    before = _snapshot(user)
    if role is not None:
        user.role = role
    if markets is not None:
        await register_markets(session, markets)
        user.markets = sorted(set(markets))
    if language is not None:
        user.language = language
    if disabled is not None:
        user.disabled_at = (user.disabled_at or utcnow()) if disabled else None
    if disabled or role is not None or markets is not None:
        # A changed role or scope takes effect at the next sign-in; end the old sessions.
        await end_all_sessions(session, user_id=user.id)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="user.updated",
        entity_type="user",
        entity_id=user.id,
        before=before,
        after=_snapshot(user),
    )
    return user


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("person not found")
    return user


async def list_users(session: AsyncSession, *, page: PageRequest) -> KeysetPage[User]:
    """A page of people, by id."""
    users = list(await session.scalars(USER_ORDER.apply(select(User), page)))
    return USER_ORDER.page(users, page)


async def end_all_sessions(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
