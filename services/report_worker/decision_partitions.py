"""Scheduled decision partition upkeep and retention (``shared.decisions.partitions``).

Two units of work, on purpose: creating the months ahead must not wait for (or be undone
with) retention, whose drops hold an ACCESS EXCLUSIVE lock on ``decisions`` until commit.
"""

from __future__ import annotations

import logging

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.decisions.partitions import apply_decision_retention, ensure_decision_partitions
from shared.models.base import utcnow

logger = logging.getLogger(__name__)


async def run_maintain_decision_partitions(state: WorkerState) -> int:
    """Scheduled: create the months ahead, then apply retention when it is configured.

    Returns the number of partitions created and dropped.
    """
    settings = state.settings
    now = utcnow()
    async with unit_of_work(state.sessionmaker) as session:
        created = await ensure_decision_partitions(
            session, today=now.date(), months_ahead=settings.decision_partitions_ahead_months
        )
    if created:
        logger.info("decision partitions created", extra={"partitions": created})
    if settings.decision_retention_days is None:
        return len(created)
    async with unit_of_work(state.sessionmaker) as session:
        retention = await apply_decision_retention(
            session, now=now, retention_days=settings.decision_retention_days
        )
    if retention.dropped_partitions or retention.deleted_default_rows:
        logger.info(
            "decision retention applied",
            extra={
                "cutoff": retention.cutoff.isoformat(),
                "partitions": retention.dropped_partitions,
                "kept": retention.kept_decisions,
                "deleted_default_rows": retention.deleted_default_rows,
                "deleted_keys": retention.deleted_keys,
            },
        )
    return len(created) + len(retention.dropped_partitions)
