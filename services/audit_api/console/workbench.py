"""The auditor's workbench: claim the next audit (blind), judge it, see the result.

Every step calls what ``/v1/audits`` calls (``shared.audits.service``): the claim with the
same lease, golden rate and key; the verdict through ``VerdictCreate`` and
``submit_verdict``; reading through ``get_audit`` and ``list_audits``, whose visibility keeps
an audit blind (no moderator) until its verdict is in. Today's verdicts and the wellbeing
caps come from ``shared.audits.workload`` and ``shared.wellbeing.service``.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.forms import REFUSALS, FieldErrors, FormRefused, parse, refusable
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from shared.audits import service
from shared.audits.workload import verdicts_given_on
from shared.core.auth import Role
from shared.core.encryption import golden_selection_key
from shared.core.errors import NotFound
from shared.schemas.audits import (
    MAX_COMMENT_CHARS,
    AuditQuery,
    AuditRead,
    ExposureRow,
    VerdictCreate,
)
from shared.schemas.common import MAX_PAGE_SIZE, PageQuery
from shared.schemas.decisions import Action
from shared.wellbeing.service import list_exposure

router = APIRouter()

Auditor = Annotated[ConsoleContext, Depends(console_page(Role.QA_AUDITOR))]

WORKBENCH = "/console/workbench"
ACTIONS: tuple[Action, ...] = ("approve", "remove", "restrict", "escalate")
SEVERITIES = ("critical", "major", "minor")
# Form fields are bounded before parsing; the schema then says what is wrong on the form.
_FIELD_LIMIT = 64
_LABELS_LIMIT = 4000
_LABEL_SEPARATORS = re.compile(r"[\s,;]+")


def audit_path(audit_id: uuid.UUID) -> str:
    return f"{WORKBENCH}/audits/{audit_id}"


async def _day_figures(session: AsyncSession, context: ConsoleContext) -> dict[str, Any]:
    """Today's verdicts and the exposure to each capped category (UTC day, as the caps)."""
    today = datetime.now(UTC).date()
    exposure = await list_exposure(
        session,
        principal=context.principal,
        auditor_id=None,
        day=today,
        page=PageQuery(limit=MAX_PAGE_SIZE),
    )
    caps: list[ExposureRow] = exposure.items
    return {
        "today": today,
        "verdicts_today": await verdicts_given_on(session, principal=context.principal, day=today),
        "caps": caps,
        "capped": [row.policy_code for row in caps if row.capped],
    }


async def _held(session: AsyncSession, context: ConsoleContext) -> list[AuditRead]:
    """The audits the auditor holds and has not judged yet (blind)."""
    page = await service.list_audits(
        session,
        principal=context.principal,
        filters=AuditQuery.model_validate({"status": "claimed", "limit": 10}),
    )
    return page.items


async def _landing(
    request: Request,
    session: AsyncSession,
    context: ConsoleContext,
    *,
    nothing: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "workbench/index.html",
        context=context,
        status_code=status_code,
        held=await _held(session, context),
        nothing=nothing,
        error=error,
        **await _day_figures(session, context),
    )


async def _audit_page(
    request: Request,
    session: AsyncSession,
    context: ConsoleContext,
    audit: AuditRead,
    *,
    form: dict[str, str] | None = None,
    errors: list[str] | None = None,
    field_errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "workbench/audit.html",
        context=context,
        status_code=status_code,
        audit=audit,
        mine=audit.status == "claimed" and audit.auditor_id == context.principal.reviewer_id,
        form=form or {},
        errors=errors or [],
        field_errors=field_errors or {},
        actions=ACTIONS,
        severities=SEVERITIES,
        max_comment=MAX_COMMENT_CHARS,
        **await _day_figures(session, context),
    )


@router.get("/workbench")
async def workbench(
    request: Request,
    session: SessionDep,
    context: Auditor,
    nothing: Annotated[bool, Query()] = False,
) -> Response:
    """The day's figures, the audit held (if any) and "Claim next audit"."""
    return await _landing(request, session, context, nothing=nothing)


@router.post("/workbench/claim")
async def claim(session: SessionDep, settings: SettingsDep, context: Auditor) -> Response:
    """Claim the next audit (or get back the one held) and open it; nothing left: say so."""
    audit = await service.claim_next_audit(
        session,
        principal=context.principal,
        lease_minutes=settings.claim_lease_minutes,
        golden_rate=settings.golden_rate,
        golden_key=golden_selection_key(settings),
    )
    if audit is None:
        return RedirectResponse(f"{WORKBENCH}?nothing=true", status_code=303)
    return RedirectResponse(audit_path(audit.id), status_code=303)


@router.get("/workbench/audits/{audit_id}")
async def audit_page(
    request: Request, audit_id: uuid.UUID, session: SessionDep, context: Auditor
) -> Response:
    """An audit the auditor holds (blind, with the verdict form) or judged (the result)."""
    audit = await service.get_audit(session, principal=context.principal, audit_id=audit_id)
    return await _audit_page(request, session, context, audit)


def _labels(text: str) -> list[str] | None:
    """The expected labels typed in (commas, spaces or semicolons); none typed: None."""
    labels = [label for label in _LABEL_SEPARATORS.split(text.strip()) if label]
    return labels or None


def _verdict_of(form: dict[str, str]) -> VerdictCreate:
    """The verdict the form says. A "Correct" verdict ignores the fields of an incorrect one
    (the page hides them then)."""
    incorrect = form["outcome"] == "incorrect"
    data: dict[str, Any] = {"outcome": form["outcome"] or None}
    if form["comment"].strip():
        data["comment"] = form["comment"].strip()
    if incorrect:
        data["expected_action"] = form["expected_action"] or None
        data["severity"] = form["severity"] or None
        labels = _labels(form["expected_labels"])
        if labels is not None:
            data["expected_labels"] = labels
    return parse(VerdictCreate, data)


@router.post("/workbench/audits/{audit_id}/verdict")
async def submit_verdict(
    request: Request,
    audit_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    context: Auditor,
    outcome: Annotated[str, Form(max_length=_FIELD_LIMIT)] = "",
    expected_action: Annotated[str, Form(max_length=_FIELD_LIMIT)] = "",
    expected_labels: Annotated[str, Form(max_length=_LABELS_LIMIT)] = "",
    severity: Annotated[str, Form(max_length=_FIELD_LIMIT)] = "",
    comment: Annotated[str, Form(max_length=MAX_COMMENT_CHARS * 2)] = "",
) -> Response:
    """Judge the audit held: the result page on success; the form again, saying what is
    wrong, on bad input (422) or when the audit is no longer the auditor's (409)."""
    form = {
        "outcome": outcome,
        "expected_action": expected_action,
        "expected_labels": expected_labels,
        "severity": severity,
        "comment": comment,
    }
    try:
        data = _verdict_of(form)
        async with refusable(session, show=REFUSALS):
            await service.submit_verdict(
                session,
                principal=context.principal,
                audit_id=audit_id,
                data=data,
                dispute_window_hours=settings.dispute_window_hours,
            )
    except FormRefused as refused:
        general = [refused.detail] if refused.detail else refused.errors.get("", [])
        try:
            audit = await service.get_audit(session, principal=context.principal, audit_id=audit_id)
        except NotFound:
            if refused.status != 409:
                raise
            # Its lease ran out and another auditor holds it now.
            return await _landing(request, session, context, error=refused.detail, status_code=409)
        return await _audit_page(
            request,
            session,
            context,
            audit,
            form=form,
            errors=general,
            field_errors=refused.errors,
            status_code=refused.status,
        )
    return RedirectResponse(audit_path(audit_id), status_code=303)
