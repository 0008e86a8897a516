"""Reading escalations: who sees which, the API's views, the list and one escalation.

Who: managers, admins, policy POCs and QA auditors (``ESCALATION_ROLES``). A market-scoped
key sees the escalations of its markets; one about no market (a moderator's or a policy's
slice across markets) only a key for every market sees. Outside its reach an escalation is
as unknown as one that does not exist (404).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import Principal, Role
from shared.core.errors import Forbidden, NotFound
from shared.core.pagination import Keyset, KeysetPage
from shared.models import Escalation, EscalationAction, EscalationBreach
from shared.schemas.escalations import (
    ActionRead,
    BreachRead,
    EscalationDetail,
    EscalationQuery,
    EscalationRead,
)

# Anyone with a role in RCA work: they open escalations by hand, investigate and act.
ESCALATION_ROLES = frozenset({Role.MANAGER, Role.ADMIN, Role.POLICY_POC, Role.QA_AUDITOR})
ESCALATION_ORDER = Keyset(Escalation.opened_at, Escalation.id, descending=True)


def visible_escalations(viewer: Principal) -> ColumnElement[bool]:
    """The escalations ``viewer`` may see."""
    if viewer.markets is None:
        return true()
    if not viewer.markets:
        return false()
    return Escalation.market.in_(viewer.markets)


def action_read(action: EscalationAction) -> ActionRead:
    """The API's view of a corrective action."""
    return ActionRead(
        id=action.id,
        title=action.title,
        owner_id=action.owner_id,
        due_on=action.due_on,
        completed_at=action.completed_at,
        completed_by=action.completed_by,
    )


def escalation_read(escalation: Escalation, actions: Sequence[EscalationAction]) -> EscalationRead:
    """The API's view of an escalation with its actions (oldest first)."""
    return EscalationRead(
        id=escalation.id,
        rule_id=escalation.rule_id,
        slice=dict(escalation.slice),
        status=escalation.status,
        evidence=escalation.evidence,
        opened_at=escalation.opened_at,
        owner_id=escalation.owner_id,
        root_cause=escalation.root_cause,
        actions=[action_read(action) for action in actions],
        title=escalation.title,
        description=escalation.description,
        market=escalation.market,
        analysis=list(escalation.analysis or []),
        opened_by=escalation.opened_by,
        resolved_at=escalation.resolved_at,
        recovered_at=escalation.recovered_at,
        reopened_count=escalation.reopened_count,
    )


async def actions_of(
    session: AsyncSession, escalation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[EscalationAction]]:
    """The actions of each escalation, oldest first, in one query."""
    grouped: dict[uuid.UUID, list[EscalationAction]] = defaultdict(list)
    if not escalation_ids:
        return grouped
    rows = await session.scalars(
        select(EscalationAction)
        .where(EscalationAction.escalation_id.in_(escalation_ids))
        .order_by(EscalationAction.created_at, EscalationAction.id)
    )
    for action in rows:
        grouped[action.escalation_id].append(action)
    return grouped


async def get_escalation(
    session: AsyncSession, *, escalation_id: uuid.UUID, viewer: Principal, lock: bool = False
) -> Escalation:
    """The escalation, or 404 (also outside the viewer's markets). ``lock``: FOR UPDATE."""
    query = select(Escalation).where(Escalation.id == escalation_id, visible_escalations(viewer))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    escalation = await session.scalar(query)
    if escalation is None:
        raise NotFound("escalation not found")
    return escalation


async def escalation_detail(session: AsyncSession, escalation: Escalation) -> EscalationDetail:
    """The escalation with its actions and its history of breaches."""
    actions = (await actions_of(session, [escalation.id]))[escalation.id]
    breaches = await session.scalars(
        select(EscalationBreach)
        .where(EscalationBreach.escalation_id == escalation.id)
        .order_by(EscalationBreach.evaluated_at, EscalationBreach.id)
    )
    return EscalationDetail(
        **escalation_read(escalation, actions).model_dump(),
        history=[
            BreachRead(evaluated_at=breach.evaluated_at, evidence=breach.evidence)
            for breach in breaches
        ],
    )


async def list_escalations(
    session: AsyncSession, *, filters: EscalationQuery, viewer: Principal
) -> KeysetPage[EscalationRead]:
    """A page of the escalations ``viewer`` may see, newest first; 403 for a market outside
    a market-scoped key's markets."""
    if filters.market is not None and not viewer.can_see_market(filters.market):
        raise Forbidden(f"this key may not see market {filters.market}")
    query = select(Escalation).where(visible_escalations(viewer))
    if filters.status is not None:
        query = query.where(Escalation.status == filters.status)
    if filters.rule_id is not None:
        query = query.where(Escalation.rule_id == filters.rule_id)
    if filters.market is not None:
        query = query.where(Escalation.market == filters.market)
    rows = list(await session.scalars(ESCALATION_ORDER.apply(query, filters)))
    page = ESCALATION_ORDER.page(rows, filters)
    actions = await actions_of(session, [row.id for row in page.items])
    return KeysetPage(
        items=[escalation_read(row, actions[row.id]) for row in page.items],
        next_cursor=page.next_cursor,
    )


async def open_escalations_of(
    session: AsyncSession, *, viewer: Principal, market: str | None, limit: int
) -> list[Escalation]:
    """The unresolved escalations ``viewer`` may see (of ``market`` when given), newest
    first, at most ``limit``."""
    query = select(Escalation).where(visible_escalations(viewer), Escalation.status != "resolved")
    if market is not None:
        query = query.where(Escalation.market == market)
    query = query.order_by(Escalation.opened_at.desc(), Escalation.id.desc()).limit(limit)
    return list(await session.scalars(query))
