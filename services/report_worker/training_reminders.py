"""Scheduled training reminders: one ``training.item_overdue`` event per overdue item.

A progress row (plan, item, assignee) that is not done and past its due date, and was not
reminded yet, gets one event; ``reminded_at`` records it, so each (plan, item, assignee) is
reminded once. Rows are claimed ``FOR UPDATE SKIP LOCKED``: an item being completed right now
is skipped, and two workers never remind the same row. One transaction per run over at most
``BATCH`` rows; a backlog drains over successive runs.

The event's market is the first market (alphabetically) of the assignee's profile, so the
channels of that market hear of it; an assignee without a profile market gives an event about
no market (every subscribed channel).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.events import EventType, TrainingItemOverdue, record_event
from shared.models import Reviewer, TrainingItemProgress, TrainingPlan, TrainingPlanItem
from shared.models.base import utcnow

logger = logging.getLogger(__name__)

BATCH = 1000


async def remind_overdue_training_items(
    session: AsyncSession, *, now: datetime, limit: int = BATCH
) -> int:
    """Emit ``training.item_overdue`` once per overdue, open, unreminded item; returns how many."""
    rows = (
        await session.execute(
            select(TrainingItemProgress, TrainingPlan, TrainingPlanItem)
            .join(TrainingPlan, TrainingPlan.id == TrainingItemProgress.plan_id)
            .join(
                TrainingPlanItem,
                (TrainingPlanItem.plan_id == TrainingItemProgress.plan_id)
                & (TrainingPlanItem.id == TrainingItemProgress.item_id),
            )
            .where(
                TrainingItemProgress.completed_at.is_(None),
                TrainingItemProgress.reminded_at.is_(None),
                TrainingItemProgress.due_at < now,
            )
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


async def run_remind_overdue_training_items(state: WorkerState) -> int:
    """Scheduled: one unit of work reminding assignees (and owners) of overdue training."""
    async with unit_of_work(state.sessionmaker) as session:
        reminded = await remind_overdue_training_items(session, now=utcnow())
    if reminded:
        logger.info("training reminders sent", extra={"reminded": reminded})
    return reminded
