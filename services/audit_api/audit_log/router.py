"""The audit log: ``GET /v1/audit-log`` (admin, manager; keys without a market scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.audit_api.deps import SessionDep, require_roles
from shared.audit_log import service
from shared.core.auth import Principal, Role
from shared.schemas.audit_log import AuditLogEntryRead, AuditLogQuery
from shared.schemas.common import Page, Problem

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
    page = await service.list_entries(session, filters=query, viewer_markets=principal.markets)
    return Page(
        items=[AuditLogEntryRead.model_validate(entry) for entry in page.items],
        next_cursor=page.next_cursor,
    )
