"""The report worker's entry points for intake batches: the decision side of the analytics
rollups (``shared.analytics.rollups.apply_pending_intake_batches``).

Every intake transaction leaves an ``IntakeBatch`` and queues one ``ApplyIntakeRollup``. A job
does not count only its own batch: it claims every pending batch (``FOR UPDATE SKIP LOCKED``,
so concurrent jobs split the work and never count a batch twice), counts them together, and
marks them applied in the same transaction. Under load, one job absorbs many batches and
the rollup rows are updated once per job instead of once per batch; the jobs that find
nothing left to claim cost one query. A scheduled sweep does the same, so a job lost with
Redis delays a batch by a minute at most.
"""

from __future__ import annotations

import logging

from shared.analytics.rollups import apply_pending_intake_batches
from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.jobs import ApplyIntakeRollup

logger = logging.getLogger(__name__)


async def run_apply_intake_rollup(state: WorkerState, job: ApplyIntakeRollup) -> int:
    """arq entry point: one unit of work."""
    async with unit_of_work(state.sessionmaker) as session:
        counted = await apply_pending_intake_batches(session)
    if counted:
        logger.info(
            "intake rollup applied", extra={"batch_id": str(job.batch_id), "decisions": counted}
        )
    return counted


async def sweep_intake_batches(state: WorkerState) -> int:
    """Scheduled: apply batches whose job was lost (a Redis outage, a flushed queue)."""
    async with unit_of_work(state.sessionmaker) as session:
        return await apply_pending_intake_batches(session)


__all__ = [
    "apply_pending_intake_batches",
    "run_apply_intake_rollup",
    "sweep_intake_batches",
]
