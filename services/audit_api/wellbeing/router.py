"""Wellbeing caps and exposure: ``/v1/wellbeing/caps``, ``/v1/wellbeing/exposure``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.audit_api.deps import SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.schemas.audits import CapQuery, CapRead, CapSet, ExposureQuery, ExposureRow
from shared.schemas.common import Page, Problem
from shared.wellbeing import service

router = APIRouter(prefix="/v1/wellbeing", tags=["wellbeing"])

CapEditorDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]
CapReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.QA_AUDITOR))
]
ExposureReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.QA_AUDITOR))
]
PolicyCodePath = Annotated[str, Path(pattern=r"^[a-z0-9_.-]{1,64}$")]


@router.put(
    "/caps/{policy_code}",
    response_model=CapRead,
    responses={403: {"model": Problem}, 422: {"model": Problem}},
)
async def set_cap(
    policy_code: PolicyCodePath, body: CapSet, session: SessionDep, principal: CapEditorDep
) -> CapRead:
    """Set how many items carrying ``policy_code`` an auditor may be handed per UTC day.

    Caps apply in every market, so market-scoped keys may not change them (403).
    """
    cap = await service.set_cap(
        session, principal=principal, policy_code=policy_code, daily_cap=body.daily_cap
    )
    return service.cap_read(cap)


@router.delete(
    "/caps/{policy_code}",
    status_code=204,
    responses={403: {"model": Problem}, 404: {"model": Problem}},
)
async def delete_cap(
    policy_code: PolicyCodePath, session: SessionDep, principal: CapEditorDep
) -> Response:
    """Remove a category's cap: its items are handed out without limit again."""
    await service.delete_cap(session, principal=principal, policy_code=policy_code)
    return Response(status_code=204)


@router.get("/caps", response_model=Page[CapRead])
async def list_caps(
    query: Annotated[CapQuery, Query()], session: SessionDep, _: CapReaderDep
) -> Page[CapRead]:
    """Every sensitive category's daily cap, by policy code."""
    page = await service.list_caps(session, page=query)
    return Page(
        items=[service.cap_read(cap) for cap in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/exposure", response_model=Page[ExposureRow], responses={403: {"model": Problem}})
async def list_exposure(
    query: Annotated[ExposureQuery, Query()], session: SessionDep, principal: ExposureReaderDep
) -> Page[ExposureRow]:
    """Each auditor's exposure to each sensitive category on a UTC day (default today).

    Without ``auditor_id``, every auditor who claimed work that day. A QA auditor sees only
    their own.
    """
    page = await service.list_exposure(
        session, principal=principal, auditor_id=query.auditor_id, day=query.day, page=query
    )
    return Page(items=page.items, next_cursor=page.next_cursor)
