"""Training reminders: one ``training.item_overdue`` event per overdue item, once.

What is overdue is ``overdue_query`` (the definition ``GET /v1/training-plans/overdue``
lists): a progress row (plan, item, assignee) not done and past its due date. One not
reminded yet gets one event; ``reminded_at`` records it, so each (plan, item, assignee) is
reminded once. Rows are claimed ``FOR UPDATE SKIP LOCKED``: an item being completed right
now is skipped, and two workers never remind the same row. At most ``BATCH`` rows per call;
a backlog drains over successive runs (the report worker calls this every minute).

The event's market is the first market (alphabetically) of the assignee's profile, so the
channels of that market hear of it; an assignee without a profile market gives an event about
no market (every subscribed channel).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import EventType, TrainingItemOverdue, record_event
from shared.models import Reviewer, TrainingItemProgress
from shared.training_plans.service import overdue_query

BATCH = 1000


async def remind_overdue_training_items(
    session: AsyncSession, *, now: datetime, limit: int = BATCH
) -> int:
    """Emit ``training.item_overdue`` once per overdue, open, unreminded item; returns how many."""
    rows = (
        await session.execute(
            overdue_query(now=now)
            .where(TrainingItemProgress.reminded_at.is_(None))
            .order_by(TrainingItemProgress.due_at, TrainingItemProgress.plan_id)
            .limit(limit)
            .with_for_update(of=TrainingItemProgress, skip_locked=True)
        )
    ).all()
    reviewer_ids = sorted({progress.reviewer_id for progress, _, _ in rows})
    markets_of = {
        reviewer_id: sorted(markets or [])
        for reviewer_id, markets in (
            await session.execute(
                select(Reviewer.id, Reviewer.markets).where(Reviewer.id.in_(reviewer_ids))
            )
        )
    }
    for progress, plan, item in rows:
        progress.reminded_at = now
        markets = markets_of.get(progress.reviewer_id) or []
        await record_event(
            session,
            type=EventType.TRAINING_ITEM_OVERDUE,
            data=TrainingItemOverdue(
                plan_id=plan.id,
                plan_title=plan.title,
                plan_kind=plan.kind,
                item_id=item.id,
                item_kind=item.kind,
                reviewer_id=progress.reviewer_id,
                owners=list(plan.owners),
                policy_code=item.policy_code,
                quiz_id=item.quiz_id,
                due_at=progress.due_at,
            ),
            market=markets[0] if markets else None,
        )
    await session.flush()
    return len(rows)
