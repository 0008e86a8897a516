"""API keys: ``/v1/api-keys`` (admin only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.audit_api.deps import AdminDep, SessionDep
from shared.api_keys import service
from shared.schemas.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from shared.schemas.common import Page, PageQuery

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(
    body: ApiKeyCreate, session: SessionDep, principal: AdminDep
) -> ApiKeyCreated:
    """Create a key. The key is in this response only; it is stored hashed."""
    api_key, plaintext = await service.create_api_key(
        session,
        name=body.name,
        role=body.role,
        reviewer_id=body.reviewer_id,
        markets=body.markets,
        actor=principal,
    )
    return ApiKeyCreated(**ApiKeyRead.model_validate(api_key).model_dump(), key=plaintext)


@router.get("", response_model=Page[ApiKeyRead])
async def list_api_keys(
    query: Annotated[PageQuery, Query()], session: SessionDep, _: AdminDep
) -> Page[ApiKeyRead]:
    page = await service.list_api_keys(session, page=query)
    return Page(
        items=[ApiKeyRead.model_validate(key) for key in page.items],
        next_cursor=page.next_cursor,
    )


@router.delete("/{key_id}", response_model=ApiKeyRead)
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> ApiKeyRead:
    """Revoke a key; it stops working at once."""
    api_key = await service.revoke_api_key(session, key_id=key_id, actor=principal)
    return ApiKeyRead.model_validate(api_key)
