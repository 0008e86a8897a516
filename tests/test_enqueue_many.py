"""shared.core.queue.enqueue_many: many jobs in one round trip to Redis, each stored as arq's
own enqueue_job would store it, and refused, as there, when arq already holds a job or a
result with its id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.core.queue import (
    ArqRedis,
    QueuedPayload,
    create_queue_pool,
    enqueue_many,
    enqueue_payload,
)
from shared.core.settings import Settings

QUEUE = "plumbline:test-enqueue-many"


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = await create_queue_pool(settings, queue_name=QUEUE)
    try:
        yield redis
    finally:
        await redis.aclose()


def job(job_id: str, n: int) -> QueuedPayload:
    return QueuedPayload(
        function="work",
        payload={"n": n, "name": f"job {n}"},
        queue_name=QUEUE,
        job_id=job_id,
        request_id=f"request-{n}",
    )


async def test_jobs_are_stored_as_arq_stores_them(pool: ArqRedis) -> None:
    assert await enqueue_payload(pool, **vars(job("one-by-one", 1))) is True

    assert await enqueue_many(pool, [job("together-1", 1), job("together-2", 2)]) == [True, True]

    queued = {info.job_id: info for info in await pool.queued_jobs(queue_name=QUEUE)}
    assert set(queued) == {"one-by-one", "together-1", "together-2"}
    reference = queued["one-by-one"]
    same = queued["together-1"]
    assert (same.function, same.args, same.kwargs, same.job_try) == (
        reference.function,
        reference.args,
        reference.kwargs,
        reference.job_try,
    )
    # (The JSON serialiser gives arguments back as a list.)
    assert list(same.args) == [{"n": 1, "name": "job 1"}, "request-1"]
    assert list(queued["together-2"].args) == [{"n": 2, "name": "job 2"}, "request-2"]
    # Due now, and kept as long as arq keeps a job it enqueues (a day).
    for job_id in ("one-by-one", "together-1"):
        score = await pool.zscore(QUEUE, job_id)
        assert score is not None
        ttl_ms = await pool.pttl(f"arq:job:{job_id}")
        assert pool.expires_extra_ms - 60_000 < ttl_ms <= pool.expires_extra_ms


async def test_a_job_or_result_with_the_same_id_refuses_only_that_job(pool: ArqRedis) -> None:
    await enqueue_many(pool, [job("queued-already", 1)])
    await pool.set("arq:result:ran-already", b"kept result")

    queued = await enqueue_many(
        pool, [job("queued-already", 9), job("new", 2), job("ran-already", 3)]
    )

    assert queued == [False, True, False]
    jobs = {info.job_id: info for info in await pool.queued_jobs(queue_name=QUEUE)}
    assert set(jobs) == {"queued-already", "new"}
    # The refused job did not overwrite the one that was there.
    assert jobs["queued-already"].args[0] == {"n": 1, "name": "job 1"}
    assert await pool.get("arq:result:ran-already") == b"kept result"


async def test_nothing_to_enqueue_costs_nothing(pool: ArqRedis) -> None:
    assert await enqueue_many(pool, []) == []
    assert await pool.zcard(QUEUE) == 0
