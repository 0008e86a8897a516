"""The report worker's sweep of background jobs Redis lost
(``shared.background_jobs.recovery``): every 15 s, so a lost job runs within about half a
minute of the loss."""

from __future__ import annotations

from shared.background_jobs.recovery import requeue_lost_jobs
from shared.core.db import unit_of_work
from shared.core.workers import WorkerState


async def sweep_lost_background_jobs(state: WorkerState) -> int:
    """Scheduled: queue again the background jobs Redis lost; returns how many."""
    async with unit_of_work(state.sessionmaker) as session:
        sweep = await requeue_lost_jobs(session, redis=state.redis)
    return len(sweep.requeued)
