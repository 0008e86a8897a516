"""Background jobs: work the API accepts (202) and a worker does, tracked in PostgreSQL.

The whole life of a job row is here: the API creates it (``create_job``, its work queued
through the outbox in the same transaction) and reads it; the worker doing the work marks
it ``running`` (``start_job``), then ``complete`` with its result in the work's own
transaction (``complete_job``) or ``failed`` (``fail_job``). The work is queued under the
row's id (``shared.jobs.BackgroundJobWork``); ``shared.background_jobs.recovery`` queues it
again when Redis lost it.

A job may run twice (arq delivers at least once, and a job re-queued after Redis lost it
may meet a run that outlived the loss); its effect is applied once all the same: the effect
commits with ``complete_job``, which refuses a job already finished, so the second run's
transaction rolls back, and ``fail_job`` never overwrites a finished job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import Principal
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


def visible_jobs(viewer: Principal) -> ColumnElement[bool]:
    """Which jobs ``viewer`` may see: a market-scoped key only the jobs about one of its
    markets (``params.market``); a job about every market is not theirs to see."""
    if viewer.markets is None:
        return true()
    market: ColumnElement[str] = BackgroundJob.params["market"].astext
    return market.in_(viewer.markets)


async def get_job(session: AsyncSession, *, job_id: uuid.UUID, viewer: Principal) -> BackgroundJob:
    """The job, or 404 (also when ``viewer`` may not see it)."""
    job = await session.scalar(
        select(BackgroundJob).where(BackgroundJob.id == job_id, visible_jobs(viewer))
    )
    if job is None:
        raise NotFound("job not found")
    return job


# Statuses after which a job is never run again (at-least-once delivery may bring it back).
FINAL_STATUSES = frozenset({"complete", "failed"})


class JobAlreadyFinished(Exception):
    """``complete_job`` on a job another run finished first: roll the work back."""


async def _locked(session: AsyncSession, job_id: uuid.UUID) -> BackgroundJob | None:
    return await session.get(BackgroundJob, job_id, with_for_update=True, populate_existing=True)


async def start_job(
    session: AsyncSession, *, job_id: uuid.UUID, now: datetime
) -> BackgroundJob | None:
    """Mark the job ``running`` as a worker takes it up; None when it has no row.

    A job already ``complete`` or ``failed`` is returned unchanged: the worker must not run
    it again (its stored result stands). One found ``running`` (a worker died with it) is
    taken up again; the work is idempotent.
    """
    job = await _locked(session, job_id)
    if job is None or job.status in FINAL_STATUSES:
        return job
    job.status = "running"
    job.started_at = now
    await session.flush()
    return job


async def complete_job(
    session: AsyncSession, *, job_id: uuid.UUID, result: dict[str, Any], now: datetime
) -> None:
    """Keep the job's result and mark it ``complete`` (in the transaction of its work).

    JobAlreadyFinished when another run of the job finished it meanwhile: the caller's
    transaction, and with it this run's effect, must roll back.
    """
    job = await _locked(session, job_id)
    if job is None:  # pragma: no cover - the row outlives its job
        raise NotFound("job not found")
    if job.status in FINAL_STATUSES:
        raise JobAlreadyFinished(f"job {job_id} is {job.status} already")
    job.status = "complete"
    job.result = result
    job.error = None
    job.finished_at = now
    await session.flush()


async def fail_job(session: AsyncSession, *, job_id: uuid.UUID, error: str, now: datetime) -> None:
    """Mark the job ``failed`` with ``error``, what API clients are shown (say what failed,
    not how: the details belong in the worker's log). A job already finished is left as it
    is (a failing second run does not undo the first run's outcome)."""
    job = await _locked(session, job_id)
    if job is None or job.status in FINAL_STATUSES:
        return
    job.status = "failed"
    job.error = error
    job.finished_at = now
    await session.flush()
