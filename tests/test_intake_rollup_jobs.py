"""The intake writer queues one rollup job per interval under load, yet never holds one back
when it is asked to settle or when many batches wait (services/audit_api/decisions/writer.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.decisions import writer as writer_module
from services.audit_api.decisions.writer import DecisionWriter
from shared.core.settings import Settings
from shared.jobs import ApplyIntakeRollup
from shared.models import IntakeBatch, OutboxJob, Source
from shared.schemas.decisions import DecisionEvent, IntakeResult
from tests.conftest import auth, decision_event

Sessionmaker = async_sessionmaker[AsyncSession]


async def rollup_jobs(sessionmaker: Sessionmaker) -> list[dict[str, Any]]:
    """The payloads of the intake rollup jobs in the outbox, oldest first."""
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(OutboxJob.payload)
            .where(OutboxJob.function == ApplyIntakeRollup.function)
            .order_by(OutboxJob.created_at)
        )
        return list(rows)


async def source_id(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> uuid.UUID:
    created = await client.post(
        "/v1/sources", json={"name": "rollup-jobs"}, headers=auth(admin_key)
    )
    assert created.status_code == 201, created.text
    async with sessionmaker() as session:
        found = await session.scalar(select(Source.id).where(Source.name == "rollup-jobs"))
    assert found is not None
    return found


def events(first: int, count: int) -> list[DecisionEvent]:
    return [DecisionEvent.model_validate(decision_event(first + n)) for n in range(count)]


async def test_one_rollup_job_per_interval_and_none_held_back_when_settling(
    settings: Settings,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    source = await source_id(client, admin_key, sessionmaker)
    assert settings.database_url is not None
    writer = DecisionWriter(
        settings.database_url.replace("+asyncpg", ""),
        flushers=1,
        rollup_interval_seconds=30,
        busy_rollup_interval_seconds=30,
    )
    await writer.start()
    try:
        # The first batch after a quiet spell is announced at once ...
        assert await writer.write(source_id=source, events=events(0, 2)) == IntakeResult(
            accepted=2, duplicates=0
        )
        deadline = time.monotonic() + 5
        while not await rollup_jobs(sessionmaker):
            assert time.monotonic() < deadline, "the first batch's rollup job was not queued"
            await asyncio.sleep(0.02)
        # ... the next ones wait for the interval (30 s here), all in one job ...
        for first in (10, 20, 30):
            await writer.write(source_id=source, events=events(first, 2))
        assert len(await rollup_jobs(sessionmaker)) == 1
        # ... unless the writer is asked to settle: then their job is queued now.
        started = time.monotonic()
        await writer.quiesce()
        assert time.monotonic() - started < 5
    finally:
        await writer.stop()

    jobs = await rollup_jobs(sessionmaker)
    assert len(jobs) == 2
    async with sessionmaker() as session:
        batches = await session.scalar(select(func.count()).select_from(IntakeBatch))
    assert batches == 4
    # A job names the last batch it announces; it applies every pending one.
    assert all(ApplyIntakeRollup.model_validate(job).batch_id for job in jobs)


async def test_many_waiting_batches_end_the_interval_early(
    settings: Settings,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "ROLLUP_BATCHES_AT_ONCE", 3)
    source = await source_id(client, admin_key, sessionmaker)
    assert settings.database_url is not None
    writer = DecisionWriter(
        settings.database_url.replace("+asyncpg", ""),
        flushers=1,
        rollup_interval_seconds=30,
        busy_rollup_interval_seconds=30,
    )
    await writer.start()
    try:
        await writer.write(source_id=source, events=events(0, 1))  # announced at once
        for first in (10, 20, 30):  # the third waiting batch ends the 30 s wait
            await writer.write(source_id=source, events=events(first, 1))
        deadline = time.monotonic() + 5
        while len(await rollup_jobs(sessionmaker)) < 2:
            assert time.monotonic() < deadline, "three waiting batches did not end the interval"
            await asyncio.sleep(0.02)
    finally:
        await writer.stop()


async def test_quiet_intake_gets_a_job_promptly_and_busy_intake_waits_longer(
    settings: Settings,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "ROLLUP_BUSY_EVENTS", 3)
    source = await source_id(client, admin_key, sessionmaker)
    assert settings.database_url is not None
    writer = DecisionWriter(
        settings.database_url.replace("+asyncpg", ""),
        flushers=1,
        rollup_interval_seconds=0.05,
        busy_rollup_interval_seconds=30,
    )

    async def jobs_become(count: int) -> None:
        deadline = time.monotonic() + 5
        while len(await rollup_jobs(sessionmaker)) < count:
            assert time.monotonic() < deadline, f"rollup job {count} was not queued"
            await asyncio.sleep(0.02)

    await writer.start()
    try:
        await writer.write(source_id=source, events=events(0, 1))
        await jobs_become(1)
        await writer.write(source_id=source, events=events(10, 1))  # quiet: 0.05 s later
        await jobs_become(2)
        await writer.write(source_id=source, events=events(20, 3))  # a job of 3: busy
        await jobs_become(3)
        await writer.write(source_id=source, events=events(30, 1))
        await asyncio.sleep(0.5)
        assert len(await rollup_jobs(sessionmaker)) == 3  # waits for the busy interval
        await writer.quiesce()
        assert len(await rollup_jobs(sessionmaker)) == 4
    finally:
        await writer.stop()
