"""Decision intake and listing: ``/v1/webhooks/decisions``, ``/v1/decisions``, rollups."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from services.audit_api.decisions import service
from services.audit_api.deps import SIGNED_WEBHOOK, SessionDep, require_roles
from services.audit_api.openapi import WEBHOOK_RESPONSES, webhook_request_body
from shared.core.auth import Principal, Role
from shared.core.errors import PayloadTooLarge
from shared.core.settings import Settings
from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER
from shared.decisions import queries
from shared.models.base import utcnow
from shared.schemas.common import Page
from shared.schemas.decisions import (
    DecisionBatch,
    DecisionEvent,
    DecisionQuery,
    DecisionRead,
    IntakeResult,
    IntakeRollupQuery,
    IntakeRollupRow,
)
from shared.schemas.fields import BigintId

router = APIRouter(tags=["decisions"])

ReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.MODERATOR))
]
RollupReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC))
]


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body (the signature covers its exact bytes), refused past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/webhooks/decisions",
    dependencies=[Depends(SIGNED_WEBHOOK)],
    status_code=202,
    response_model=IntakeResult,
    responses=WEBHOOK_RESPONSES,
    openapi_extra=webhook_request_body(DecisionEvent, DecisionBatch),
)
async def receive_decisions(request: Request) -> IntakeResult:
    """Moderator decisions from a platform, signed with the source's secret (HMAC-SHA256).

    One event, or ``{"events": [...]}`` with 1 to 1,000. Each ``(source, event_id)`` is stored
    once; an event sent again counts as a duplicate.
    """
    # The settings from the app's state, not as a dependency: FastAPI's solving of each
    # dependency costs more than the lookup (py-spy, single-event intake: 13 % of the API's
    # CPU in solve_dependencies, this route has no other use for it).
    state = request.app.state
    settings: Settings = state.settings
    body = await read_body(request, limit=settings.webhook_max_body_bytes)
    source = await service.authenticate_source(
        state.sources,
        source_name=request.headers.get(SOURCE_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        body=body,
        tolerance=settings.webhook_tolerance_seconds,
    )
    return await service.receive_decisions(
        source=source,
        body=body,
        max_events=settings.webhook_max_events,
        window=service.DecidedAtWindow.around(
            utcnow(),
            earliest_date=settings.earliest_date,
            future_tolerance=timedelta(seconds=settings.decided_at_future_tolerance_seconds),
        ),
        writer=state.decision_writer,
        sessionmaker=state.sessionmaker,
    )


@router.get("/v1/decisions", response_model=Page[DecisionRead])
async def list_decisions(
    query: Annotated[DecisionQuery, Query()], session: SessionDep, principal: ReaderDep
) -> Page[DecisionRead]:
    """Decisions, newest first. A moderator key sees only its own reviewer's decisions."""
    page = await queries.list_decisions(session, filters=query, viewer=principal)
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/v1/decisions/{decision_id}", response_model=DecisionRead)
async def get_decision(
    decision_id: Annotated[BigintId, Path()], session: SessionDep, principal: ReaderDep
) -> DecisionRead:
    """One decision, if the caller may see it."""
    return await queries.get_decision(session, decision_id=decision_id, viewer=principal)


@router.get("/v1/intake-rollups", response_model=Page[IntakeRollupRow])
async def list_intake_rollups(
    query: Annotated[IntakeRollupQuery, Query()], session: SessionDep, principal: RollupReaderDep
) -> Page[IntakeRollupRow]:
    """Decisions received per day (in the market's time zone), market, queue and moderator."""
    page = await queries.list_intake_rollups(session, filters=query, viewer=principal)
    return Page(
        items=[IntakeRollupRow.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )
