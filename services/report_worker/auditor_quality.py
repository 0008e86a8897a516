"""Scheduled auditor-quality check: ``auditor.accuracy_dropped`` once per auditor and week.

What counts and when an auditor is announced is ``shared.golden.quality`` (the same weekly
golden accuracy ``GET /v1/auditor-quality`` shows); this job runs it as one unit of work.
"""

from __future__ import annotations

import logging

from shared.core.queue import Context
from shared.golden.quality import announce_accuracy_drops
from shared.models.base import utcnow

logger = logging.getLogger(__name__)


async def run_announce_accuracy_drops(ctx: Context) -> int:
    """Scheduled: one unit of work announcing last week's auditor accuracy drops."""
    settings = ctx["settings"]
    async with ctx["sessionmaker"]() as session, session.begin():
        announced = await announce_accuracy_drops(
            session, now=utcnow(), threshold=settings.auditor_accuracy_threshold
        )
    if announced:
        logger.info("auditor accuracy drops announced", extra={"announced": announced})
    return announced
