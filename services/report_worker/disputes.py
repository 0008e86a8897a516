"""Scheduled dispute housekeeping: closing undisputed disagreements, SLA reminders.

The state changes themselves are ``shared.disagreements.lifecycle.close_expired`` and
``remind_overdue`` (the same history rows and audit-log entries as the API's changes);
these jobs only run them, each run one unit of work over at most a batch of rows.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.disagreements import lifecycle
from shared.models.base import utcnow

logger = logging.getLogger(__name__)


async def run_close_expired_disagreements(state: WorkerState) -> int:
    """Scheduled: one unit of work closing what the dispute window left open."""
    async with unit_of_work(state.sessionmaker) as session:
        closed = await lifecycle.close_expired(session, now=utcnow())
    if closed:
        logger.info("undisputed disagreements closed", extra={"closed": closed})
    return closed


async def run_remind_overdue_disputes(state: WorkerState) -> int:
    """Scheduled: one unit of work reminding policy POCs of disputes past their SLA."""
    sla = timedelta(hours=state.settings.dispute_sla_hours)
    async with unit_of_work(state.sessionmaker) as session:
        reminded = await lifecycle.remind_overdue(session, now=utcnow(), sla=sla)
    if reminded:
        logger.info("dispute SLA reminders sent", extra={"reminded": reminded})
    return reminded
