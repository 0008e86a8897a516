"""The transactional outbox and its relay.

``add_job`` writes a job in the caller's transaction, so the job exists exactly when the
change that caused it does. The relay claims unsent rows with ``FOR UPDATE SKIP LOCKED`` (two
relays never take the same row) and enqueues each with the row's id as the arq job id (a relay
that crashes after enqueueing, before marking the row, re-enqueues a job arq already refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.observability import request_id_var
from shared.core.queue import (
    ArqRedis,
    Outage,
    QueuedPayload,
    create_queue_pool,
    enqueue_many,
    queued_job,
)
from shared.core.settings import Settings
from shared.jobs import BackgroundJobWork, FanOutEvent, FanOutEvents, Job
from shared.models import OutboxJob
from shared.models.base import utcnow

logger = logging.getLogger(__name__)

OUTBOX_CHANNEL = "plumbline_outbox"


# The row and the notification in one round trip. The notification is delivered at commit,
# and only then: it wakes the relay without waiting for its poll.
_ADD_JOB = select(func.pg_notify(OUTBOX_CHANNEL, "")).add_cte(
    insert(OutboxJob)
    .values(
        id=bindparam("id"),
        queue_name=bindparam("queue_name"),
        function=bindparam("function"),
        payload=bindparam("payload"),
        request_id=bindparam("request_id"),
    )
    .cte("job")
)


async def add_job(session: AsyncSession, job: Job) -> uuid.UUID:
    """Write ``job`` to the outbox in the session's transaction; returns its (arq) job id:
    the ``BackgroundJob``'s own id for a background job's work, else a new one."""
    job_id = job.job_id if isinstance(job, BackgroundJobWork) else uuid.uuid4()
    await session.execute(
        _ADD_JOB,
        {
            "id": job_id,
            "queue_name": job.queue,
            "function": job.function,
            "payload": job.model_dump(mode="json"),
            "request_id": request_id_var.get(),
        },
    )
    return job_id


_CLAIM = text(
    """
    SELECT id, queue_name, function, payload, request_id
    FROM outbox_jobs
    WHERE enqueued_at IS NULL
    ORDER BY created_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_MARK = text("UPDATE outbox_jobs SET enqueued_at = now() WHERE id = ANY(:ids)")


def queued_payloads(rows: Sequence[Any]) -> list[QueuedPayload]:
    """The jobs of outbox rows moved together: each row its own job (``queued_payload``),
    except that two or more ``FanOutEvent`` rows become one ``FanOutEvents`` job.

    Every event commits a fan-out row, and an arq job costs the notifier more to start and
    finish than a batch of events costs it to fan out. The merged job's id is a hash of its
    rows' ids: a relay that enqueued it and died before marking the rows enqueues the same
    rows again under the same id, which arq refuses; rows grouped otherwise the next time
    make another id, and fan-out is idempotent.
    """
    fan_outs = [row for row in rows if row.function == FanOutEvent.function]
    if len(fan_outs) < 2:
        return [queued_payload(row) for row in rows]
    jobs = [queued_payload(row) for row in rows if row.function != FanOutEvent.function]
    ids = hashlib.sha256(b"".join(row.id.bytes for row in fan_outs)).hexdigest()[:32]
    jobs.append(
        queued_job(
            FanOutEvents(event_ids=[row.payload["event_id"] for row in fan_outs]),
            job_id=f"fan-outs:{ids}",
            request_id=fan_outs[0].request_id,
        )
    )
    return jobs


def queued_payload(row: Any) -> QueuedPayload:
    """The job of one outbox row (its ``function``, ``payload``, ``queue_name``, ``id`` and
    ``request_id`` columns), under the row's id."""
    return QueuedPayload(
        function=row.function,
        payload=row.payload,
        queue_name=row.queue_name,
        job_id=str(row.id),
        request_id=row.request_id,
    )


async def relay_batch(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis, *, limit: int
) -> int:
    """Move up to ``limit`` pending outbox rows to arq; returns how many were moved."""
    async with sessionmaker() as session, session.begin():
        rows = (await session.execute(_CLAIM, {"limit": limit})).all()
        if not rows:
            return 0
        await enqueue_many(redis, queued_payloads(rows))
        await session.execute(_MARK, {"ids": [row.id for row in rows]})
    return len(rows)


async def purge_relayed(
    sessionmaker: async_sessionmaker[AsyncSession], *, older_than: timedelta
) -> int:
    """Delete rows relayed longer ago than ``older_than`` (arq owns them by then)."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(OutboxJob).where(OutboxJob.enqueued_at < utcnow() - older_than)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _plain_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def run_relay(settings: Settings) -> None:
    """Relay outbox rows to arq until cancelled, woken by NOTIFY and by a short poll.

    Redis or PostgreSQL going away never ends the relay: the rows stay pending, it waits
    with backoff (one warning per outage) and carries on once both answer again.
    """
    from shared.core.db import create_sessionmaker, engine_from_settings

    engine = engine_from_settings(settings)
    sessionmaker = create_sessionmaker(engine)
    redis_outage = Outage("Redis", log=logger)
    database_outage = Outage("PostgreSQL", log=logger)
    redis: ArqRedis | None = None
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    last_purge = 0.0
    loop = asyncio.get_running_loop()
    try:
        while True:
            if redis is None:
                try:
                    redis = await create_queue_pool(settings, retry=False)
                except (RedisError, OSError) as exc:
                    await asyncio.sleep(redis_outage.failed(exc))
                    continue
            if listener is None or listener.is_closed():
                listener = await _listen(settings, wake)
            try:
                # A short batch took every row committed when it claimed; later commits'
                # notifications have set ``wake`` meanwhile.
                limit = settings.relay_batch_size
                while await relay_batch(sessionmaker, redis, limit=limit) == limit:
                    pass
                if loop.time() - last_purge > 600:
                    await purge_relayed(
                        sessionmaker, older_than=timedelta(hours=settings.outbox_retention_hours)
                    )
                    last_purge = loop.time()
            except RedisError as exc:
                # The pool reconnects by itself on the next command; the claimed rows were
                # rolled back and stay pending.
                await asyncio.sleep(redis_outage.failed(exc))
                continue
            except (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                await asyncio.sleep(database_outage.failed(exc))
                continue
            except Exception as exc:
                logger.exception("outbox relay failed; retrying")
                await asyncio.sleep(database_outage.failed(exc))
                continue
            redis_outage.recovered()
            database_outage.recovered()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=settings.relay_poll_seconds)
            wake.clear()
            await asyncio.sleep(settings.relay_linger_seconds)
    finally:
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=1)
        if redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await redis.aclose()
        await engine.dispose()


async def _listen(settings: Settings, wake: asyncio.Event) -> asyncpg.Connection | None:
    """A connection LISTENing for new outbox rows, or None (the poll alone then serves).

    Quiet on failure: PostgreSQL being away is reported by the relay's own queries.
    """
    assert settings.database_url is not None
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            _plain_dsn(settings.database_url), timeout=5
        )
        await connection.add_listener(OUTBOX_CHANNEL, lambda *_: wake.set())
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        logger.debug("outbox relay cannot LISTEN, polling", extra={"error": repr(exc)})
        return None
    return connection


__all__ = ["OUTBOX_CHANNEL", "add_job", "purge_relayed", "relay_batch", "run_relay"]
