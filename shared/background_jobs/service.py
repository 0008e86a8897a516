"""Background jobs: work the API accepts (202) and a worker does, tracked in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.errors import NotFound
from shared.models import BackgroundJob


async def create_job(
    session: AsyncSession, *, kind: str, params: dict[str, Any], requested_by: str | None
) -> BackgroundJob:
    """A queued job row; the caller queues the work itself (through the outbox)."""
    job = BackgroundJob(
        id=uuid.uuid4(), kind=kind, status="queued", params=params, requested_by=requested_by
    )
    session.add(job)
    await session.flush()
    return job


def job_market(job: BackgroundJob) -> str | None:
    """The market a job is about, when it is about one (market-scoped keys see only those)."""
    market = job.params.get("market")
    return market if isinstance(market, str) else None


async def get_job(
    session: AsyncSession, *, job_id: uuid.UUID, only_markets: Sequence[str] | None
) -> BackgroundJob:
    """The job, or 404 (also for a market-scoped key when the job is not about its markets)."""
    job = await session.get(BackgroundJob, job_id)
    if job is None:
        raise NotFound("job not found")
    if only_markets is not None and job_market(job) not in only_markets:
        raise NotFound("job not found")
    return job
