"""Everything arq: pools, queue names, JSON job serialisation, and the job handler wrapper.

Keeping arq behind this module keeps it replaceable (the project is in maintenance mode).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from arq import Retry, cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Function, func, run_worker

from shared.core.observability import request_id_var
from shared.core.settings import Settings
from shared.jobs import NOTIFY_QUEUE, REPORT_QUEUE, Job

__all__ = [
    "NOTIFY_QUEUE",
    "REPORT_QUEUE",
    "ArqRedis",
    "CronJob",
    "RedisSettings",
    "Retry",
    "create_queue_pool",
    "deserialize_job",
    "enqueue",
    "job_function",
    "redis_settings",
    "run_worker",
    "scheduled_job",
    "serialize_job",
]

logger = logging.getLogger(__name__)

JobT = TypeVar("JobT", bound=Job)
Context = dict[str, Any]


def serialize_job(data: dict[str, Any]) -> bytes:
    """JSON, not pickle: payloads are readable, and nothing executes on load."""
    return orjson.dumps(data, default=str)


def deserialize_job(data: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(data)
    return loaded


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for the configured Redis (the URL must be resolved)."""
    if settings.redis_url is None:
        raise RuntimeError("PLUMBLINE_REDIS_URL is not resolved; start via `plumbline`")
    parsed = RedisSettings.from_dsn(settings.redis_url)
    parsed.conn_timeout = 2
    parsed.conn_retries = 2
    return parsed


async def create_queue_pool(settings: Settings) -> ArqRedis:
    """A Redis pool that enqueues with our serialisation."""
    return await create_pool(
        redis_settings(settings),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=REPORT_QUEUE,
    )


async def enqueue(redis: ArqRedis, job: Job, *, job_id: str, request_id: str | None = None) -> bool:
    """Enqueue a job; False when arq already holds a job (or result) with this id."""
    queued = await redis.enqueue_job(
        job.function,
        job.model_dump(mode="json"),
        request_id,
        _job_id=job_id,
        _queue_name=job.queue,
    )
    return queued is not None


def job_function(
    model: type[JobT],
    handler: Callable[[Context, JobT], Awaitable[Any]],
    *,
    timeout: float | None = None,
    max_tries: int | None = None,
    keep_result: float | None = None,
) -> Function:
    """Wrap ``handler(ctx, job)`` as an arq function named after the job model.

    The payload is validated before the handler runs, and the request id that caused the job
    is bound for the handler's logs.
    """

    @functools.wraps(handler)
    async def run(ctx: Context, payload: dict[str, Any], request_id: str | None = None) -> Any:
        token = request_id_var.set(request_id)
        try:
            job = model.model_validate(payload)
            return await handler(ctx, job)
        finally:
            request_id_var.reset(token)

    return func(
        run, name=model.function, timeout=timeout, max_tries=max_tries, keep_result=keep_result
    )


def scheduled_job(
    coroutine: WorkerCoroutine,
    *,
    name: str,
    seconds: set[int],
    timeout: float,
) -> CronJob:
    """A job run by the worker at these seconds of every minute (unique across workers)."""
    return cron(coroutine, name=name, second=seconds, timeout=timeout, run_at_startup=False)
