"""A job that meets PostgreSQL unavailable (a restart, a failover) runs again a second later
instead of failing, which would leave its work to a sweep (up to a minute and a half for a
notification's fan-out) or a background job unfinished (``shared.core.queue.job_function``)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import asyncpg
import pytest
from arq.worker import Worker

from shared.core.queue import (
    STATE_KEY,
    create_queue_pool,
    database_retry_seconds,
    deserialize_job,
    enqueue,
    job_function,
    serialize_job,
)
from shared.core.settings import Settings
from shared.jobs import Job

QUEUE = "plumbline:test-database-retry"
calls: list[str] = []


class FlakyJob(Job):
    function = "flaky_job"
    queue = QUEUE

    fail_with: str


async def flaky(state: Any, job: FlakyJob) -> str:
    calls.append(job.fail_with)
    if calls.count(job.fail_with) == 1:
        if job.fail_with == "database":
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        raise ValueError("a bug")
    return "done"


class FlakySettings:
    queue_name = QUEUE
    functions: ClassVar[list[Any]] = [job_function(FlakyJob, flaky)]
    job_serializer = serialize_job
    job_deserializer = deserialize_job


@pytest.mark.parametrize(("fail_with", "runs"), [("database", 2), ("bug", 1)])
async def test_a_job_meeting_the_database_away_runs_again(
    settings: Settings, fail_with: str, runs: int
) -> None:
    pool = await create_queue_pool(settings, queue_name=QUEUE)
    try:
        calls.clear()
        await enqueue(pool, FlakyJob(fail_with=fail_with), job_id=f"flaky-{fail_with}")
        worker = Worker(
            functions=FlakySettings.functions,
            queue_name=QUEUE,
            redis_pool=pool,
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
            ctx={STATE_KEY: None},
            job_serializer=serialize_job,
            job_deserializer=deserialize_job,
        )
        await asyncio.wait_for(worker.main(), timeout=20)
        assert calls == [fail_with] * runs
        # A bug fails the job at once, as before; the database's absence does not.
        assert (worker.jobs_complete, worker.jobs_failed) == (
            (1, 0) if fail_with == "database" else (0, 1)
        )
        await worker.close()
    finally:
        await pool.aclose()


def test_retries_span_a_restart_within_a_workers_tries() -> None:
    assert [database_retry_seconds(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert sum(database_retry_seconds(n) for n in range(1, 5)) >= 12
