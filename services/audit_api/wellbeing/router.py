"""Wellbeing caps and exposure: ``/v1/wellbeing/caps``, ``/v1/wellbeing/exposure``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.audit_api.deps import SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.core.errors import BadRequest
from shared.schemas.audits import CapQuery, CapRead, CapSet, ExposureQuery, ExposureRow
from shared.schemas.common import Page, Problem, decode_cursor, page_rows
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
    after = decode_cursor(query.cursor, keys={"code"})["code"] if query.cursor else None
    caps = await service.list_caps(session, limit=query.limit, after=after)
    caps, next_cursor = page_rows(
        caps, limit=query.limit, position=lambda last: {"code": last.policy_code}
    )
    return Page(
        items=[service.cap_read(cap) for cap in caps],
        next_cursor=next_cursor,
    )


@router.get("/exposure", response_model=Page[ExposureRow], responses={403: {"model": Problem}})
async def list_exposure(
    query: Annotated[ExposureQuery, Query()], session: SessionDep, principal: ExposureReaderDep
) -> Page[ExposureRow]:
    """Each auditor's exposure to each sensitive category on a UTC day (default today).

    Without ``auditor_id``, every auditor who claimed work that day. A QA auditor sees only
    their own.
    """
    after = None
    if query.cursor:
        position = decode_cursor(query.cursor, keys={"k"})["k"]
        if not (isinstance(position, list) and len(position) == 2):
            raise BadRequest("cursor is not valid")
        after = (str(position[0]), str(position[1]))
    rows = await service.list_exposure(
        session,
        principal=principal,
        auditor_id=query.auditor_id,
        day=query.day,
        limit=query.limit,
        after=after,
    )
    rows, next_cursor = page_rows(
        rows, limit=query.limit, position=lambda last: {"k": [last.auditor_id, last.policy_code]}
    )
    return Page(items=rows, next_cursor=next_cursor)
