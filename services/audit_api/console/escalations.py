"""Console pages: escalations and their root-cause analysis.

The list (unresolved first, or by status), one escalation (the breach figures, its slice,
the history of breaches), the RCA form (owner, root cause, the five whys), corrective
actions with owners and due dates, the status moves up to "resolved", and opening one by
hand. Every page calls ``shared.escalations`` as ``/v1/escalations`` does: the same roles
(``ESCALATION_ROLES``), the same visibility (``visible_escalations``), the same workflow.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.forms import (
    REFUSALS,
    FormPage,
    FormRefused,
    day_or_text,
    lines,
    parse,
    query,
    refusable,
)
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep
from shared.escalations import lifecycle, queries
from shared.models.base import utcnow
from shared.schemas.escalations import (
    MAX_ANALYSIS_STEPS,
    ActionCreate,
    EscalationCreate,
    EscalationDetail,
    EscalationQuery,
    EscalationUpdate,
    RootCause,
)

router = APIRouter()

# The API's roles for every escalation operation (GET/PATCH /v1/escalations, actions).
RcaWorker = Annotated[ConsoleContext, Depends(console_page(*queries.ESCALATION_ROLES))]
ROOT_CAUSES: tuple[str, ...] = RootCause.__args__  # type: ignore[attr-defined]
STATUSES = ("open", "investigating", "actions_pending", "resolved")
# The list's views besides one status: what is not resolved yet (the default), everything.
UNRESOLVED, EVERYTHING = "unresolved", "all"
UNRESOLVED_LIMIT = 200
PAGE_SIZE = 50
# Evidence figures shown first, in this order (the rest follow as stored).
EVIDENCE_ORDER = (
    "metric",
    "observed",
    "ci_low",
    "ci_high",
    "baseline",
    "relative_change",
    "p_value",
    "q_value",
    "audited",
    "baseline_audited",
    "threshold",
    "relative_drop",
    "alpha",
    "min_audits",
)
SHARES = frozenset({"observed", "ci_low", "ci_high", "baseline", "threshold", "relative_change"})
P_VALUES = frozenset({"p_value", "q_value", "alpha"})


@router.get("/escalations")
async def list_page(
    request: Request,
    session: SessionDep,
    context: RcaWorker,
    status: Annotated[str, Query(max_length=20)] = UNRESOLVED,
    market: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """Escalations newest first: by default those not resolved (the API's "open
    escalations"), else of one status or all (``GET /v1/escalations``)."""
    viewer = context.principal
    next_cursor: str | None = None
    if status in ("", UNRESOLVED):
        status = UNRESOLVED
        filters = query(EscalationQuery, market=market)
        if filters.market is not None and not viewer.can_see_market(filters.market):
            # The API's rule for a market filter outside the key's markets.
            await queries.list_escalations(session, filters=filters, viewer=viewer)
        unresolved = await queries.open_escalations_of(
            session, viewer=viewer, market=filters.market, limit=UNRESOLVED_LIMIT
        )
        actions = await queries.actions_of(session, [row.id for row in unresolved])
        items = [queries.escalation_read(row, actions[row.id]) for row in unresolved]
    else:
        filters = query(
            EscalationQuery,
            status=None if status == EVERYTHING else status,
            market=market,
            cursor=cursor,
            limit=PAGE_SIZE,
        )
        page = await queries.list_escalations(session, filters=filters, viewer=viewer)
        items, next_cursor = page.items, page.next_cursor
    return render(
        request,
        "escalations/list.html",
        context=context,
        escalations=items,
        next_cursor=next_cursor,
        status=status,
        market=filters.market or "",
        statuses=STATUSES,
        today=utcnow().date(),
    )


_new_form = FormPage("escalations/new.html")


@router.get("/escalations/new")
async def new_page(request: Request, context: RcaWorker) -> Response:
    """The form to open an escalation by hand."""
    market = (context.principal.markets or ("",))[0]
    return _new_form(request, context, values={"market": market}, errors=[])


@router.post("/escalations")
async def open_escalation(
    request: Request,
    session: SessionDep,
    context: RcaWorker,
    title: Annotated[str, Form(max_length=500)] = "",
    description: Annotated[str, Form(max_length=20_000)] = "",
    market: Annotated[str, Form(max_length=16)] = "",
    queue: Annotated[str, Form(max_length=200)] = "",
    policy: Annotated[str, Form(max_length=64)] = "",
    moderator: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Open an escalation about a slice (``POST /v1/escalations``); its page next."""
    values = {
        "title": title,
        "description": description,
        "market": market,
        "queue": queue,
        "policy": policy,
        "moderator": moderator,
    }
    parts = {"market": market, "queue": queue, "policy": policy, "moderator": moderator}
    try:
        data = parse(
            EscalationCreate,
            {
                "title": title,
                "description": description,
                "slice": {name: value.strip() for name, value in parts.items() if value.strip()},
            },
        )
        async with refusable(session):
            escalation = await lifecycle.open_manual_escalation(
                session, data=data, actor=context.principal, now=utcnow()
            )
    except FormRefused as refused:
        return _new_form(
            request, context, values=values, errors=refused.messages, status_code=refused.status
        )
    return RedirectResponse(f"/console/escalations/{escalation.id}", status_code=303)


def _kind(name: str) -> str:
    """How a figure is written: a share (percent), a p-value, or a plain number."""
    return "share" if name in SHARES else "p" if name in P_VALUES else "number"


def _evidence_rows(evidence: Mapping[str, Any] | None) -> list[tuple[str, Any, str]]:
    """(name, value, how it is written) of the breach's figures, the known ones first."""
    if not evidence:
        return []
    names = [name for name in EVIDENCE_ORDER if name in evidence]
    names += [
        name
        for name in evidence
        if name not in EVIDENCE_ORDER and not isinstance(evidence[name], dict | list)
    ]
    return [(name, evidence[name], _kind(name)) for name in names]


async def _detail(
    request: Request,
    session: AsyncSession,
    context: ConsoleContext,
    escalation_id: uuid.UUID,
    *,
    errors: Mapping[str, list[str]] | None = None,
    values: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    escalation = await queries.get_escalation(
        session, escalation_id=escalation_id, viewer=context.principal
    )
    detail: EscalationDetail = await queries.escalation_detail(session, escalation)
    moves = sorted(
        (target for current, target in lifecycle.ALLOWED_MOVES if current == detail.status),
        key=STATUSES.index,
    )
    return render(
        request,
        "escalations/detail.html",
        context=context,
        status_code=status_code,
        escalation=detail,
        evidence=_evidence_rows(detail.evidence),
        history=detail.history,
        moves=moves,
        root_causes=ROOT_CAUSES,
        max_steps=MAX_ANALYSIS_STEPS,
        open_actions=sum(1 for action in detail.actions if action.completed_at is None),
        today=utcnow().date(),
        errors=errors or {},
        values=values or {},
    )


@router.get("/escalations/{escalation_id}")
async def detail_page(
    request: Request, session: SessionDep, context: RcaWorker, escalation_id: uuid.UUID
) -> Response:
    """One escalation (``GET /v1/escalations/{id}``) with the RCA forms."""
    return await _detail(request, session, context, escalation_id)


@router.post("/escalations/{escalation_id}/rca")
async def save_rca(
    request: Request,
    session: SessionDep,
    context: RcaWorker,
    escalation_id: uuid.UUID,
    owner_id: Annotated[str, Form(max_length=128)] = "",
    root_cause: Annotated[str, Form(max_length=64)] = "",
    analysis: Annotated[str, Form(max_length=25_000)] = "",
) -> Response:
    """The root-cause analysis (``PATCH /v1/escalations/{id}``): owner, root cause and the
    five whys (one a line); an empty field clears it."""
    values = {"owner_id": owner_id, "root_cause": root_cause, "analysis": analysis}
    try:
        data = parse(
            EscalationUpdate,
            {
                "owner_id": owner_id.strip() or None,
                "root_cause": root_cause or None,
                "analysis": lines(analysis),
            },
        )
        async with refusable(session, show=REFUSALS):
            await lifecycle.update_escalation(
                session,
                escalation_id=escalation_id,
                data=data,
                actor=context.principal,
                now=utcnow(),
            )
    except FormRefused as refused:
        return await _detail(
            request,
            session,
            context,
            escalation_id,
            errors={"rca": refused.messages},
            values=values,
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/escalations/{escalation_id}#rca", status_code=303)


@router.post("/escalations/{escalation_id}/status")
async def move(
    request: Request,
    session: SessionDep,
    context: RcaWorker,
    escalation_id: uuid.UUID,
    status: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Move the escalation on (``PATCH`` with ``status``): investigating, actions pending,
    back to investigating, resolved. A move the workflow forbids, or resolving while an
    action is open, comes back as 409 with the reason."""
    try:
        data = parse(EscalationUpdate, {"status": status})
        async with refusable(session, show=REFUSALS):
            await lifecycle.update_escalation(
                session,
                escalation_id=escalation_id,
                data=data,
                actor=context.principal,
                now=utcnow(),
            )
    except FormRefused as refused:
        return await _detail(
            request,
            session,
            context,
            escalation_id,
            errors={"status": refused.messages},
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/escalations/{escalation_id}", status_code=303)


@router.post("/escalations/{escalation_id}/actions")
async def add_action(
    request: Request,
    session: SessionDep,
    context: RcaWorker,
    escalation_id: uuid.UUID,
    title: Annotated[str, Form(max_length=500)] = "",
    owner_id: Annotated[str, Form(max_length=128)] = "",
    due_on: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A corrective action with its owner and due date (``POST .../actions``)."""
    values = {"action_title": title, "action_owner": owner_id, "action_due": due_on}
    try:
        data = parse(
            ActionCreate,
            {"title": title, "owner_id": owner_id, "due_on": day_or_text(due_on)},
        )
        async with refusable(session, show=REFUSALS):
            await lifecycle.add_action(
                session, escalation_id=escalation_id, data=data, actor=context.principal
            )
    except FormRefused as refused:
        return await _detail(
            request,
            session,
            context,
            escalation_id,
            errors={"action": refused.messages},
            values=values,
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/escalations/{escalation_id}#actions", status_code=303)


@router.post("/escalations/{escalation_id}/actions/{action_id}/complete")
async def complete_action(
    session: SessionDep, context: RcaWorker, escalation_id: uuid.UUID, action_id: uuid.UUID
) -> Response:
    """Mark a corrective action complete (``POST .../actions/{id}/complete``)."""
    await lifecycle.complete_action(
        session,
        escalation_id=escalation_id,
        action_id=action_id,
        actor=context.principal,
        now=utcnow(),
    )
    return RedirectResponse(f"/console/escalations/{escalation_id}#actions", status_code=303)
