"""How long Redis keeps a finished report-worker job's result (arq's ``keep_result``).

The rollup jobs, one per intake or verdict transaction, keep theirs a minute: nobody reads
them (their state lives in PostgreSQL), and kept an hour they grew Redis by a key per job
for the hour under steady load. A background job (``BackgroundJobWork``) keeps its result
an hour: it holds the lost-job sweep back from re-queueing a job that ended without
recording its outcome (``shared.background_jobs.recovery``).
"""

from __future__ import annotations

import uuid

import httpx
from arq.constants import result_key_prefix
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.worker import OUTBOX_ONLY_KEEP_RESULT_SECONDS, WorkerSettings
from shared.core.queue import ArqJobState, ArqRedis, enqueue, job_state
from shared.core.settings import Settings
from shared.jobs import ApplyIntakeRollup, ApplyQualityRollups
from tests.conftest import auth, relay_all, run_worker_burst
from tests.support.sampling import create_sampling_plan


async def _seconds_kept(queue: ArqRedis, job_id: str) -> float:
    """How much longer Redis keeps the job's result (-2: no result, -1: kept for good)."""
    milliseconds: int = await queue.pttl(result_key_prefix + job_id)
    return milliseconds / 1000 if milliseconds >= 0 else float(milliseconds)


async def test_rollup_job_results_expire_within_a_minute(
    queue: ArqRedis, settings: Settings
) -> None:
    intake_id, quality_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert await enqueue(queue, ApplyIntakeRollup(batch_id=uuid.uuid4()), job_id=intake_id)
    assert await enqueue(queue, ApplyQualityRollups(), job_id=quality_id)

    await run_worker_burst(WorkerSettings, settings)

    for job_id in (intake_id, quality_id):
        # Kept for a while, so a relay re-sending the same outbox id is refused...
        assert await job_state(queue, job_id) is ArqJobState.FINISHED
        assert not await enqueue(queue, ApplyQualityRollups(), job_id=job_id)
        # ...but a minute at most, not the worker's hour.
        assert 0 < await _seconds_kept(queue, job_id) <= OUTBOX_ONLY_KEEP_RESULT_SECONDS


async def test_a_background_job_result_is_kept_an_hour(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    await create_sampling_plan(client, admin_key, queue=None, market="DE")
    response = await client.post(
        "/v1/audits/sample", json={"day": "2026-11-24", "market": "DE"}, headers=auth(admin_key)
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert await relay_all(sessionmaker, queue) == 1

    await run_worker_burst(WorkerSettings, settings)

    assert await job_state(queue, job_id) is ArqJobState.FINISHED
    assert (
        OUTBOX_ONLY_KEEP_RESULT_SECONDS
        < await _seconds_kept(queue, job_id)
        <= WorkerSettings.keep_result
    )
