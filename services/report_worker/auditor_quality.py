"""Scheduled auditor-quality check: ``auditor.accuracy_dropped`` once per auditor and week.

What counts and when an auditor is announced is ``shared.golden.quality`` (the same weekly
golden accuracy ``GET /v1/auditor-quality`` shows); this job runs it as one unit of work.
"""

from __future__ import annotations

import logging

from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.golden.quality import announce_accuracy_drops
from shared.models.base import utcnow

logger = logging.getLogger(__name__)


async def run_announce_accuracy_drops(state: WorkerState) -> int:
    """Scheduled: one unit of work announcing last week's auditor accuracy drops."""
    async with unit_of_work(state.sessionmaker) as session:
        announced = await announce_accuracy_drops(
            session, now=utcnow(), threshold=state.settings.auditor_accuracy_threshold
        )
    if announced:
        logger.info("auditor accuracy drops announced", extra={"announced": announced})
    return announced
