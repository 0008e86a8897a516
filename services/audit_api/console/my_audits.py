"""The moderator's audits: the verdicts on their decisions, their accuracy with its interval,
each audit's detail with its disagreement, and the dispute while the window is open.

Reads and writes go through what the API calls: ``shared.audits.service.list_audits`` and
``get_audit`` (a moderator sees only their own reviewer's audits: another's is a 404),
``shared.reports.service.accuracy_report`` (the accuracy report's own numbers, Wilson
interval included), ``shared.disagreements.service.get_disagreement`` and
``shared.disagreements.lifecycle.dispute``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.forms import FormRefused, parse, refusable
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep
from shared.audits import service as audits
from shared.core.auth import Role
from shared.core.errors import Conflict
from shared.core.pagination import MAX_CURSOR_LENGTH
from shared.disagreements import lifecycle
from shared.disagreements import service as disagreements
from shared.models.base import utcnow
from shared.reports.service import accuracy_report
from shared.schemas.audits import AuditQuery
from shared.schemas.disagreements import MAX_NOTE_CHARS, DisagreementDetail, DisputeCreate
from shared.schemas.reports import AccuracyQuery

router = APIRouter()

Moderator = Annotated[ConsoleContext, Depends(console_page(Role.MODERATOR))]

MY_AUDITS = "/console/my-audits"
PAGE_SIZE = 25


def detail_path(audit_id: uuid.UUID) -> str:
    return f"{MY_AUDITS}/{audit_id}"


@router.get("/my-audits")
async def my_audits(
    request: Request,
    session: SessionDep,
    context: Moderator,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
) -> Response:
    """My judged audits, newest day first (a page at a time), and my accuracy over the
    accuracy report's default window with its 95 % interval."""
    page = await audits.list_audits(
        session,
        principal=context.principal,
        filters=AuditQuery.model_validate(
            {"status": "completed", "limit": PAGE_SIZE, "cursor": cursor}
        ),
    )
    report = await accuracy_report(
        session,
        query=AccuracyQuery.model_validate({"group_by": "moderator"}),
        viewer=context.principal,
    )
    mine = [row for row in report.rows if row.key == context.principal.reviewer_id]
    return render(
        request,
        "my_audits/index.html",
        context=context,
        audits=page.items,
        next_cursor=page.next_cursor,
        first_page=cursor is None,
        accuracy=mine[0] if mine else None,
        day_from=report.day_from,
        day_to=report.day_to,
    )


async def _detail(
    request: Request,
    session: AsyncSession,
    context: ConsoleContext,
    audit_id: uuid.UUID,
    *,
    reason: str = "",
    reason_invalid: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    audit = await audits.get_audit(session, principal=context.principal, audit_id=audit_id)
    disagreement: DisagreementDetail | None = None
    if audit.disagreement_id is not None:
        disagreement = await disagreements.get_disagreement(
            session, disagreement_id=audit.disagreement_id, viewer=context.principal
        )
    now = utcnow()
    return render(
        request,
        "my_audits/audit.html",
        context=context,
        status_code=status_code,
        audit=audit,
        disagreement=disagreement,
        window_open=disagreement is not None
        and disagreement.status == "open"
        and now <= disagreement.dispute_deadline,
        reason=reason,
        reason_invalid=reason_invalid,
        error=error,
        max_reason=MAX_NOTE_CHARS,
    )


@router.get("/my-audits/{audit_id}")
async def audit_detail(
    request: Request, audit_id: uuid.UUID, session: SessionDep, context: Moderator
) -> Response:
    """One of my audits: the decision, the verdict, the disagreement and its history; the
    dispute form while the window is open. Another moderator's audit: 404."""
    return await _detail(request, session, context, audit_id)


@router.post("/my-audits/{audit_id}/dispute")
async def dispute(
    request: Request,
    audit_id: uuid.UUID,
    session: SessionDep,
    context: Moderator,
    reason: Annotated[str, Form(max_length=MAX_NOTE_CHARS * 2)] = "",
) -> Response:
    """Dispute the verdict on one of my audits, saying why (before the deadline)."""
    try:
        body = parse(DisputeCreate, {"reason": reason})
        audit = await audits.get_audit(session, principal=context.principal, audit_id=audit_id)
        if audit.disagreement_id is None:
            raise Conflict(
                "this audit's verdict opened no disagreement: there is nothing to dispute"
            )
        async with refusable(session, show=(Conflict,)):
            await lifecycle.dispute(
                session,
                disagreement_id=audit.disagreement_id,
                reason=body.reason,
                actor=context.principal,
                now=utcnow(),
            )
    except FormRefused as refused:
        # The reason refused (422), or the dispute (409: the window closed, disputed already).
        return await _detail(
            request,
            session,
            context,
            audit_id,
            reason=reason,
            reason_invalid=refused.detail is None,
            error=refused.detail,
            status_code=refused.status,
        )
    return RedirectResponse(detail_path(audit_id), status_code=303)
