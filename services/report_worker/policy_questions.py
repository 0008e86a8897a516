"""Scheduled: overdue policy questions (``shared.policy_questions.overdue``), one unit of
work a run."""

from __future__ import annotations

import logging

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.models.base import utcnow
from shared.policy_questions.overdue import announce_overdue_questions

logger = logging.getLogger(__name__)


async def run_announce_overdue_policy_questions(state: WorkerState) -> int:
    """Send ``policy_question.overdue`` once for each question unanswered past the SLA."""
    async with unit_of_work(state.sessionmaker) as session:
        announced = await announce_overdue_questions(
            session, now=utcnow(), sla_hours=state.settings.policy_question_sla_hours
        )
    if announced:
        logger.info("overdue policy questions announced", extra={"announced": announced})
    return announced
