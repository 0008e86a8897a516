"""Escalation rules and RCA escalations (``/v1/escalation-rules``, ``/v1/escalations``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.audit_api.deps import SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.escalations import lifecycle, queries, rules
from shared.models.base import utcnow
from shared.schemas.common import Page, Problem
from shared.schemas.escalations import (
    ActionCreate,
    ActionRead,
    EscalationCreate,
    EscalationDetail,
    EscalationQuery,
    EscalationRead,
    EscalationRuleCreate,
    EscalationRuleQuery,
    EscalationRuleRead,
    EscalationRuleUpdate,
    EscalationUpdate,
    EvaluationAccepted,
)

router = APIRouter(prefix="/v1", tags=["escalations"])

RuleAdminDep = Annotated[Principal, Depends(require_roles(Role.MANAGER, Role.ADMIN))]
RcaDep = Annotated[Principal, Depends(require_roles(*queries.ESCALATION_ROLES))]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post(
    "/escalation-rules", status_code=201, response_model=EscalationRuleRead, responses=_PROBLEMS
)
async def create_rule(
    body: EscalationRuleCreate, session: SessionDep, principal: RuleAdminDep
) -> EscalationRuleRead:
    """A rule: which metric in which slice (or each slice of ``group_by``), over which window,
    breaching when the interval lies wholly on the wrong side of ``threshold`` or the drop
    from the baseline window is ``relative_drop`` or more with p < ``alpha``
    (Benjamini-Hochberg adjusted over a grouped rule's slices). Evaluated ``hourly`` or
    ``daily``, the first time within a minute. A market-scoped key makes rules of its
    markets only (403)."""
    rule = await rules.create_rule(session, data=body, actor=principal, now=utcnow())
    return rules.rule_read(rule)


@router.get("/escalation-rules", response_model=Page[EscalationRuleRead], responses=_PROBLEMS)
async def list_rules(
    query: Annotated[EscalationRuleQuery, Query()], session: SessionDep, principal: RuleAdminDep
) -> Page[EscalationRuleRead]:
    """Rules, oldest first; filter by ``market``, ``metric``, ``enabled``."""
    page = await rules.list_rules(session, filters=query, viewer=principal)
    return Page(items=[rules.rule_read(rule) for rule in page.items], next_cursor=page.next_cursor)


@router.get("/escalation-rules/{rule_id}", response_model=EscalationRuleRead, responses=_PROBLEMS)
async def get_rule(
    rule_id: uuid.UUID, session: SessionDep, principal: RuleAdminDep
) -> EscalationRuleRead:
    rule = await rules.get_rule(session, rule_id=rule_id, viewer=principal)
    return rules.rule_read(rule)


@router.patch("/escalation-rules/{rule_id}", response_model=EscalationRuleRead, responses=_PROBLEMS)
async def update_rule(
    rule_id: uuid.UUID, body: EscalationRuleUpdate, session: SessionDep, principal: RuleAdminDep
) -> EscalationRuleRead:
    """Enable or disable a rule, or change its thresholds, window or schedule (the rule as
    changed is checked like a new one: 422)."""
    rule = await rules.update_rule(
        session, rule_id=rule_id, data=body, actor=principal, now=utcnow()
    )
    return rules.rule_read(rule)


@router.post(
    "/escalation-rules/{rule_id}/evaluate",
    status_code=202,
    response_model=EvaluationAccepted,
    responses=_PROBLEMS,
)
async def evaluate_rule(
    rule_id: uuid.UUID, session: SessionDep, principal: RuleAdminDep
) -> EvaluationAccepted:
    """Evaluate the rule now; poll ``/v1/jobs/{job_id}`` for its summary."""
    job = await rules.request_evaluation(session, rule_id=rule_id, actor=principal)
    return EvaluationAccepted(job_id=job.id)


@router.post("/escalations", status_code=201, response_model=EscalationRead, responses=_PROBLEMS)
async def open_escalation(
    body: EscalationCreate, session: SessionDep, principal: RcaDep
) -> EscalationRead:
    """Open an escalation by hand about a slice; ``escalation.opened`` goes to the
    subscribed channels. A market-scoped key opens them only in its markets (403)."""
    escalation = await lifecycle.open_manual_escalation(
        session, data=body, actor=principal, now=utcnow()
    )
    return queries.escalation_read(escalation, [])


@router.get("/escalations", response_model=Page[EscalationRead], responses=_PROBLEMS)
async def list_escalations(
    query: Annotated[EscalationQuery, Query()], session: SessionDep, principal: RcaDep
) -> Page[EscalationRead]:
    """Escalations, newest first; filter by ``status``, ``rule_id``, ``market``."""
    page = await queries.list_escalations(session, filters=query, viewer=principal)
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/escalations/{escalation_id}", response_model=EscalationDetail, responses=_PROBLEMS)
async def get_escalation(
    escalation_id: uuid.UUID, session: SessionDep, principal: RcaDep
) -> EscalationDetail:
    """An escalation with its actions and its history of breaches."""
    escalation = await queries.get_escalation(
        session, escalation_id=escalation_id, viewer=principal
    )
    return await queries.escalation_detail(session, escalation)


@router.patch("/escalations/{escalation_id}", response_model=EscalationDetail, responses=_PROBLEMS)
async def update_escalation(
    escalation_id: uuid.UUID, body: EscalationUpdate, session: SessionDep, principal: RcaDep
) -> EscalationDetail:
    """Set the owner, root cause, analysis (the five whys) and status: ``open ->
    investigating -> actions_pending -> resolved`` (or back to ``investigating``); another
    move is a 409, and so is resolving while an action is open."""
    escalation = await lifecycle.update_escalation(
        session, escalation_id=escalation_id, data=body, actor=principal, now=utcnow()
    )
    return await queries.escalation_detail(session, escalation)


@router.post(
    "/escalations/{escalation_id}/actions",
    status_code=201,
    response_model=ActionRead,
    responses=_PROBLEMS,
)
async def add_action(
    escalation_id: uuid.UUID, body: ActionCreate, session: SessionDep, principal: RcaDep
) -> ActionRead:
    """Add a corrective action with its owner and due date (409 on a resolved escalation);
    past its due date its owner hears of it once a day (``escalation.action_overdue``)."""
    action = await lifecycle.add_action(
        session, escalation_id=escalation_id, data=body, actor=principal
    )
    return queries.action_read(action)


@router.post(
    "/escalations/{escalation_id}/actions/{action_id}/complete",
    response_model=ActionRead,
    responses=_PROBLEMS,
)
async def complete_action(
    escalation_id: uuid.UUID, action_id: uuid.UUID, session: SessionDep, principal: RcaDep
) -> ActionRead:
    """Mark a corrective action complete (409 when it is already)."""
    action = await lifecycle.complete_action(
        session,
        escalation_id=escalation_id,
        action_id=action_id,
        actor=principal,
        now=utcnow(),
    )
    return queries.action_read(action)
