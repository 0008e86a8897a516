"""Scheduled dispute housekeeping: closing undisputed disagreements, SLA reminders.

- A disagreement still ``open`` after its ``dispute_deadline`` was not disputed in time: it
  is ``closed`` (the verdict stands), with a ``DisagreementChange`` row (actor null: the
  schedule did it).
- A dispute waiting for arbitration longer than ``dispute_sla_hours`` gets one
  ``dispute.awaiting_arbitration`` event (market set, so the market's policy POC channels
  subscribed to it are reminded); ``sla_reminded_at`` records that it was sent, so each
  dispute is reminded once.

Both claim rows ``FOR UPDATE SKIP LOCKED``: a dispute or a ruling being made right now (it
holds the row's lock) is skipped, not waited for, and re-examined on the next run; two
workers never take the same row. Each run is one transaction over at most ``BATCH`` rows;
a backlog drains over successive runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.queue import Context
from shared.events import DisputeAwaitingArbitration, EventType, record_event
from shared.models import Disagreement, DisagreementChange, Verdict
from shared.models.base import utcnow

logger = logging.getLogger(__name__)

BATCH = 1000
CLOSE_NOTE = "not disputed before the deadline; the verdict stands"


async def close_expired_disagreements(
    session: AsyncSession, *, now: datetime, limit: int = BATCH
) -> int:
    """Close ``open`` disagreements whose dispute deadline has passed; returns how many."""
    expired = list(
        await session.scalars(
            select(Disagreement)
            .where(Disagreement.status == "open", Disagreement.dispute_deadline < now)
            .order_by(Disagreement.dispute_deadline, Disagreement.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for disagreement in expired:
        session.add(
            DisagreementChange(
                disagreement_id=disagreement.id,
                from_status="open",
                to_status="closed",
                actor=None,
                note=CLOSE_NOTE,
                created_at=now,
            )
        )
        disagreement.status = "closed"
    await session.flush()
    return len(expired)


async def remind_overdue_disputes(
    session: AsyncSession, *, now: datetime, sla: timedelta, limit: int = BATCH
) -> int:
    """Emit ``dispute.awaiting_arbitration`` once per dispute waiting longer than ``sla``."""
    rows = (
        await session.execute(
            select(Disagreement, Verdict)
            .join(Verdict, Verdict.id == Disagreement.verdict_id)
            .where(
                Disagreement.status == "disputed",
                Disagreement.sla_reminded_at.is_(None),
                Disagreement.disputed_at <= now - sla,
            )
            .order_by(Disagreement.disputed_at, Disagreement.id)
            .limit(limit)
            .with_for_update(of=Disagreement, skip_locked=True)
        )
    ).all()
    for disagreement, verdict in rows:
        assert disagreement.disputed_at is not None
        disagreement.sla_reminded_at = now
        await record_event(
            session,
            type=EventType.DISPUTE_AWAITING_ARBITRATION,
            data=DisputeAwaitingArbitration(
                id=disagreement.id,
                audit_id=disagreement.audit_id,
                decision_id=verdict.decision_id,
                moderator_id=disagreement.moderator_id,
                auditor_id=disagreement.auditor_id,
                market=disagreement.market,
                queue=verdict.queue,
                dispute_reason=disagreement.dispute_reason,
                disputed_at=disagreement.disputed_at,
                waiting_hours=int((now - disagreement.disputed_at).total_seconds() // 3600),
                sla_hours=int(sla.total_seconds() // 3600),
            ),
            market=disagreement.market,
        )
    await session.flush()
    return len(rows)


async def run_close_expired_disagreements(ctx: Context) -> int:
    """Scheduled: one unit of work closing what the dispute window left open."""
    async with ctx["sessionmaker"]() as session, session.begin():
        closed = await close_expired_disagreements(session, now=utcnow())
    if closed:
        logger.info("undisputed disagreements closed", extra={"closed": closed})
    return closed


async def run_remind_overdue_disputes(ctx: Context) -> int:
    """Scheduled: one unit of work reminding policy POCs of disputes past their SLA."""
    sla = timedelta(hours=ctx["settings"].dispute_sla_hours)
    async with ctx["sessionmaker"]() as session, session.begin():
        reminded = await remind_overdue_disputes(session, now=utcnow(), sla=sla)
    if reminded:
        logger.info("dispute SLA reminders sent", extra={"reminded": reminded})
    return reminded
