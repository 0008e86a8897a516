"""The embedded Redis killed (SIGKILL) with jobs queued and jobs running: when it comes back,
every job's effect happens, and happens once (issue 12, "Faults").

Which of the two holds the work: the embedded Redis writes every command to its append-only
file before it answers (``shared.core.embedded``), so a killed Redis comes back with every
job it acknowledged; PostgreSQL holds the rest (the outbox until a job is relayed, the
sweeps' tables after). The first test proves the queued jobs survive in Redis itself: the
workers are stopped, so nothing but Redis holds them when it dies. The second kills Redis
under a running sampling job: the worker gives the job back as soon as Redis returns,
instead of leaving it to arq's in-progress mark (the largest job timeout plus 10 s). The
third restarts Redis without its data (what a crash inside the append-only file's fsync
second, or a Redis replaced by an empty one, leaves): PostgreSQL holds enough to redo every
job, through the sweeps (``shared.background_jobs.recovery`` for the background jobs, the
rollup and delivery sweeps for the rest).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid

import asyncpg
from redis.asyncio import Redis

from shared.jobs import NOTIFY_QUEUE, REPORT_QUEUE
from tests.faults.conftest import bring_up
from tests.support.fault_load import Load, Sink
from tests.support.fault_reconcile import reconcile
from tests.support.fault_stack import FaultStack, plain_dsn

logger = logging.getLogger(__name__)

# Well inside arq's redelivery of a killed job's in-progress mark (130 s for the report
# worker): a job given back late would show here.
RECOVERED_WITHIN_SECONDS = 60.0
# Work Redis lost waits for its sweep: at most a minute and a half (the events' sweep).
LOST_WORK_RECOVERED_WITHIN_SECONDS = 120.0


async def _queued(stack: FaultStack) -> dict[str, int]:
    """Jobs waiting in each arq queue."""
    redis = Redis.from_url(stack.redis_url)
    try:
        return {queue: int(await redis.zcard(queue)) for queue in (REPORT_QUEUE, NOTIFY_QUEUE)}
    finally:
        await redis.aclose()


async def _all_relayed(stack: FaultStack, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    pending = "SELECT count(*) FROM outbox_jobs WHERE enqueued_at IS NULL"
    while (left := await stack.fetchval(pending)) > 0:
        assert time.monotonic() < deadline, f"{left} outbox rows not relayed"
        await asyncio.sleep(0.1)


async def test_jobs_queued_when_redis_is_killed_run_once(stack: FaultStack, sink: Sink) -> None:
    setup = await bring_up(stack, sink)
    load = Load(setup, stack.api_urls, refuse_every=4, sample_every=0)
    async with load.running():
        await load.wait_for(lambda: len(load.acknowledged) > 300)
        # Nobody takes jobs now: what is relayed from here on lives only in Redis.
        for name in ("report-worker", "notifier"):
            assert stack.part(name).terminate() == 0, stack.part(name).logs()[-3000:]
        for _ in range(5):
            assert await load.sample() is not None, load.summary()
        await asyncio.sleep(2)  # rejected batches and disagreements to announce, too
    # The load has stopped; every job it caused is in Redis, none done.
    await _all_relayed(stack)
    queued = await _queued(stack)
    assert queued[REPORT_QUEUE] >= 5, queued
    assert queued[NOTIFY_QUEUE] > 0, queued
    stack.stop_redis(clean=False)
    stack.start_redis()
    assert await _queued(stack) == queued, "jobs Redis acknowledged were lost with it"
    for name in ("report-worker", "notifier"):
        stack.part(name).start()

    result = await reconcile(stack, load, sink, within=RECOVERED_WITHIN_SECONDS)
    logger.warning("Redis killed with %s queued: %s", queued, result.summary())
    assert result.sampling_jobs == 5
    assert result.delivered > 0


def _wipe_redis_data(stack: FaultStack) -> None:
    """Delete what the (stopped) embedded Redis would replay: it comes back empty."""
    assert stack.redis is not None
    assert not stack.redis.is_running()
    directory = stack.redis.directory
    # appendonly.aof (Redis 6), appendonlydir/ (Redis 7+), dump.rdb (snapshots are off).
    shutil.rmtree(directory / "appendonlydir", ignore_errors=True)
    for data in (*directory.glob("appendonly.aof*"), directory / "dump.rdb"):
        data.unlink(missing_ok=True)


async def test_jobs_queued_when_redis_restarts_without_its_data_run_once(
    stack: FaultStack, sink: Sink
) -> None:
    setup = await bring_up(stack, sink)
    load = Load(setup, stack.api_urls, refuse_every=4, sample_every=0)
    async with load.running():
        await load.wait_for(lambda: len(load.acknowledged) > 300)
        # Nobody takes jobs now: what is relayed from here on lives only in Redis.
        for name in ("report-worker", "notifier"):
            assert stack.part(name).terminate() == 0, stack.part(name).logs()[-3000:]
        for _ in range(5):
            assert await load.sample() is not None, load.summary()
        await asyncio.sleep(2)
    await _all_relayed(stack)
    queued = await _queued(stack)
    assert queued[REPORT_QUEUE] >= 5, queued
    stack.stop_redis(clean=False)
    _wipe_redis_data(stack)
    stack.start_redis()
    assert await _queued(stack) == {REPORT_QUEUE: 0, NOTIFY_QUEUE: 0}, "Redis kept its data"
    for name in ("report-worker", "notifier"):
        stack.part(name).start()

    # Every job lost with Redis is done from what PostgreSQL holds, each effect once
    # (sampling jobs complete with one run each, one audit per decision, ...), within the
    # sweeps' periods: the lost background jobs' every 15 s, the intake batches' and the
    # events' once a minute (the events' 30 s after the event).
    result = await reconcile(stack, load, sink, within=LOST_WORK_RECOVERED_WITHIN_SECONDS)
    logger.warning("Redis restarted empty with %s queued: %s", queued, result.summary())
    assert result.sampling_jobs == 5
    assert result.delivered > 0


async def _kill_redis_under_running_sampling(stack: FaultStack, load: Load) -> str:
    """Request sampling runs until one is seen running; SIGKILL Redis then. Its job id."""
    connection = await asyncpg.connect(plain_dsn(stack.database_url))
    try:
        for _ in range(10):
            job_id = await load.sample()
            assert job_id is not None, load.summary()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status = await connection.fetchval(
                    "SELECT status FROM background_jobs WHERE id = $1", uuid.UUID(job_id)
                )
                if status == "running":
                    stack.stop_redis(clean=False)
                    return job_id
                if status in ("complete", "failed"):
                    break
                await asyncio.sleep(0.005)
    finally:
        await connection.close()
    raise AssertionError("no sampling job seen running in 10 tries")


async def test_job_running_when_redis_is_killed_runs_again_once(
    stack: FaultStack, sink: Sink
) -> None:
    setup = await bring_up(stack, sink)
    pids = {part.name: part.pid for part in stack.parts}
    load = Load(setup, stack.api_urls, sample_every=0)
    async with load.running():
        await load.wait_for(
            lambda: len(load.acknowledged) > 1000 and len(load.verdicts) > 3, within=120
        )
        job_id = await _kill_redis_under_running_sampling(stack, load)
        await asyncio.sleep(2)
        stack.start_redis()
        back = time.monotonic()
        await asyncio.sleep(3)

    left = RECOVERED_WITHIN_SECONDS - (time.monotonic() - back)
    result = await reconcile(stack, load, sink, within=left)
    logger.warning("Redis killed under sampling job %s: %s", job_id, result.summary())
    assert job_id in load.sampling_jobs
    assert {part.name: part.pid for part in stack.parts if part.alive()} == pids
