"""Calibration sessions: ``/v1/calibrations``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from services.audit_api.deps import ANY_ROLE, SessionDep, require_roles
from shared.calibrations import service
from shared.core.auth import Principal, Role
from shared.schemas.calibration import (
    CalibrationCreate,
    CalibrationItemRead,
    CalibrationListItem,
    CalibrationQuery,
    CalibrationRead,
    CalibrationResults,
    LabelsPut,
    LabelsRead,
    NotePut,
    TrendPoint,
    TrendQuery,
)
from shared.schemas.common import Page, Problem

router = APIRouter(prefix="/v1/calibrations", tags=["calibrations"])

CreatorDep = Annotated[Principal, Depends(require_roles(Role.QA_AUDITOR, Role.MANAGER, Role.ADMIN))]
TrendReaderDep = Annotated[
    Principal, Depends(require_roles(Role.QA_AUDITOR, Role.MANAGER, Role.ADMIN))
]
# Participants label with keys of any role; the service checks who is what in the session.
AnyKeyDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]
ContentIdPath = Annotated[str, Path(min_length=1, max_length=256)]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post("", status_code=201, response_model=CalibrationRead, responses=_PROBLEMS)
async def create_calibration(
    body: CalibrationCreate, session: SessionDep, principal: CreatorDep
) -> CalibrationRead:
    """Open a session; participants are notified (a ``calibration.opened`` event).

    Golden answers must be categories; content ids must not repeat; at least two
    participants. Policy codes, the market and the participants are registered if new.
    """
    return await service.create_calibration(session, data=body, actor=principal)


@router.get("", response_model=Page[CalibrationListItem])
async def list_calibrations(
    query: Annotated[CalibrationQuery, Query()], session: SessionDep, principal: AnyKeyDep
) -> Page[CalibrationListItem]:
    """Sessions newest first; filter by ``market`` and ``status``.

    Managers and admins see every session (of their markets); others the sessions they
    take part in or created.
    """
    page = await service.list_calibrations(session, filters=query, viewer=principal)
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/trend", response_model=Page[TrendPoint], responses=_PROBLEMS)
async def calibration_trend(
    query: Annotated[TrendQuery, Query()], session: SessionDep, principal: TrendReaderDep
) -> Page[TrendPoint]:
    """The market's closed sessions in the order they closed, with their overall agreement."""
    page = await service.calibration_trend(
        session, market=query.market, page=query, viewer=principal
    )
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/{calibration_id}", response_model=CalibrationRead, responses=_PROBLEMS)
async def get_calibration(
    calibration_id: uuid.UUID, session: SessionDep, principal: AnyKeyDep
) -> CalibrationRead:
    """The session (participants, its creator, managers, admins). Blind while open: a
    participant sees only their own labels and no golden answers; counts are shown."""
    return await service.get_calibration(session, calibration_id=calibration_id, viewer=principal)


@router.put("/{calibration_id}/labels", response_model=LabelsRead, responses=_PROBLEMS)
async def put_labels(
    calibration_id: uuid.UUID, body: LabelsPut, session: SessionDep, principal: AnyKeyDep
) -> LabelsRead:
    """Set the calling participant's labels, item by item; returns all their labels.

    403 for a non-participant; 409 after close or the deadline; 422 for an item not in the
    session or a label outside its categories (nothing of the request is stored).
    """
    labels = await service.save_labels(
        session, calibration_id=calibration_id, labels=body, actor=principal
    )
    return LabelsRead(labels=labels)


@router.post("/{calibration_id}/close", response_model=CalibrationRead, responses=_PROBLEMS)
async def close_calibration(
    calibration_id: uuid.UUID, session: SessionDep, principal: AnyKeyDep
) -> CalibrationRead:
    """Close the session (its creator, managers, admins): labels freeze, results are computed
    and a ``calibration.closed`` event carries the summary. Closing twice is 409."""
    return await service.close_calibration(session, calibration_id=calibration_id, actor=principal)


@router.get("/{calibration_id}/results", response_model=CalibrationResults, responses=_PROBLEMS)
async def get_results(
    calibration_id: uuid.UUID, session: SessionDep, principal: AnyKeyDep
) -> CalibrationResults:
    """Agreement overall and per category, per participant and per item; 409 before close."""
    return await service.get_results(session, calibration_id=calibration_id, viewer=principal)


@router.put(
    "/{calibration_id}/items/{content_id}/note",
    response_model=CalibrationItemRead,
    responses=_PROBLEMS,
)
async def put_item_note(
    calibration_id: uuid.UUID,
    content_id: ContentIdPath,
    body: NotePut,
    session: SessionDep,
    principal: AnyKeyDep,
) -> CalibrationItemRead:
    """Write the discussion note of an item (its creator, managers, admins); null clears."""
    return await service.set_item_note(
        session,
        calibration_id=calibration_id,
        content_id=content_id,
        note=body.note,
        actor=principal,
    )
