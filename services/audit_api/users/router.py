"""People who sign in to the console: ``/v1/users`` (admin only)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query

from services.audit_api.deps import AdminDep, SessionDep, SettingsDep
from shared.core.settings import Settings
from shared.models.base import utcnow
from shared.schemas.common import Page, PageQuery, Problem
from shared.schemas.users import (
    PasswordLinkCreated,
    UserCreate,
    UserCreated,
    UserPatch,
    UserRead,
)
from shared.users import service

router = APIRouter(prefix="/v1/users", tags=["people"])

_PROBLEMS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


def password_link_url(settings: Settings, token: str) -> str:
    """The one-time link a person opens to set their password."""
    query = urlencode({"token": token})
    return f"{settings.public_url.rstrip('/')}{service.PASSWORD_LINK_PATH}?{query}"


def _ttl(settings: Settings) -> timedelta:
    return timedelta(hours=settings.password_link_ttl_hours)


@router.post("", status_code=201, response_model=UserCreated, responses=_PROBLEMS)
async def create_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, principal: AdminDep
) -> UserCreated:
    """Create a person. Without a password the answer carries a one-time link (shown only
    here) with which they set it; passwords are stored as argon2id hashes."""
    user, token = await service.create_user(
        session,
        email=body.email,
        role=body.role,
        reviewer_id=body.reviewer_id,
        markets=body.markets,
        language=body.language,
        password=body.password.get_secret_value() if body.password is not None else None,
        password_link_ttl=_ttl(settings),
        actor=principal,
    )
    return UserCreated(
        **UserRead.model_validate(user).model_dump(),
        password_link=password_link_url(settings, token) if token is not None else None,
    )


@router.get("", response_model=Page[UserRead])
async def list_users(
    query: Annotated[PageQuery, Query()], session: SessionDep, _: AdminDep
) -> Page[UserRead]:
    page = await service.list_users(session, page=query)
    return Page(
        items=[UserRead.model_validate(user) for user in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{user_id}", response_model=UserRead, responses=_PROBLEMS)
async def get_user(user_id: uuid.UUID, session: SessionDep, _: AdminDep) -> UserRead:
    return UserRead.model_validate(await service.get_user(session, user_id=user_id))


@router.patch("/{user_id}", response_model=UserRead, responses=_PROBLEMS)
async def update_user(
    user_id: uuid.UUID, body: UserPatch, session: SessionDep, principal: AdminDep
) -> UserRead:
    """Change role, markets or language, or disable; a changed role, scope or a disabling
    ends the person's sessions at once."""
    user = await service.update_user(
        session,
        user_id=user_id,
        role=body.role,
        markets=body.markets,
        language=body.language,
        disabled=body.disabled,
        actor=principal,
    )
    return UserRead.model_validate(user)


@router.post(
    "/{user_id}/password-link",
    status_code=201,
    response_model=PasswordLinkCreated,
    responses=_PROBLEMS,
)
async def create_password_link(
    user_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: AdminDep
) -> PasswordLinkCreated:
    """A new one-time link to set the password (earlier unused links stop working)."""
    user = await service.get_user(session, user_id=user_id)
    token = await service.issue_password_link(session, user=user, ttl=_ttl(settings))
    return PasswordLinkCreated(
        password_link=password_link_url(settings, token), expires_at=utcnow() + _ttl(settings)
    )
