"""A job whose worker died mid-run runs again as soon as that worker's heartbeat lapses, not
when arq's in-progress mark expires (130 s on the report worker): the mark names its worker
(shared.core.queue.HeartbeatWorker)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from arq.worker import func

from shared.core.queue import (
    WORKER_HEARTBEAT_PREFIX,
    create_heartbeat_worker,
    create_queue_pool,
    deserialize_job,
    serialize_job,
)
from shared.core.settings import Settings

QUEUE = "plumbline:test-dead-workers"
ran: list[str] = []


async def work(ctx: dict[str, Any], name: str) -> None:
    ran.append(name)


class DeadWorkerSettings:
    queue_name = QUEUE
    functions: ClassVar[list[Any]] = [func(work, name="work")]
    job_serializer = serialize_job
    job_deserializer = deserialize_job


async def test_only_the_job_of_a_dead_worker_runs_again(settings: Settings) -> None:
    pool = await create_queue_pool(settings, queue_name=QUEUE)
    try:
        for name in ("of-dead-worker", "of-live-worker", "of-anonymous-worker"):
            await pool.enqueue_job("work", name, _job_id=name, _queue_name=QUEUE)
        minute = 60_000
        # What a worker killed mid-run leaves: its mark, no heartbeat any more.
        await pool.psetex("arq:in-progress:of-dead-worker", minute, b"0dead")
        await pool.psetex("arq:in-progress:of-live-worker", minute, b"1ive")
        await pool.psetex(WORKER_HEARTBEAT_PREFIX + "1ive", minute, b"1")
        # arq's own mark names no worker: honoured until it expires.
        await pool.psetex("arq:in-progress:of-anonymous-worker", minute, b"1")
        ran.clear()
        worker = create_heartbeat_worker(
            DeadWorkerSettings, redis_pool=pool, burst=True, handle_signals=False
        )
        # The held jobs come first, so the worker has to pass over them. (A burst worker's
        # own poll is no use here: it reads as many jobs as it may still start, and jobs
        # enqueued in the same millisecond are ordered by id, so it could read only a held
        # one, again and again.) arq's own worker would wait out the dead worker's mark.
        held_first = [b"of-live-worker", b"of-anonymous-worker", b"of-dead-worker"]
        await worker.start_jobs(held_first)
        await asyncio.wait_for(asyncio.gather(*worker.tasks.values()), timeout=10)
        assert ran == ["of-dead-worker"]
        # It ran as this worker's job, whose heartbeat is alive; the held ones stayed held.
        assert await pool.exists(WORKER_HEARTBEAT_PREFIX + worker.worker_id)
        assert await pool.get("arq:in-progress:of-live-worker") == b"1ive"
        assert await pool.get("arq:in-progress:of-anonymous-worker") == b"1"
        await worker.close()
    finally:
        await pool.aclose()


async def test_deferred_finished_and_own_jobs_are_not_started(settings: Settings) -> None:
    pool = await create_queue_pool(settings, queue_name=QUEUE)
    try:
        await pool.enqueue_job("work", "due", _job_id="due", _queue_name=QUEUE)
        await pool.enqueue_job(
            "work", "deferred", _job_id="deferred", _queue_name=QUEUE, _defer_by=60
        )
        await pool.enqueue_job("work", "own", _job_id="own", _queue_name=QUEUE)
        ran.clear()
        worker = create_heartbeat_worker(
            DeadWorkerSettings, redis_pool=pool, burst=True, handle_signals=False
        )
        # Marked by this very worker (a start it already made): not started twice.
        await pool.psetex("arq:in-progress:own", 60_000, worker.worker_id.encode())
        # "finished" is in no queue: its job ran and was removed.
        await worker.start_jobs([b"deferred", b"finished", b"own", b"due"])
        assert set(worker.tasks) == {"due"}
        await asyncio.wait_for(asyncio.gather(*worker.tasks.values()), timeout=10)
        assert ran == ["due"]
        assert not await pool.exists("arq:in-progress:deferred", "arq:in-progress:finished")
        assert worker.job_counter == 0
        await worker.close()
    finally:
        await pool.delete(QUEUE, "arq:in-progress:own", "arq:job:deferred", "arq:job:own")
        await pool.aclose()
