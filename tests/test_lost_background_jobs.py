"""A background job Redis lost (a crash inside the append-only file's fsync second, a Redis
restarted without its data) is queued again from PostgreSQL under the same id and runs once
(``shared.background_jobs.recovery``, the report worker's ``sweep_lost_background_jobs``);
a second run of a job never applies its effect twice (``shared.background_jobs.service``)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.background_jobs import sweep_lost_background_jobs
from services.report_worker.worker import WorkerSettings
from shared.background_jobs.service import (
    JobAlreadyFinished,
    complete_job,
    create_job,
    fail_job,
    start_job,
)
from shared.core.queue import ArqJobState, ArqRedis, job_state
from shared.core.settings import Settings
from shared.models import BackgroundJob, OutboxJob, SamplingRun
from shared.models.base import utcnow
from tests.conftest import auth, relay_all, run_worker_burst
from tests.support.db import count_rows
from tests.support.sampling import create_sampling_plan
from tests.support.workers import worker_state

Sessionmaker = async_sessionmaker[AsyncSession]


async def _backdate_relay(sessionmaker: Sessionmaker, seconds: int = 60) -> None:
    """Make every relayed outbox row older than the sweep's grace."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE outbox_jobs SET enqueued_at = enqueued_at - make_interval(secs => :s)"),
            {"s": seconds},
        )


async def test_a_queued_job_redis_lost_is_queued_again_and_runs_once(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    await create_sampling_plan(client, admin_key, queue=None, market="DE")
    response = await client.post(
        "/v1/audits/sample", json={"day": "2026-11-24", "market": "DE"}, headers=auth(admin_key)
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    # The work is queued under the job's own id: the row names its arq job.
    async with sessionmaker() as session:
        assert await session.get(OutboxJob, uuid.UUID(job_id)) is not None
    assert await relay_all(sessionmaker, queue) == 1
    assert await job_state(queue, job_id) is ArqJobState.HELD
    # The worker's state, with a pool that enqueues as the worker's does (JSON).
    state = replace(worker_state(settings, sessionmaker), redis=queue)
    await _backdate_relay(sessionmaker)
    # Redis holds the job: the sweep leaves it alone.
    assert await sweep_lost_background_jobs(state) == 0

    # Redis comes back without its data: nothing but PostgreSQL knows of the job.
    await queue.flushdb()
    assert await job_state(queue, job_id) is ArqJobState.MISSING
    # A burst worker finds nothing to run; the job would stay queued for good.
    await run_worker_burst(WorkerSettings, settings)
    async with sessionmaker() as session:
        job = await session.get(BackgroundJob, uuid.UUID(job_id))
        assert job is not None
        assert job.status == "queued"

    assert await sweep_lost_background_jobs(state) == 1
    assert await job_state(queue, job_id) is ArqJobState.HELD
    # A second sweep (another report worker's, the next run) queues nothing more.
    assert await sweep_lost_background_jobs(state) == 0
    await run_worker_burst(WorkerSettings, settings)

    finished = (await client.get(f"/v1/jobs/{job_id}", headers=auth(admin_key))).json()
    assert finished["status"] == "complete", finished
    assert await count_rows(sessionmaker, SamplingRun) == 1
    # Finished: its kept result and its status both keep the sweep away.
    assert await job_state(queue, job_id) is ArqJobState.FINISHED
    assert await sweep_lost_background_jobs(state) == 0
    await queue.flushdb()
    assert await sweep_lost_background_jobs(state) == 0
    assert await count_rows(sessionmaker, SamplingRun) == 1


async def test_a_running_job_redis_lost_runs_again(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    """A worker that lost Redis mid-run gave its job up (its transaction rolled back): the
    row says ``running`` and Redis holds nothing; the sweep queues it again."""
    await create_sampling_plan(client, admin_key, queue=None, market="DE")
    response = await client.post(
        "/v1/audits/sample", json={"day": "2026-11-24", "market": "DE"}, headers=auth(admin_key)
    )
    job_id = uuid.UUID(response.json()["job_id"])
    await relay_all(sessionmaker, queue)
    async with sessionmaker() as session, session.begin():
        await start_job(session, job_id=job_id, now=utcnow())
    await queue.flushdb()
    await _backdate_relay(sessionmaker)
    assert (
        await sweep_lost_background_jobs(replace(worker_state(settings, sessionmaker), redis=queue))
        == 1
    )
    await run_worker_burst(WorkerSettings, settings)
    async with sessionmaker() as session:
        job = await session.get(BackgroundJob, job_id)
        assert job is not None
        assert job.status == "complete"
    assert await count_rows(sessionmaker, SamplingRun) == 1


async def test_a_second_run_of_a_job_rolls_its_effect_back(sessionmaker: Sessionmaker) -> None:
    """Two runs took the same job (at-least-once delivery): the first to finish it keeps its
    outcome; the other's completion is refused, so its transaction (its effect) rolls back,
    and its failure does not overwrite the outcome either."""
    async with sessionmaker() as session, session.begin():
        job = await create_job(session, kind="test", params={}, requested_by=None)
    for _ in range(2):
        async with sessionmaker() as session, session.begin():
            started = await start_job(session, job_id=job.id, now=utcnow())
            assert started is not None
            assert started.status == "running"
    async with sessionmaker() as session, session.begin():
        await complete_job(session, job_id=job.id, result={"run": 1}, now=utcnow())

    async def second_run() -> None:
        async with sessionmaker() as session, session.begin():
            session.add(SamplingRun(day=date(2026, 11, 24), market="DE", seed="second run"))
            await complete_job(session, job_id=job.id, result={"run": 2}, now=utcnow())

    with pytest.raises(JobAlreadyFinished):
        await second_run()
    async with sessionmaker() as session, session.begin():
        await fail_job(session, job_id=job.id, error="second run failed", now=utcnow())
    async with sessionmaker() as session:
        stored = await session.get(BackgroundJob, job.id)
        assert stored is not None
        assert (stored.status, stored.result, stored.error) == ("complete", {"run": 1}, None)
    assert await count_rows(sessionmaker, SamplingRun) == 0


async def test_job_state_reads_what_redis_holds(queue: ArqRedis) -> None:
    redis: Redis = queue
    assert await job_state(redis, "nothing") is ArqJobState.MISSING
    await redis.set("arq:in-progress:running", b"1")
    assert await job_state(redis, "running") is ArqJobState.HELD
    await redis.set("arq:result:done", b"1")
    assert await job_state(redis, "done") is ArqJobState.FINISHED
