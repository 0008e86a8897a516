"""Overdue policy questions: one ``policy_question.overdue`` per question unanswered past the
SLA, sent once.

A question asked more than ``sla_hours`` ago, still unanswered and not yet announced as
overdue, is claimed ``FOR UPDATE SKIP LOCKED`` and stamped ``overdue_notified_at`` in the
same transaction as its event: two workers running at once claim different rows (or none),
and a question being answered right now is skipped (its answer wins; the next run finds it
answered). At most ``BATCH`` a call; a backlog drains over successive runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import EventType, PolicyQuestionOverdue, record_event
from shared.models import PolicyQuestion
from shared.policy_questions.service import market_policy_pocs

BATCH = 500


async def announce_overdue_questions(
    session: AsyncSession, *, now: datetime, sla_hours: int, limit: int = BATCH
) -> int:
    """Send ``policy_question.overdue`` once per question unanswered ``sla_hours`` after it
    was asked, to its market's channels and policy POCs; returns how many were sent."""
    questions = list(
        await session.scalars(
            select(PolicyQuestion)
            .where(
                PolicyQuestion.answered_at.is_(None),
                PolicyQuestion.overdue_notified_at.is_(None),
                PolicyQuestion.created_at <= now - timedelta(hours=sla_hours),
            )
            .order_by(PolicyQuestion.created_at, PolicyQuestion.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    pocs: dict[str, list[str]] = {}
    for question in questions:
        question.overdue_notified_at = now
        if question.market not in pocs:
            pocs[question.market] = await market_policy_pocs(session, market=question.market)
        await record_event(
            session,
            type=EventType.POLICY_QUESTION_OVERDUE,
            data=PolicyQuestionOverdue(
                id=question.id,
                policy_code=question.policy_code,
                market=question.market,
                question=question.question,
                asked_by=question.asked_by,
                asked_at=question.created_at,
                sla_hours=sla_hours,
            ),
            market=question.market,
            recipients=pocs[question.market],
        )
    await session.flush()
    return len(questions)
