"""Console pages: calibration sessions.

Creating a session, the list, labeling blind as a participant, closing, and the results
(agreement statistics, per participant, per item with the flagged ones, per category). Every
page calls ``shared.calibrations.service`` exactly as ``/v1/calibrations`` does, so who sees
which session and which labels (blind while open) is the service's rule, not this module's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.audit_api.console.forms import (
    REFUSALS,
    FormPage,
    FormRefused,
    lines,
    parse,
    query,
    refusable,
    utc_instant,
    words,
)
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep
from shared.calibrations import service
from shared.core.auth import ALL_ROLES, Role
from shared.models.base import utcnow
from shared.schemas.calibration import (
    CalibrationCreate,
    CalibrationQuery,
    CalibrationRead,
    LabelsPut,
    NotePut,
)

router = APIRouter()

# The API's roles: creating a session (POST /v1/calibrations) ...
CREATOR_ROLES = (Role.QA_AUDITOR, Role.MANAGER, Role.ADMIN)
# ... and everything else (any key; the service checks who is what in the session).
AnyoneSignedIn = Annotated[ConsoleContext, Depends(console_page(*ALL_ROLES))]
Creator = Annotated[ConsoleContext, Depends(console_page(*CREATOR_ROLES))]
PAGE_SIZE = 50
LABEL_FIELD = "label-"


@router.get("/calibrations")
async def list_page(
    request: Request,
    session: SessionDep,
    context: AnyoneSignedIn,
    status: Annotated[str | None, Query(max_length=16)] = None,
    market: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """The sessions the person may see, newest first (``GET /v1/calibrations``)."""
    filters = query(CalibrationQuery, status=status, market=market, cursor=cursor, limit=PAGE_SIZE)
    page = await service.list_calibrations(session, filters=filters, viewer=context.principal)
    return render(
        request,
        "calibrations/list.html",
        context=context,
        sessions=page.items,
        next_cursor=page.next_cursor,
        status=filters.status or "",
        market=filters.market or "",
        may_create=context.role in CREATOR_ROLES,
    )


_create_form = FormPage("calibrations/new.html")


@router.get("/calibrations/new")
async def new_page(request: Request, context: Creator) -> Response:
    """The form of a new session."""
    values = {"categories": "no_violation", "market": (context.principal.markets or ("",))[0]}
    return _create_form(request, context, values=values, errors=[])


def _items(text: str) -> list[dict[str, Any]]:
    """One item a line: ``content id`` or ``content id, golden`` or ``content id, golden,
    decision id`` (the golden answer may be left empty)."""
    items: list[dict[str, Any]] = []
    for line in lines(text):
        parts = [part.strip() for part in line.split(",")]
        item: dict[str, Any] = {"content_id": parts[0]}
        if len(parts) > 1 and parts[1]:
            item["golden"] = parts[1]
        if len(parts) > 2 and parts[2]:
            item["decision_id"] = parts[2]
        if len(parts) > 3:
            item["unexpected"] = ",".join(parts[3:])
        items.append(item)
    return items


@router.post("/calibrations")
async def create(
    request: Request,
    session: SessionDep,
    context: Creator,
    title: Annotated[str, Form(max_length=200)] = "",
    market: Annotated[str, Form(max_length=16)] = "",
    categories: Annotated[str, Form(max_length=10_000)] = "",
    items: Annotated[str, Form(max_length=300_000)] = "",
    participants: Annotated[str, Form(max_length=30_000)] = "",
    deadline: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Open the session (``POST /v1/calibrations``); its page next."""
    values = {
        "title": title,
        "market": market,
        "categories": categories,
        "items": items,
        "participants": participants,
        "deadline": deadline,
    }
    try:
        data = parse(
            CalibrationCreate,
            {
                "title": title.strip(),
                "market": market.strip(),
                "categories": words(categories),
                "items": _items(items),
                "participants": words(participants),
                "deadline": utc_instant(deadline),
            },
        )
        async with refusable(session):
            created = await service.create_calibration(session, data=data, actor=context.principal)
    except FormRefused as refused:
        return _create_form(
            request, context, values=values, errors=refused.messages, status_code=refused.status
        )
    return RedirectResponse(f"/console/calibrations/{created.id}", status_code=303)


def _may_close(calibration: CalibrationRead, context: ConsoleContext) -> bool:
    """Whether to offer "Close": the service decides (creator, managers, admins); this only
    keeps the button from those it would refuse anyway."""
    if calibration.status != "open":
        return False
    if context.role in (Role.MANAGER, Role.ADMIN):
        return True
    reviewer = context.principal.reviewer_id
    return reviewer is not None and reviewer == calibration.created_by_reviewer_id


