"""Disagreements as people read them: the views, who may see which, the listings.

Every state change (open, dispute, resolve, the scheduled close and reminder) is in
``shared.disagreements.lifecycle``, used by the API and the report worker alike.
``visible_to`` is the one rule of who sees which disagreement: every list and read here, and
every change in the lifecycle, applies it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import Principal, Role
from shared.core.errors import Forbidden, NotFound
from shared.core.pagination import Keyset, KeysetPage
from shared.models import Disagreement, DisagreementChange, Verdict
from shared.schemas.disagreements import (
    DisagreementChangeRead,
    DisagreementDetail,
    DisagreementQuery,
    DisagreementRead,
)


def disagreement_read(disagreement: Disagreement, verdict: Verdict) -> DisagreementRead:
    """The API view of a disagreement, with what its verdict says and how it counts."""
    return DisagreementRead(
        id=disagreement.id,
        audit_id=disagreement.audit_id,
        verdict_id=disagreement.verdict_id,
        decision_id=verdict.decision_id,
        moderator_id=disagreement.moderator_id,
        auditor_id=disagreement.auditor_id,
        market=disagreement.market,
        queue=verdict.queue,
        status=disagreement.status,
        verdict_outcome=verdict.outcome,
        effective_outcome=verdict.effective_outcome,
        error_type=verdict.error_type,
        severity=verdict.severity,
        expected_action=verdict.expected_action,
        dispute_deadline=disagreement.dispute_deadline,
        dispute_reason=disagreement.dispute_reason,
        disputed_at=disagreement.disputed_at,
        resolved_by=disagreement.resolved_by,
        resolution_note=disagreement.resolution_note,
        resolved_at=disagreement.resolved_at,
        sla_reminded_at=disagreement.sla_reminded_at,
        created_at=disagreement.created_at,
    )


def visible_to(viewer: Principal) -> ColumnElement[bool]:
    """Which disagreements ``viewer`` may see: a moderator key only its own reviewer's (none
    when it is bound to no reviewer), a market-scoped key only its markets'."""
    clauses: list[ColumnElement[bool]] = []
    if viewer.role == Role.MODERATOR:
        clauses.append(
            Disagreement.moderator_id == viewer.reviewer_id
            if viewer.reviewer_id is not None
            else false()
        )
    if viewer.markets is not None:
        clauses.append(Disagreement.market.in_(viewer.markets))
    return and_(true(), *clauses)


async def visible_disagreement(
    session: AsyncSession, *, disagreement_id: uuid.UUID, viewer: Principal, lock: bool = False
) -> Disagreement:
    """The disagreement, 404 when there is none or it lies outside a market-scoped key's
    markets (another market's object must not be revealed to exist), 403 when ``viewer``
    may not see it otherwise; ``lock`` takes its row ``FOR UPDATE`` (reloaded) before its
    state is looked at."""
    in_markets = true() if viewer.markets is None else Disagreement.market.in_(viewer.markets)
    query = select(
        Disagreement, visible_to(viewer).label("visible"), in_markets.label("in_markets")
    ).where(Disagreement.id == disagreement_id)
    if lock:
        query = query.with_for_update(of=Disagreement).execution_options(populate_existing=True)
    row = (await session.execute(query)).first()
    if row is None or not row.in_markets:
        raise NotFound("disagreement not found")
    if not row.visible:
        raise Forbidden("this key may not see this disagreement")
    disagreement: Disagreement = row[0]
    return disagreement


async def _history(
    session: AsyncSession, disagreement_id: uuid.UUID
) -> list[DisagreementChangeRead]:
    changes = await session.scalars(
        select(DisagreementChange)
        .where(DisagreementChange.disagreement_id == disagreement_id)
        .order_by(DisagreementChange.id)
    )
    return [DisagreementChangeRead.model_validate(change) for change in changes]


async def disagreement_detail(
    session: AsyncSession, disagreement: Disagreement, verdict: Verdict
) -> DisagreementDetail:
    """A disagreement with its history of changes."""
    return DisagreementDetail(
        **disagreement_read(disagreement, verdict).model_dump(),
        history=await _history(session, disagreement.id),
    )


async def get_disagreement(
    session: AsyncSession, *, disagreement_id: uuid.UUID, viewer: Principal
) -> DisagreementDetail:
    """A disagreement with its history; 403 outside the viewer's moderator or markets."""
    disagreement = await visible_disagreement(
        session, disagreement_id=disagreement_id, viewer=viewer
    )
    verdict = await session.get(Verdict, disagreement.verdict_id)
    assert verdict is not None  # a foreign key guarantees it
    return await disagreement_detail(session, disagreement, verdict)


DISAGREEMENT_ORDER = Keyset(Disagreement.created_at, Disagreement.id, descending=True)


async def list_disagreements(
    session: AsyncSession,
    *,
    filters: DisagreementQuery,
    viewer: Principal,
) -> KeysetPage[DisagreementRead]:
    """A page of disagreements, newest first.

    Asking for another moderator's (with a moderator key) or for a market outside the key's
    markets is a 403, not an empty page: the caller is told the question is not theirs.
    """
    if viewer.role == Role.MODERATOR and filters.moderator_id not in (None, viewer.reviewer_id):
        raise Forbidden("a moderator key sees only its own reviewer's disagreements")
    if filters.market is not None and not viewer.can_see_market(filters.market):
        raise Forbidden(f"this key may not see market {filters.market}")
    query = (
        select(Disagreement, Verdict)
        .join(Verdict, Verdict.id == Disagreement.verdict_id)
        .where(visible_to(viewer))
    )
    if filters.status is not None:
        query = query.where(Disagreement.status == filters.status)
    if filters.moderator_id is not None:
        query = query.where(Disagreement.moderator_id == filters.moderator_id)
    if filters.market is not None:
        query = query.where(Disagreement.market == filters.market)
    rows = (await session.execute(DISAGREEMENT_ORDER.apply(query, filters))).all()
    items = [disagreement_read(disagreement, verdict) for disagreement, verdict in rows]
    return DISAGREEMENT_ORDER.page(items, filters)
