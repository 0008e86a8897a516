"""Console pages: the arbitration inbox of disputed verdicts, a dispute's detail and the
ruling form.

Everything goes through the same domain functions as ``/v1/disagreements``: the inbox is
``list_disagreements`` (status ``disputed``, the viewer's markets), the detail is
``get_disagreement`` and the audit as ``get_audit`` shows it, and a ruling is
``lifecycle.resolve``. Reading: the roles that read disagreements except moderators (their
own are on "My audits"); ruling: the roles the API lets arbitrate (policy POCs, managers).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.audit_api.console.forms import FieldErrors, FormRefused, parse
from services.audit_api.console.policy import display_names
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from shared.audits import service as audits
from shared.core.auth import Role
from shared.core.errors import NotFound
from shared.disagreements import lifecycle, service
from shared.models.base import utcnow
from shared.schemas.audits import AuditRead
from shared.schemas.common import MAX_PAGE_SIZE
from shared.schemas.disagreements import (
    MAX_NOTE_CHARS,
    DisagreementDetail,
    DisagreementQuery,
    DisagreementRead,
    ResolutionCreate,
)

router = APIRouter()

# The roles that rule on a dispute: exactly those of ``POST /v1/disagreements/{id}/resolve``.
ARBITERS = (Role.POLICY_POC, Role.MANAGER)
# Who opens the inbox: the API's readers of disagreements but moderators.
INBOX_READERS = (Role.POLICY_POC, Role.MANAGER, Role.ADMIN)

Reader = Annotated[ConsoleContext, Depends(console_page(*INBOX_READERS))]
Arbiter = Annotated[ConsoleContext, Depends(console_page(*ARBITERS))]
OUTCOMES = ("upheld", "overturned")
# The inbox reads at most this many disputes (a backlog beyond it says so).
INBOX_LIMIT = 5 * MAX_PAGE_SIZE


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A dispute waiting for a ruling, with how long it has waited and its SLA."""

    disagreement: DisagreementRead
    disputed_at: datetime
    waited_hours: float
    due_at: datetime
    overdue: bool


def inbox_rows(items: list[DisagreementRead], *, now: datetime, sla: timedelta) -> list[InboxRow]:
    """The disputes, oldest dispute first, each with its wait and its arbitration SLA."""
    rows = []
    for item in items:
        disputed_at = item.disputed_at or item.created_at
        due_at = disputed_at + sla
        rows.append(
            InboxRow(
                disagreement=item,
                disputed_at=disputed_at,
                waited_hours=max((now - disputed_at).total_seconds() / 3600, 0.0),
                due_at=due_at,
                overdue=now > due_at,
            )
        )
    rows.sort(key=lambda row: (row.disputed_at, str(row.disagreement.id)))
    return rows


@router.get("/arbitration")
async def inbox(
    request: Request,
    context: Reader,
    session: SessionDep,
    settings: SettingsDep,
    ruled: Annotated[Literal["upheld", "overturned"] | None, Query()] = None,
) -> Response:
    """The disputes awaiting arbitration in the person's markets, oldest first (the API
    lists newest first: the pages are read to the end, up to ``INBOX_LIMIT`` disputes)."""
    items: list[DisagreementRead] = []
    cursor: str | None = None
    while len(items) < INBOX_LIMIT:
        page = await service.list_disagreements(
            session,
            filters=DisagreementQuery(status="disputed", limit=MAX_PAGE_SIZE, cursor=cursor),
            viewer=context.principal,
        )
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    sla = timedelta(hours=settings.dispute_sla_hours)
    return render(
        request,
        "arbitration/inbox.html",
        context=context,
        rows=inbox_rows(items, now=utcnow(), sla=sla),
        truncated=cursor is not None,
        sla_hours=settings.dispute_sla_hours,
        ruled=ruled,
        can_rule=context.role in ARBITERS,
    )


async def _audit_of(
    session: SessionDep, context: ConsoleContext, detail: DisagreementDetail
) -> AuditRead | None:
    try:
        return await audits.get_audit(
            session, principal=context.principal, audit_id=detail.audit_id
        )
    except NotFound:
        return None


async def _detail_page(
    request: Request,
    context: ConsoleContext,
    session: SessionDep,
    settings: SettingsDep,
    disagreement_id: uuid.UUID,
    *,
    errors: FieldErrors | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    detail = await service.get_disagreement(
        session, disagreement_id=disagreement_id, viewer=context.principal
    )
    row = inbox_rows([detail], now=utcnow(), sla=timedelta(hours=settings.dispute_sla_hours))[0]
    names = await display_names(
        session, [detail.resolved_by, *(change.actor for change in detail.history)]
    )
    return render(
        request,
        "arbitration/detail.html",
        context=context,
        status_code=status_code,
        detail=detail,
        names=names,
        row=row,
        audit=await _audit_of(session, context, detail),
        can_rule=context.role in ARBITERS and detail.status == "disputed",
        outcomes=OUTCOMES,
        max_note=MAX_NOTE_CHARS,
        errors=errors or {},
        form=form or {},
    )


@router.get("/arbitration/{disagreement_id}")
async def dispute_detail(
    request: Request,
    disagreement_id: uuid.UUID,
    context: Reader,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """A dispute: the decision, the auditor's verdict, the moderator's reason, its history,
    and (for an arbiter, while it is disputed) the ruling form."""
    return await _detail_page(request, context, session, settings, disagreement_id)


@router.post("/arbitration/{disagreement_id}/ruling")
async def rule(
    request: Request,
    disagreement_id: uuid.UUID,
    context: Arbiter,
    session: SessionDep,
    settings: SettingsDep,
    outcome: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS * 2)] = "",
) -> Response:
    """Rule on the dispute (``lifecycle.resolve``), then back to the inbox with a notice;
    a missing outcome or rationale shows the form again (422), nothing stored."""
    try:
        ruling = parse(ResolutionCreate, {"outcome": outcome, "note": note})
    except FormRefused as refused:
        return await _detail_page(
            request,
            context,
            session,
            settings,
            disagreement_id,
            errors=refused.errors,
            form={"outcome": outcome, "note": note},
            status_code=422,
        )
    await lifecycle.resolve(
        session,
        disagreement_id=disagreement_id,
        outcome=ruling.outcome,
        note=ruling.note,
        actor=context.principal,
        now=utcnow(),
    )
    return RedirectResponse(f"/console/arbitration?ruled={ruling.outcome}", status_code=303)
