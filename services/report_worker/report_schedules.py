"""Report schedules: the due slots every minute, and runs asked for by hand
(``shared.report_schedules.runs``)."""

from __future__ import annotations

import logging
from typing import Any

from shared.core.workers import WorkerState
from shared.jobs import RunReportSchedule
from shared.models.base import utcnow
from shared.report_schedules.runs import run_due_schedules, run_schedule_job

logger = logging.getLogger(__name__)


async def run_due_report_schedules(state: WorkerState) -> int:
    """Scheduled (every minute): store a snapshot for every schedule whose slot is due."""
    stored = await run_due_schedules(state.sessionmaker, settings=state.settings, now=utcnow())
    if stored:
        logger.info("scheduled reports stored", extra={"snapshots": stored})
    return stored


async def run_report_schedule(state: WorkerState, job: RunReportSchedule) -> dict[str, Any] | None:
    """arq entry point: run a schedule now; the result names the snapshot."""
    result = await run_schedule_job(
        state.sessionmaker,
        job_id=job.job_id,
        schedule_id=job.schedule_id,
        settings=state.settings,
        now=utcnow(),
    )
    return None if result is None else result.model_dump(mode="json")
