"""Escalation rules: create, read, change, and evaluate on demand.

Who: managers and admins. A market-scoped key works only with rules of one of its markets
(a rule without a market spans every market: only a key for every market sees it); another
market's rule is as unknown as one that does not exist (404).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.background_jobs.service import create_job
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.outbox import add_job
from shared.core.pagination import Keyset, KeysetPage
from shared.jobs import EvaluateEscalationRule
from shared.models import BackgroundJob, EscalationRule
from shared.reference import register_markets
from shared.schemas.escalations import (
    EscalationRuleCreate,
    EscalationRuleFields,
    EscalationRuleQuery,
    EscalationRuleRead,
    EscalationRuleUpdate,
)

EVALUATION_JOB_KIND = "escalation_evaluation"
RULE_ORDER = Keyset(EscalationRule.created_at, EscalationRule.id)
SCHEDULE_PERIOD = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


def rule_read(rule: EscalationRule) -> EscalationRuleRead:
    """The API's view of a rule."""
    return EscalationRuleRead.model_validate(rule, from_attributes=True)


def _snapshot(rule: EscalationRule) -> dict[str, Any]:
    return rule_read(rule).model_dump(mode="json")


def visible_rules(viewer: Principal) -> ColumnElement[bool]:
    """The rules ``viewer`` may see: all, or those of one of a market-scoped key's markets."""
    if viewer.markets is None:
        return true()
    return EscalationRule.market.in_(viewer.markets)


def _check_market(actor: Principal, market: str | None) -> None:
    if actor.markets is None:
        return
    if market is None:
        raise Forbidden("a market-scoped key may only make rules about one of its markets")
    if market not in actor.markets:
        raise Forbidden(f"this key may not make rules about market {market}")


async def create_rule(
    session: AsyncSession, *, data: EscalationRuleCreate, actor: Principal, now: datetime
) -> EscalationRule:
    """Store a rule, due for its first evaluation now; 409 for a name in use."""
    _check_market(actor, data.market)
    if data.market is not None:
        await register_markets(session, [data.market])
    rule = EscalationRule(
        id=uuid.uuid4(),
        **data.model_dump(),
        created_by=actor.reviewer_id or actor.key_id,
        next_evaluation_at=now,
    )
    session.add(rule)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a rule named {data.name!r} exists already") from exc
    await record_change(
        session,
        actor=actor,
        action="escalation_rule.created",
        entity_type="escalation_rule",
        entity_id=rule.id,
        after=_snapshot(rule),
    )
    return rule


async def get_rule(
    session: AsyncSession, *, rule_id: uuid.UUID, viewer: Principal, lock: bool = False
) -> EscalationRule:
    """The rule, or 404 (also outside a market-scoped key's markets)."""
    query = select(EscalationRule).where(EscalationRule.id == rule_id, visible_rules(viewer))
    if lock:
        query = query.with_for_update()
    rule = await session.scalar(query)
    if rule is None:
        raise NotFound("escalation rule not found")
    return rule


async def list_rules(
    session: AsyncSession, *, filters: EscalationRuleQuery, viewer: Principal
) -> KeysetPage[EscalationRule]:
    """A page of the rules ``viewer`` may see, oldest first."""
    if filters.market is not None and not viewer.can_see_market(filters.market):
        raise Forbidden(f"this key may not see market {filters.market}")
    query = select(EscalationRule).where(visible_rules(viewer))
    if filters.market is not None:
        query = query.where(EscalationRule.market == filters.market)
    if filters.metric is not None:
        query = query.where(EscalationRule.metric == filters.metric)
    if filters.enabled is not None:
        query = query.where(EscalationRule.enabled.is_(filters.enabled))
    rows = list(await session.scalars(RULE_ORDER.apply(query, filters)))
    return RULE_ORDER.page(rows, filters)


async def update_rule(
    session: AsyncSession,
    *,
    rule_id: uuid.UUID,
    data: EscalationRuleUpdate,
    actor: Principal,
    now: datetime,
) -> EscalationRule:
    """Change the fields sent; the rule as changed must still be a valid rule (422). A rule
    enabled again is due for evaluation now."""
    rule = await get_rule(session, rule_id=rule_id, viewer=actor, lock=True)
    before = _snapshot(rule)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise UnprocessableEntity(
            "name cannot be removed", errors=[{"loc": ["body", "name"], "msg": "required"}]
        )
    merged = {
        name: value
        for name, value in {**before, **changes}.items()
        if name in EscalationRuleFields.model_fields
    }
    try:
        EscalationRuleFields.model_validate(merged)
    except ValidationError as exc:
        raise UnprocessableEntity(
            "the rule as changed is not valid",
            errors=[
                {"loc": ["body", *error["loc"]], "msg": error["msg"]} for error in exc.errors()
            ],
        ) from exc
    was_enabled = rule.enabled
    for name, value in changes.items():
        if name == "enabled" and value is None:
            continue
        setattr(rule, name, value)
    if rule.enabled and not was_enabled:
        rule.next_evaluation_at = now
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a rule named {rule.name!r} exists already") from exc
    await record_change(
        session,
        actor=actor,
        action="escalation_rule.updated",
        entity_type="escalation_rule",
        entity_id=rule.id,
        before=before,
        after=_snapshot(rule),
    )
    return rule


async def request_evaluation(
    session: AsyncSession, *, rule_id: uuid.UUID, actor: Principal
) -> BackgroundJob:
    """Queue an evaluation of the rule now (a job row and its outbox entry)."""
    rule = await get_rule(session, rule_id=rule_id, viewer=actor)
    params = {"rule_id": str(rule.id), "market": rule.market}
    job = await create_job(
        session, kind=EVALUATION_JOB_KIND, params=params, requested_by=actor.key_id
    )
    await add_job(session, EvaluateEscalationRule(job_id=job.id, rule_id=rule.id))
    await record_change(
        session,
        actor=actor,
        action="escalation_rule.evaluation_requested",
        entity_type="background_job",
        entity_id=job.id,
        after={"kind": job.kind, "params": params, "status": job.status},
    )
    return job
