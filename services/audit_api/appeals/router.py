"""Appeal outcomes (signed webhook) and ``/v1/reports/appeal-overturns``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.audit_api.decisions.router import read_body
from services.audit_api.decisions.service import authenticate_source, record_rejection
from services.audit_api.deps import SIGNED_WEBHOOK, SessionDep, SettingsDep, require_roles
from services.audit_api.openapi import WEBHOOK_RESPONSES, webhook_request_body
from shared.appeals import service
from shared.core.auth import Principal, Role
from shared.core.errors import DomainError
from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER
from shared.models.base import utcnow
from shared.schemas.appeals import (
    AppealBatch,
    AppealEvent,
    AppealOverturnQuery,
    AppealOverturnReport,
)
from shared.schemas.common import Problem
from shared.schemas.decisions import IntakeResult

router = APIRouter()

ReportReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.MODERATOR))
]


@router.post(
    "/v1/webhooks/appeals",
    dependencies=[Depends(SIGNED_WEBHOOK)],
    status_code=202,
    response_model=IntakeResult,
    tags=["appeals"],
    responses=WEBHOOK_RESPONSES,
    openapi_extra=webhook_request_body(AppealEvent, AppealBatch),
)
async def receive_appeals(
    request: Request, session: SessionDep, settings: SettingsDep
) -> IntakeResult:
    """Appeal outcomes from the appeals platform, signed like decision webhooks.

    One appeal event, or ``{"events": [...]}`` with 1 to 1,000; all stored or none. Each
    ``(source, event_id)`` is stored once; sent again, it counts as a duplicate.
    """
    body = await read_body(request, limit=settings.webhook_max_body_bytes)
    source = await authenticate_source(
        request.app.state.sources,
        source_name=request.headers.get(SOURCE_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        body=body,
        tolerance=settings.webhook_tolerance_seconds,
    )
    try:
        events = service.parse_appeal_events(body, max_events=settings.webhook_max_events)
    except DomainError as exc:
        await record_rejection(request.app.state.sessionmaker, source=source, error=exc)
        raise
    return await service.store_appeals(session, source_id=source.id, events=events)


@router.get(
    "/v1/reports/appeal-overturns",
    response_model=AppealOverturnReport,
    tags=["reports"],
    responses={403: {"model": Problem}, 422: {"model": Problem}},
)
async def appeal_overturns(
    query: Annotated[AppealOverturnQuery, Query()], session: SessionDep, principal: ReportReaderDep
) -> AppealOverturnReport:
    """Share of appealed decisions reversed on appeal, per moderator, queue or market.

    Each row: decisions appealed, decisions reversed, the rate and its Wilson 95 % interval.
    ``from``/``to`` are inclusive days of the decisions (in each market's time zone); by
    default the last 30 days. A moderator key sees only its own appeals.
    """
    rows = await service.appeal_overturn_report(
        session,
        query=query,
        today=utcnow().date(),
        viewer=principal,
    )
    return AppealOverturnReport(rows=rows)
