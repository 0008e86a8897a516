"""Sources: ``/v1/sources`` (admin only)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.audit_api.deps import AdminDep, SessionDep, SettingsDep
from shared.core.encryption import secret_box
from shared.schemas.common import (
    Page,
    PageQuery,
    Problem,
)
from shared.schemas.decisions import RejectedBatchRead
from shared.schemas.sources import (
    SecretRotated,
    SecretRotation,
    SourceCreate,
    SourceCreated,
    SourceRead,
)
from shared.sources import service

router = APIRouter(prefix="/v1/sources", tags=["sources"])


@router.post(
    "",
    status_code=201,
    response_model=SourceCreated,
    responses={409: {"model": Problem, "description": "A source of this name exists."}},
)
async def create_source(
    body: SourceCreate, session: SessionDep, settings: SettingsDep, principal: AdminDep
) -> SourceCreated:
    """Register a moderation platform. Its signing secret is in this response only."""
    source, secret = await service.create_source(
        session, name=body.name, box=secret_box(settings), actor=principal
    )
    return SourceCreated(
        id=source.id, name=source.name, secret=secret, created_at=source.created_at
    )


@router.get("", response_model=Page[SourceRead])
async def list_sources(
    query: Annotated[PageQuery, Query()], session: SessionDep, _: AdminDep
) -> Page[SourceRead]:
    page = await service.list_sources(session, page=query)
    return Page(
        items=[SourceRead.model_validate(source) for source in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{source_id}", response_model=SourceRead)
async def get_source(source_id: uuid.UUID, session: SessionDep, _: AdminDep) -> SourceRead:
    return SourceRead.model_validate(await service.get_source(session, source_id=source_id))


@router.get("/{source_id}/rejected-batches", response_model=Page[RejectedBatchRead])
async def list_rejected_batches(
    source_id: uuid.UUID,
    query: Annotated[PageQuery, Query()],
    session: SessionDep,
    _: AdminDep,
) -> Page[RejectedBatchRead]:
    """Authentic requests of this source that were refused, newest first, with the reason."""
    page = await service.list_rejected_batches(session, source_id=source_id, page=query)
    return Page(
        items=[RejectedBatchRead.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/{source_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    source_id: uuid.UUID,
    body: SecretRotation,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: AdminDep,
) -> SecretRotated:
    """Issue a new secret; the previous one is accepted for ``grace_period_seconds`` more."""
    source, secret = await service.rotate_secret(
        session,
        source_id=source_id,
        grace=timedelta(seconds=body.grace_period_seconds),
        box=secret_box(settings),
        actor=principal,
    )
    request.app.state.sources.forget(source.name)
    return SecretRotated(
        id=source.id,
        name=source.name,
        secret=secret,
        created_at=source.created_at,
        previous_secret_expires_at=source.previous_secret_expires_at,
    )
