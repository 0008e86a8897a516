"""The daily intake rollup: decisions per market day, queue and moderator."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.jobs import ApplyIntakeRollup
from shared.queue import Context

logger = logging.getLogger(__name__)

_CLAIM_BATCH = text(
    """
    INSERT INTO applied_intake_batches (batch_id, decisions) VALUES (:batch_id, 0)
    ON CONFLICT DO NOTHING
    RETURNING batch_id
    """
)
# Days are counted in each market's time zone. Rows are upserted in key order so that
# concurrent rollup jobs touching the same rows cannot deadlock.
_APPLY = text(
    """
    WITH counted AS (
        SELECT (d.decided_at AT TIME ZONE coalesce(m.time_zone, 'UTC'))::date AS day,
               d.market, d.queue, d.moderator_id, count(*) AS decisions
        FROM decisions d
        LEFT JOIN markets m ON m.code = d.market
        WHERE d.intake_batch_id = :batch_id
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
_RECORD = text("UPDATE applied_intake_batches SET decisions = :n WHERE batch_id = :batch_id")


async def apply_intake_rollup(session: AsyncSession, *, job: ApplyIntakeRollup) -> int:
    """Count one intake batch into the rollup, once: a second run of the job changes nothing.

    Returns the number of decisions counted (0 when the batch was counted before).
    """
    claimed = await session.scalar(_CLAIM_BATCH, {"batch_id": job.batch_id})
    if claimed is None:
        return 0
    counted = int(await session.scalar(_APPLY, {"batch_id": job.batch_id}) or 0)
    await session.execute(_RECORD, {"n": counted, "batch_id": job.batch_id})
    return counted


async def run_apply_intake_rollup(ctx: Context, job: ApplyIntakeRollup) -> int:
    """arq entry point: one unit of work."""
    async with ctx["sessionmaker"]() as session, session.begin():
        counted = await apply_intake_rollup(session, job=job)
    logger.info(
        "intake rollup applied", extra={"batch_id": str(job.batch_id), "decisions": counted}
    )
    return counted
