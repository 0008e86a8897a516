"""Reading decisions and intake counts, within what the caller may see.

``visible_decisions`` and ``visible_intake_rollups`` are the one rule of who sees which
(every list and read applies it): a moderator key only its own reviewer's decisions (none
when bound to no reviewer), a market-scoped key only its markets'. Intake itself (the signed
webhook) stays with the API (``services/audit_api/decisions``); reads are here so a worker
(a scheduled report, an escalation check) can run the same queries.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import Principal, Role
from shared.core.errors import Forbidden, NotFound
from shared.core.pagination import Keyset, KeysetPage
from shared.models import ALL_POLICIES, Decision, QualityRollup, Source
from shared.schemas.decisions import DecisionQuery, DecisionRead, IntakeRollupQuery

DECISION_ORDER = Keyset(Decision.id, descending=True)
ROLLUP_ORDER = Keyset(
    QualityRollup.day,
    QualityRollup.market,
    QualityRollup.queue,
    QualityRollup.moderator_id,
)


def visible_decisions(viewer: Principal) -> ColumnElement[bool]:
    """Which decisions ``viewer`` may see: a moderator key only its own reviewer's (none
    when it is bound to no reviewer), a market-scoped key only its markets'."""
    clauses: list[ColumnElement[bool]] = []
    if viewer.role == Role.MODERATOR:
        clauses.append(
            Decision.moderator_id == viewer.reviewer_id
            if viewer.reviewer_id is not None
            else false()
        )
    if viewer.markets is not None:
        clauses.append(Decision.market.in_(viewer.markets))
    return and_(true(), *clauses)


def visible_intake_rollups(viewer: Principal) -> ColumnElement[bool]:
    """Which intake counts ``viewer`` may see: a market-scoped key only its markets'."""
    if viewer.markets is None:
        return true()
    return QualityRollup.market.in_(viewer.markets)


def decision_read(decision: Decision, source_name: str) -> DecisionRead:
    """The API view of a stored decision: the event's fields plus id, source, received_at."""
    return DecisionRead(
        id=decision.id,
        source=source_name,
        event_id=decision.event_id,
        content_id=decision.content_id,
        content_type=decision.content_type,
        queue=decision.queue,
        market=decision.market,
        language=decision.language,
        moderator_id=decision.moderator_id,
        action=decision.action,
        policy_labels=decision.policy_labels,
        decided_at=decision.decided_at,
        handling_time_ms=decision.handling_time_ms,
        metadata=decision.metadata_,
        received_at=decision.received_at,
    )


async def list_decisions(
    session: AsyncSession, *, filters: DecisionQuery, viewer: Principal
) -> KeysetPage[DecisionRead]:
    """A page of the decisions ``viewer`` may see, newest first (``DECISION_ORDER``); asking
    a moderator key for another moderator's is a 403."""
    if viewer.role == Role.MODERATOR and filters.moderator_id not in (None, viewer.reviewer_id):
        raise Forbidden("a moderator key sees only its own reviewer's decisions")
    query = (
        select(Decision, Source.name)
        .join(Source, Source.id == Decision.source_id)
        .where(visible_decisions(viewer))
    )
    if filters.market is not None:
        query = query.where(Decision.market == filters.market)
    if filters.queue is not None:
        query = query.where(Decision.queue == filters.queue)
    if filters.moderator_id is not None:
        query = query.where(Decision.moderator_id == filters.moderator_id)
    if filters.policy_label is not None:
        query = query.where(Decision.policy_labels.contains([filters.policy_label]))
    if filters.from_ is not None:
        query = query.where(Decision.decided_at >= filters.from_)
    if filters.to is not None:
        query = query.where(Decision.decided_at < filters.to)
    rows = (await session.execute(DECISION_ORDER.apply(query, filters))).all()
    return DECISION_ORDER.page([decision_read(decision, name) for decision, name in rows], filters)


async def get_decision(
    session: AsyncSession, *, decision_id: int, viewer: Principal
) -> DecisionRead:
    """One decision; 404 when there is none or ``viewer`` may not see it."""
    row = (
        await session.execute(
            select(Decision, Source.name)
            .join(Source, Source.id == Decision.source_id)
            .where(Decision.id == decision_id, visible_decisions(viewer))
        )
    ).first()
    if row is None:
        raise NotFound("decision not found")
    return decision_read(row[0], row[1])


async def list_intake_rollups(
    session: AsyncSession, *, filters: IntakeRollupQuery, viewer: Principal
) -> KeysetPage[QualityRollup]:
    """A page of daily intake counts ordered by (day, market, queue, moderator).

    The counts are the decision side of the analytics rollups' total rows
    (``quality_rollups`` with ``policy = ALL_POLICIES``): one source of truth for decisions
    counted. A slice with verdicts but no counted decision yet is left out.
    """
    table = QualityRollup
    query = select(table).where(
        table.policy == ALL_POLICIES, table.decisions > 0, visible_intake_rollups(viewer)
    )
    if filters.market is not None:
        query = query.where(table.market == filters.market)
    if filters.queue is not None:
        query = query.where(table.queue == filters.queue)
    if filters.moderator_id is not None:
        query = query.where(table.moderator_id == filters.moderator_id)
    if filters.from_ is not None:
        query = query.where(table.day >= filters.from_)
    if filters.to is not None:
        query = query.where(table.day <= filters.to)
    rows = list(await session.scalars(ROLLUP_ORDER.apply(query, filters)))
    return ROLLUP_ORDER.page(rows, filters)
