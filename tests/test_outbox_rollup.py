"""The outbox relay and the report worker: accepted decisions reach the daily intake counts
(the decision side of the analytics rollups)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.intake_rollups import sweep_intake_batches
from services.report_worker.worker import WorkerSettings
from shared.analytics.rollups import apply_pending_intake_batches
from shared.core.outbox import add_job, purge_relayed, relay_batch
from shared.core.queue import ArqRedis, QueuedPayload, enqueue_many
from shared.core.settings import Settings
from shared.jobs import ApplyIntakeRollup
from shared.models import IntakeBatch, OutboxJob
from tests.conftest import (
    SignedSender,
    auth,
    decision_event,
    relay_all,
    run_worker_burst,
    wait_for_outbox,
)
from tests.support.workers import worker_state


async def pending_outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        query = select(func.count()).select_from(OutboxJob).where(OutboxJob.enqueued_at.is_(None))
        return int(await session.scalar(query) or 0)


async def test_accepted_batches_reach_the_intake_rollup(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    # 23:30 UTC on the 24th is already the 25th in Berlin: days count in the market's zone.
    await sender.post(
        {
            "events": [
                decision_event(1, decided_at="2026-11-24T10:00:00Z"),
                decision_event(2, decided_at="2026-11-24T23:30:00Z"),
                decision_event(3, decided_at="2026-11-24T12:00:00+01:00", moderator_id="mod-7"),
            ]
        }
    )
    await sender.post(decision_event(4, decided_at="2026-11-24T11:00:00Z"))
    await sender.post(decision_event(4, decided_at="2026-11-24T11:00:00Z"))  # duplicate

    await wait_for_outbox(sessionmaker)
    assert await relay_all(sessionmaker, queue) >= 1
    worker = await run_worker_burst(WorkerSettings, settings)
    assert worker.jobs_failed == 0

    response = await client.get("/v1/intake-rollups?market=DE", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    rows = {(r["day"], r["moderator_id"]): r["decisions"] for r in response.json()["items"]}
    assert rows == {
        ("2026-11-24", "mod-42"): 2,
        ("2026-11-25", "mod-42"): 1,
        ("2026-11-24", "mod-7"): 1,
    }


async def test_rollup_counts_each_batch_once_under_concurrent_and_repeated_jobs(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for start in range(0, 50, 10):
        await sender.post({"events": [decision_event(n) for n in range(start, start + 10)]})

    async def apply() -> int:
        async with sessionmaker() as session, session.begin():
            return await apply_pending_intake_batches(session, limit=2)

    # At-least-once delivery: several jobs, run at once and again later, count 50 once.
    counted = sum(await asyncio.gather(*(apply() for _ in range(6))))
    counted += sum([await apply() for _ in range(3)])
    assert counted == 50
    response = await client.get("/v1/intake-rollups", headers=auth(admin_key))
    assert [r["decisions"] for r in response.json()["items"]] == [50]
    async with sessionmaker() as session:
        pending = await session.scalar(
            select(func.count()).select_from(IntakeBatch).where(IntakeBatch.applied_at.is_(None))
        )
    assert pending == 0


async def test_scheduled_sweep_applies_batches_whose_job_was_lost(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await sender.post({"events": [decision_event(n) for n in range(7)]})
    state = worker_state(settings, sessionmaker)
    # The outbox job is never relayed (as if Redis lost it); the sweep still counts the batch.
    assert await sweep_intake_batches(state) == 7
    assert await sweep_intake_batches(state) == 0
    response = await client.get("/v1/intake-rollups", headers=auth(admin_key))
    assert [r["decisions"] for r in response.json()["items"]] == [7]


async def test_two_relays_never_enqueue_the_same_row(
    sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    async with sessionmaker() as session, session.begin():
        ids = [await add_job(session, ApplyIntakeRollup(batch_id=uuid.uuid4())) for _ in range(300)]
    moved = await asyncio.gather(*(relay_all(sessionmaker, queue) for _ in range(4)))
    assert sum(moved) == 300
    queued = await queue.zrange("plumbline:report", 0, -1)
    assert sorted(q.decode() for q in queued) == sorted(str(i) for i in ids)
    assert await pending_outbox(sessionmaker) == 0


async def test_crash_between_enqueue_and_commit_enqueues_nothing_twice(
    sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:

    async with sessionmaker() as session, session.begin():
        job_id = await add_job(session, ApplyIntakeRollup(batch_id=uuid.uuid4()))

    class CrashAfterEnqueue(Exception):
        pass

    # Enqueue to Redis, then die before the row is marked: the transaction rolls back.
    async def enqueue_then_crash(redis: ArqRedis, jobs: list[QueuedPayload]) -> list[bool]:
        await enqueue_many(redis, jobs)
        raise CrashAfterEnqueue

    monkeypatch.setattr("shared.core.outbox.enqueue_many", enqueue_then_crash)
    with contextlib.suppress(CrashAfterEnqueue):
        await relay_batch(sessionmaker, queue, limit=10)
    monkeypatch.undo()
    assert await pending_outbox(sessionmaker) == 1  # nothing lost

    assert await relay_all(sessionmaker, queue) == 1
    assert await pending_outbox(sessionmaker) == 0
    queued = [q.decode() for q in await queue.zrange("plumbline:report", 0, -1)]
    assert queued == [str(job_id)]  # arq refused the second enqueue of the same job id


async def test_relayed_rows_are_purged_after_retention(
    sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:

    async with sessionmaker() as session, session.begin():
        await add_job(session, ApplyIntakeRollup(batch_id=uuid.uuid4()))
        await add_job(session, ApplyIntakeRollup(batch_id=uuid.uuid4()))
    await relay_all(sessionmaker, queue)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE outbox_jobs SET enqueued_at = now() - interval '2 days'")
        )
        await add_job(session, ApplyIntakeRollup(batch_id=uuid.uuid4()))
    assert await purge_relayed(sessionmaker, older_than=timedelta(hours=24)) == 2
    assert await pending_outbox(sessionmaker) == 1


async def test_redis_outage_keeps_jobs_pending_until_it_returns(
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    # Intake does not touch Redis: decisions are accepted while it is away.
    assert (await sender.post(decision_event(1))).status_code == 202
    # The writer queues its rollup job shortly after the commit (later while it is busy).
    await wait_for_outbox(sessionmaker)
    unreachable = ArqRedis.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RedisConnectionError):
            await relay_batch(sessionmaker, unreachable, limit=10)
    finally:
        await unreachable.aclose()
    assert await pending_outbox(sessionmaker) == 1
    assert await relay_all(sessionmaker, queue) == 1
    assert await pending_outbox(sessionmaker) == 0
