"""Background jobs Redis lost: found from PostgreSQL and queued again under the same id.

A background job's work reaches arq through the outbox, under the job's own id
(``shared.jobs.BackgroundJobWork``). Once the relay has marked its outbox row, Redis alone
holds the work: a Redis that loses data (a machine crash inside the append-only file's fsync
second, a Redis restarted without its data, a flushed database) would leave the job
``queued`` or ``running`` for good. The sweep here looks, for every unfinished job whose
outbox row was relayed, at what Redis holds of it (``shared.core.queue.job_state``) and
queues a job Redis holds nothing of again, with the outbox row's payload and the same id
(arq refuses an id it holds, so two sweeps, or a sweep and the relay, cannot queue it twice).

The other outbox jobs need no such sweep: their state lives in PostgreSQL and a scheduled
sweep redoes lost work from it (intake batches and dirty rollup slices in the report worker,
due deliveries and events without their deliveries in the notifier).

Re-running is safe: a background job's effect commits with ``complete_job``, which refuses a
job another run already finished (``shared.background_jobs.service``), and each kind's work
is idempotent besides (sampling creates no second audit for a decision, an evaluation no
second escalation).

What the sweep leaves: a job whose arq result is kept (``FINISHED``) ended in arq without
recording its outcome (its timeout, or PostgreSQL away through all its tries; a shorter
outage only defers it, ``shared.core.queue.job_function``): arq refuses its id until the
result expires (the worker's ``keep_result``), and the sweep queues it then. Its reach is
the outbox's retention (``outbox_retention_hours`` after the relay), since the outbox row
holds the payload.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.outbox import queued_payload
from shared.core.queue import ArqJobState, ArqRedis, enqueue_many, job_state

logger = logging.getLogger(__name__)

# A relayed job is in Redis before its outbox row is marked (the relay enqueues, then
# commits), so no grace is needed for correctness; this keeps the sweep off jobs relayed
# this very moment, whose arq keys a worker is busy moving.
LOST_JOB_GRACE = timedelta(seconds=10)
# Unfinished jobs looked at per run (oldest relay first); the rest wait for the next run.
SWEEP_LIMIT = 500

_UNFINISHED_RELAYED = text(
    """
    SELECT o.id, o.queue_name, o.function, o.payload, o.request_id
    FROM background_jobs j JOIN outbox_jobs o ON o.id = j.id
    WHERE j.status IN ('queued', 'running')
      AND o.enqueued_at < now() - make_interval(secs => :grace_seconds)
    ORDER BY o.enqueued_at
    LIMIT :limit
    """
)


@dataclass(frozen=True, slots=True)
class LostJobsSweep:
    """What one sweep found: the unfinished relayed jobs it looked at, those it queued again."""

    looked_at: int = 0
    requeued: list[uuid.UUID] = field(default_factory=list)


async def requeue_lost_jobs(
    session: AsyncSession,
    *,
    redis: ArqRedis,
    grace: timedelta = LOST_JOB_GRACE,
    limit: int = SWEEP_LIMIT,
) -> LostJobsSweep:
    """Queue again, under the same id, every unfinished background job relayed more than
    ``grace`` ago of which Redis holds nothing (neither the job, nor its in-progress mark,
    nor its result)."""
    rows = (
        await session.execute(
            _UNFINISHED_RELAYED, {"grace_seconds": grace.total_seconds(), "limit": limit}
        )
    ).all()
    missing = [row for row in rows if await job_state(redis, str(row.id)) is ArqJobState.MISSING]
    queued = await enqueue_many(redis, [queued_payload(row) for row in missing])
    requeued = [row.id for row, new in zip(missing, queued, strict=True) if new]
    if requeued:
        logger.warning(
            "background jobs lost by Redis queued again",
            extra={"jobs": [str(job_id) for job_id in requeued]},
        )
    return LostJobsSweep(looked_at=len(rows), requeued=requeued)


__all__ = ["LOST_JOB_GRACE", "LostJobsSweep", "requeue_lost_jobs"]
