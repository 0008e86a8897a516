"""The daily intake rollup: decisions per market day, queue and moderator.

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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.jobs import ApplyIntakeRollup

logger = logging.getLogger(__name__)

# Batches claimed per transaction: bounds the transaction, the rest is left to the next job.
MAX_BATCHES_PER_RUN = 500

_CLAIM = text(
    """
    SELECT batch_id, first_decision_id, last_decision_id
    FROM intake_batches
    WHERE applied_at IS NULL
    ORDER BY created_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
# Days are counted in each market's time zone. The id range lets the primary key find the
# batches' rows; rows are upserted in key order so that concurrent jobs cannot deadlock.
_APPLY = text(
    """
    WITH counted AS (
        SELECT (d.decided_at AT TIME ZONE coalesce(m.time_zone, 'UTC'))::date AS day,
               d.market, d.queue, d.moderator_id, count(*) AS decisions
        FROM decisions d
        LEFT JOIN markets m ON m.code = d.market
        WHERE d.id BETWEEN :first_id AND :last_id
          AND d.intake_batch_id = ANY(CAST(:batch_ids AS uuid[]))
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
    ), upserted AS (
        INSERT INTO intake_daily_rollups (day, market, queue, moderator_id, decisions)
        SELECT day, market, queue, moderator_id, decisions FROM counted
        ON CONFLICT (day, market, queue, moderator_id) DO UPDATE
        SET decisions = intake_daily_rollups.decisions + excluded.decisions, updated_at = now()
        RETURNING 1
    )
    SELECT coalesce(sum(decisions), 0) FROM counted
    """
)
_MARK_APPLIED = text(
    "UPDATE intake_batches SET applied_at = now() WHERE batch_id = ANY(CAST(:batch_ids AS uuid[]))"
)


async def apply_pending_intake_batches(
    session: AsyncSession, *, limit: int = MAX_BATCHES_PER_RUN
) -> int:
    """Count pending intake batches into the rollup, each exactly once.

    Returns the number of decisions counted (0 when another job got there first).
    """
    claimed = (await session.execute(_CLAIM, {"limit": limit})).all()
    if not claimed:
        return 0
    batch_ids = [row.batch_id for row in claimed]
    counted = await session.scalar(
        _APPLY,
        {
            "first_id": min(row.first_decision_id for row in claimed),
            "last_id": max(row.last_decision_id for row in claimed),
            "batch_ids": batch_ids,
        },
    )
    await session.execute(_MARK_APPLIED, {"batch_ids": batch_ids})
    return int(counted or 0)


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
