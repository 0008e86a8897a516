"""The audit log: ``GET /v1/audit-log`` (admin, manager; keys without a market scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.audit_api.deps import SessionDep, require_roles
from shared.audit_log import service
from shared.core.auth import Principal, Role
from shared.schemas.audit_log import AuditLogEntryRead, AuditLogQuery
from shared.schemas.common import (
    Page,
    Problem,
    decode_time_cursor,
    page_rows,
    time_position,
)

router = APIRouter(prefix="/v1/audit-log", tags=["audit log"])

AuditLogReaderDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]


@router.get(
    "",
    response_model=Page[AuditLogEntryRead],
    responses={400: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}},
)
async def list_audit_log(
    query: Annotated[AuditLogQuery, Query()], session: SessionDep, principal: AuditLogReaderDep
) -> Page[AuditLogEntryRead]:
    """Every change made through the API, newest first: who, when, what, before and after.

    Entries are not attributed to markets, so a market-scoped key may not read them (403).
    Secrets never appear in ``before`` or ``after``.
    """
    before = decode_time_cursor(query.cursor, id_type=int) if query.cursor else None
    entries = await service.list_entries(
        session, filters=query, before=before, viewer_markets=principal.markets
    )
    entries, next_cursor = page_rows(
        entries,
        limit=query.limit,
        position=lambda last: time_position(last.created_at, last.id),
    )
    return Page(
        items=[AuditLogEntryRead.model_validate(entry) for entry in entries],
        next_cursor=next_cursor,
    )
