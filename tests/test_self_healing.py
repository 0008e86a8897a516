"""Workers and the relay outlive Redis: stopped for real, restarted on the same port.

Each test runs one ``plumbline <part>`` as a subprocess against an embedded Redis of its
own (so stopping it disturbs no other test) and the session's migrated database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from services.notifier.worker import WorkerSettings as NotifierSettings
from services.report_worker.worker import WorkerSettings as ReportWorkerSettings
from shared.core.db import create_engine, create_sessionmaker, unit_of_work
from shared.core.embedded import EmbeddedRedis, start_embedded_redis
from shared.core.outbox import add_job
from shared.core.queue import ArqRedis, create_queue_pool, enqueue, redelivery_seconds
from shared.core.settings import Settings
from shared.jobs import NOTIFY_QUEUE, ApplyIntakeRollup, FanOutEvent, Job
from shared.models import OutboxJob

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTAGE_SECONDS = 3.0


@dataclass
class Part:
    """A ``plumbline <command>`` subprocess and its captured stderr."""

    process: subprocess.Popen[bytes]
    err: Path

    def logs(self) -> str:
        return self.err.read_text(errors="replace")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[], EmbeddedRedis]]:
    """Start an embedded Redis under ``tmp_path``; calling again restarts it there."""
    servers: list[EmbeddedRedis] = []

    def start() -> EmbeddedRedis:
        port = servers[-1].port if servers else None
        servers.append(start_embedded_redis(tmp_path / "redis-data", port=port))
        return servers[-1]

    yield start
    for server in servers:
        if server.is_running():
            server.stop()


def _start_part(command: str, database_url: str, redis_url: str, tmp_path: Path) -> Part:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLUMBLINE_")}
    env.update(
        PLUMBLINE_DATABASE_URL=database_url,
        PLUMBLINE_REDIS_URL=redis_url,
        PLUMBLINE_DATA_DIR=str(tmp_path / "data"),
        PLUMBLINE_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PLUMBLINE_LOG_LEVEL="INFO",
        PLUMBLINE_LOG_JSON="true",
    )
    err = tmp_path / f"{command}.err"
    with err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", command],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Part(process=process, err=err)


def _stop_part(part: Part) -> None:
    if part.process.poll() is None:
        part.process.terminate()
        try:
            part.process.wait(10)
        except subprocess.TimeoutExpired:
            part.process.kill()
            part.process.wait()


async def _eventually(check: Callable[[], Awaitable[bool]], part: Part, what: str) -> None:
    # Generous: it returns as soon as the check holds. With 30 s, a test here failed once
    # under a load of 14 on 2 cores, where a part's start-up alone can take that long.
    deadline = time.monotonic() + 90
    while True:
        assert part.process.poll() is None, f"exited while waiting for {what}\n{part.logs()}"
        try:
            if await check():
                return
        except (OSError, ConnectionError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{part.logs()[-4000:]}"
        await asyncio.sleep(0.2)


def _logged(part: Part, text: str) -> Callable[[], Awaitable[bool]]:
    """A check for ``_eventually``: whether the part has logged ``text``."""

    async def check() -> bool:
        return text in part.logs()

    return check


async def _with_pool(settings: Settings, use: Callable[[ArqRedis], Awaitable[bool]]) -> bool:
    pool = await create_queue_pool(settings, retry=False)
    try:
        return await use(pool)
    finally:
        await pool.aclose()


async def _outlives_redis_outage(
    command: str,
    database_url: str,
    own_redis: Callable[[], EmbeddedRedis],
    tmp_path: Path,
    submit: Callable[[Settings], Awaitable[Callable[[], Awaitable[bool]]]],
    *,
    submit_during_outage: bool = False,
) -> None:
    """Start ``command``; prove it works, survives a stopped Redis, and works after it.

    With ``submit_during_outage`` the second piece of work is handed in while Redis is down
    (the relay's work is in PostgreSQL), so the part meets the outage for sure.
    """
    redis = own_redis()
    settings = Settings(database_url=database_url, redis_url=redis.url)
    part = _start_part(command, database_url, redis.url, tmp_path)
    try:
        done = await submit(settings)
        await _eventually(done, part, "work before the outage")

        redis.stop()
        if submit_during_outage:
            done = await submit(settings)
        await asyncio.sleep(OUTAGE_SECONDS)
        # On a loaded machine the part may take longer than that to notice: wait until it has.
        await _eventually(_logged(part, "Redis unreachable"), part, "the outage to be noticed")
        restarted = own_redis()
        assert restarted.port == redis.port

        if not submit_during_outage:
            done = await submit(settings)
        await _eventually(done, part, "work after Redis came back")
        logs = part.logs()
        # One warning for the outage, however many reconnect attempts it took.
        assert logs.count("Redis unreachable") == 1, logs[-4000:]
        assert "Redis reachable again" in logs
    finally:
        _stop_part(part)
    assert part.process.returncode == 0, part.logs()[-4000:]


def _job_submitter(
    job: Callable[[], Job],
) -> Callable[[Settings], Awaitable[Callable[[], Awaitable[bool]]]]:
    """Enqueue a fresh job; the check says whether a worker has finished it."""

    async def submit(settings: Settings) -> Callable[[], Awaitable[bool]]:
        job_id = f"heal-{uuid.uuid4().hex}"

        async def queue_it(pool: ArqRedis) -> bool:
            return await enqueue(pool, job(), job_id=job_id)

        assert await _with_pool(settings, queue_it)

        async def finished(pool: ArqRedis) -> bool:
            return any(result.job_id == job_id for result in await pool.all_job_results())

        return lambda: _with_pool(settings, finished)

    return submit


async def test_report_worker_outlives_redis_restart(
    database_url: str, own_redis: Callable[[], EmbeddedRedis], tmp_path: Path
) -> None:
    submit = _job_submitter(lambda: ApplyIntakeRollup(batch_id=uuid.uuid4()))
    await _outlives_redis_outage("report-worker", database_url, own_redis, tmp_path, submit)


async def test_notifier_outlives_redis_restart(
    database_url: str, own_redis: Callable[[], EmbeddedRedis], tmp_path: Path
) -> None:
    submit = _job_submitter(lambda: FanOutEvent(event_id=uuid.uuid4()))
    await _outlives_redis_outage("notifier", database_url, own_redis, tmp_path, submit)


async def test_relay_outlives_redis_restart(
    database_url: str, own_redis: Callable[[], EmbeddedRedis], tmp_path: Path
) -> None:
    async def submit(settings: Settings) -> Callable[[], Awaitable[bool]]:
        engine = create_engine(database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                job_id = await add_job(session, FanOutEvent(event_id=uuid.uuid4()))
        finally:
            await engine.dispose()

        async def relayed() -> bool:
            engine = create_engine(database_url)
            try:
                async with create_sessionmaker(engine)() as session:
                    row = await session.scalar(select(OutboxJob).where(OutboxJob.id == job_id))
            finally:
                await engine.dispose()
            if row is None or row.enqueued_at is None:
                return False

            async def queued(pool: ArqRedis) -> bool:
                jobs = await pool.queued_jobs(queue_name=NOTIFY_QUEUE)
                return any(job.job_id == str(job_id) for job in jobs)

            return await _with_pool(settings, queued)

        return relayed

    await _outlives_redis_outage(
        "relay", database_url, own_redis, tmp_path, submit, submit_during_outage=True
    )


async def test_a_job_of_a_killed_worker_runs_again_within_130_seconds() -> None:
    # Was 610 s for the report worker: one scheduled job had a 600 s timeout.
    assert redelivery_seconds(ReportWorkerSettings) <= 130
    assert redelivery_seconds(NotifierSettings) <= 130


async def test_worker_started_before_redis_waits_for_it(
    database_url: str, own_redis: Callable[[], EmbeddedRedis], tmp_path: Path
) -> None:
    redis = own_redis()
    redis.stop()
    part = _start_part("report-worker", database_url, redis.url, tmp_path)
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
        # Started before Redis: it must meet the outage (its start-up may outlast the sleep on
        # a loaded machine) and keep running.
        await _eventually(_logged(part, "Redis unreachable"), part, "the outage to be noticed")
        settings = Settings(database_url=database_url, redis_url=own_redis().url)
        submit = _job_submitter(lambda: ApplyIntakeRollup(batch_id=uuid.uuid4()))
        await _eventually(await submit(settings), part, "work once Redis is up")
        assert part.logs().count("Redis unreachable") == 1, part.logs()[-4000:]
    finally:
        _stop_part(part)
    assert part.process.returncode == 0, part.logs()[-4000:]
