"""Scheduled training reminders (``shared.training_plans.reminders``), one unit of work a run."""

from __future__ import annotations

import logging

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.models.base import utcnow
from shared.training_plans.reminders import remind_overdue_training_items

logger = logging.getLogger(__name__)


async def run_remind_overdue_training_items(state: WorkerState) -> int:
    """Scheduled: one unit of work reminding assignees (and owners) of overdue training."""
    async with unit_of_work(state.sessionmaker) as session:
        reminded = await remind_overdue_training_items(session, now=utcnow())
    if reminded:
        logger.info("training reminders sent", extra={"reminded": reminded})
    return reminded
