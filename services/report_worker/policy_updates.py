"""Scheduled policy-update reminders (``shared.policy_updates.reminders``), one unit of work
a run."""

from __future__ import annotations

import logging

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.models.base import utcnow
from shared.policy_updates.reminders import remind_pending_readers

logger = logging.getLogger(__name__)


async def run_remind_pending_policy_readers(state: WorkerState) -> int:
    """Scheduled: remind the readers who have not acknowledged an update taking effect
    within ``PLUMBLINE_POLICY_UPDATE_REMINDER_HOURS``."""
    async with unit_of_work(state.sessionmaker) as session:
        reminded = await remind_pending_readers(
            session, now=utcnow(), lead_hours=state.settings.policy_update_reminder_hours
        )
    if reminded:
        logger.info("policy update reminders sent", extra={"updates": reminded})
    return reminded
