"""The report worker's entry points for the analytics rollups (``shared.analytics.rollups``).

``ApplyQualityRollups`` jobs (queued by whatever marked a slice dirty) and the scheduled
sweep both apply pending dirty slices, a bounded claim per transaction, until none are left
or the run's time is up; the sweep is the safety net when Redis lost a job.
"""

from __future__ import annotations

import logging
import time

from shared.analytics.rollups import apply_dirty_slices
from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.jobs import ApplyQualityRollups

logger = logging.getLogger(__name__)

# Well under the 60 s timeout of the job and the sweep: a backlog is left to the next run.
RUN_SECONDS = 40.0


async def _drain(state: WorkerState) -> int:
    started = time.monotonic()
    total = 0
    while time.monotonic() - started < RUN_SECONDS:
        async with unit_of_work(state.sessionmaker) as session:
            done = await apply_dirty_slices(session)
        total += done
        if done == 0:
            break
    return total


async def run_apply_quality_rollups(state: WorkerState, job: ApplyQualityRollups) -> int:
    """arq entry point: recompute the pending dirty slices; returns how many."""
    recomputed = await _drain(state)
    if recomputed:
        logger.info("quality rollups recomputed", extra={"slices": recomputed})
    return recomputed


async def sweep_quality_rollups(state: WorkerState) -> int:
    """Scheduled: recompute dirty slices whose job was lost (a Redis outage, a flushed queue)."""
    return await _drain(state)