def _detail(
    request: Request,
    context: ConsoleContext,
    calibration: CalibrationRead,
    *,
    errors: list[str] | None = None,
    chosen: Mapping[str, str] | None = None,
    saved: bool = False,
    status_code: int = 200,
) -> Response:
    reviewer = context.principal.reviewer_id
    participant = reviewer is not None and reviewer in calibration.participants
    # What the service showed this person: while open, only their own labels.
    mine = {
        label.content_id: label.label
        for label in calibration.labels
        if label.reviewer_id == reviewer
    }
    before_deadline = calibration.deadline is None or utcnow() < calibration.deadline
    matrix: dict[str, dict[str, str]] = {}
    if calibration.status == "closed":
        for label in calibration.labels:
            matrix.setdefault(label.content_id, {})[label.reviewer_id] = label.label
    return render(
        request,
        "calibrations/detail.html",
        context=context,
        status_code=status_code,
        calibration=calibration,
        participant=participant,
        may_label=participant and calibration.status == "open" and before_deadline,
        may_close=_may_close(calibration, context),
        mine={**mine, **(chosen or {})},
        matrix=matrix,
        errors=errors or [],
        saved=saved,
    )


@router.get("/calibrations/{calibration_id}")
async def detail_page(
    request: Request,
    session: SessionDep,
    context: AnyoneSignedIn,
    calibration_id: uuid.UUID,
    saved: Annotated[bool, Query()] = False,
) -> Response:
    """The session as the person may see it (``GET /v1/calibrations/{id}``): blind while
    open; a participant's label form; "Close" for those who may close it."""
    calibration = await service.get_calibration(
        session, calibration_id=calibration_id, viewer=context.principal
    )
    return _detail(request, context, calibration, saved=saved)


@router.post("/calibrations/{calibration_id}/labels")
async def save_labels(
    request: Request, session: SessionDep, context: AnyoneSignedIn, calibration_id: uuid.UUID
) -> Response:
    """The participant's labels (``PUT /v1/calibrations/{id}/labels``): one field
    ``label-<n>`` per item in the session's order; an empty one is left as it is."""
    calibration = await service.get_calibration(
        session, calibration_id=calibration_id, viewer=context.principal
    )
    form = await request.form()
    chosen: dict[str, str] = {}
    for position, item in enumerate(calibration.items):
        value = form.get(f"{LABEL_FIELD}{position}")
        if isinstance(value, str) and value.strip():
            chosen[item.content_id] = value.strip()
    try:
        if not chosen:
            raise FormRefused({"labels": ["choose a label for at least one item"]})
        data = parse(
            LabelsPut,
            {"labels": [{"content_id": c, "label": label} for c, label in chosen.items()]},
        )
        async with refusable(session, show=REFUSALS):
            await service.save_labels(
                session, calibration_id=calibration.id, labels=data, actor=context.principal
            )
    except FormRefused as refused:
        return _detail(
            request,
            context,
            calibration,
            errors=refused.messages,
            chosen=chosen,
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/calibrations/{calibration.id}?saved=true", status_code=303)


@router.post("/calibrations/{calibration_id}/close")
async def close(
    session: SessionDep, context: AnyoneSignedIn, calibration_id: uuid.UUID
) -> Response:
    """Close the session (``POST /v1/calibrations/{id}/close``): its results next."""
    await service.close_calibration(session, calibration_id=calibration_id, actor=context.principal)
    return RedirectResponse(f"/console/calibrations/{calibration_id}/results", status_code=303)


@router.get("/calibrations/{calibration_id}/results")
async def results_page(
    request: Request, session: SessionDep, context: AnyoneSignedIn, calibration_id: uuid.UUID
) -> Response:
    """A closed session's results (``GET /v1/calibrations/{id}/results``): agreement, per
    participant, the flagged items (low agreement or off the golden answer), per category."""
    calibration = await service.get_calibration(
        session, calibration_id=calibration_id, viewer=context.principal
    )
    results = await service.get_results(
        session, calibration_id=calibration_id, viewer=context.principal
    )
    return render(
        request,
        "calibrations/results.html",
        context=context,
        calibration=calibration,
        results=results,
        flagged=[item for item in results.items if item.flagged],
        may_note=context.role in (Role.MANAGER, Role.ADMIN)
        or (
            context.principal.reviewer_id is not None
            and context.principal.reviewer_id == calibration.created_by_reviewer_id
        ),
    )


@router.post("/calibrations/{calibration_id}/notes")
async def save_note(
    session: SessionDep,
    context: AnyoneSignedIn,
    calibration_id: uuid.UUID,
    content_id: Annotated[str, Form(min_length=1, max_length=256)],
    note: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """An item's discussion note (``PUT .../items/{content_id}/note``); empty clears it."""
    body = NotePut(note=note.strip() or None)
    await service.set_item_note(
        session,
        calibration_id=calibration_id,
        content_id=content_id,
        note=body.note,
        actor=context.principal,
    )
    return RedirectResponse(f"/console/calibrations/{calibration_id}/results", status_code=303)
