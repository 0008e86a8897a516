"""Everything arq: pools, queue names, JSON job serialisation, and the job handler wrapper.

Keeping arq behind this module keeps it replaceable (the project is in maintenance mode).

arq's own ``run_worker`` lets a Redis ``ConnectionError`` escape and the process exits; ours
(:func:`run_worker`) runs the worker in a loop that waits for Redis to come back, with
backoff, and logs one warning per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from arq import Retry, cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.cron import CronJob
from arq.jobs import ResultNotFound
from arq.typing import WorkerCoroutine
from arq.worker import Function, Worker, create_worker, func
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.core.observability import request_id_var
from shared.core.settings import Settings
from shared.jobs import NOTIFY_QUEUE, REPORT_QUEUE, Job

__all__ = [
    "NOTIFY_QUEUE",
    "REPORT_QUEUE",
    "ArqRedis",
    "CronJob",
    "Outage",
    "RedisSettings",
    "Retry",
    "create_queue_pool",
    "deserialize_job",
    "enqueue",
    "enqueue_payload",
    "job_function",
    "redelivery_seconds",
    "redis_settings",
    "run_and_wait",
    "run_worker",
    "scheduled_job",
    "serialize_job",
]

logger = logging.getLogger(__name__)

JobT = TypeVar("JobT", bound=Job)
StateT = TypeVar("StateT")
Context = dict[str, Any]
# Where a worker's start-up hook puts its typed state (``shared.core.workers.WorkerState``);
# the wrappers below hand it to the handlers, so no job body reads arq's ctx dict.
STATE_KEY = "state"
# How often a caller waiting for a job's result (``run_and_wait``) looks for it.
RESULT_POLL_SECONDS = 0.1


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


async def create_queue_pool(
    settings: Settings, *, queue_name: str = REPORT_QUEUE, retry: bool = True
) -> ArqRedis:
    """A Redis pool that enqueues with our serialisation.

    Without ``retry`` the first failed connection raises at once (a caller that retries on
    its own schedule, with one log line per outage, does not want arq's retries and logs).
    """
    connection = redis_settings(settings)
    if not retry:
        connection.conn_retries = 0
    return await create_pool(
        connection,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=queue_name,
    )


async def enqueue(
    redis: ArqRedis,
    job: Job,
    *,
    job_id: str,
    request_id: str | None = None,
    defer_seconds: float | None = None,
) -> bool:
    """Enqueue a job (to run ``defer_seconds`` from now, when given); False when arq
    already holds a job (or result) with this id."""
    return await enqueue_payload(
        redis,
        function=job.function,
        payload=job.model_dump(mode="json"),
        queue_name=job.queue,
        job_id=job_id,
        request_id=request_id,
        defer_seconds=defer_seconds,
    )


async def enqueue_payload(
    redis: ArqRedis,
    *,
    function: str,
    payload: dict[str, Any],
    queue_name: str,
    job_id: str,
    request_id: str | None,
    defer_seconds: float | None = None,
) -> bool:
    """Enqueue an already serialised job (the outbox keeps them so); False when arq already
    holds a job (or result) with this id. Every enqueue of the code base comes here."""
    queued = await redis.enqueue_job(
        function,
        payload,
        request_id,
        _job_id=job_id,
        _queue_name=queue_name,
        _defer_by=defer_seconds,
    )
    return queued is not None


async def run_and_wait(redis: Redis, job: Job, *, job_id: str, wait_seconds: float) -> Any:
    """Enqueue ``job`` and wait up to ``wait_seconds`` for its result (the job's own
    error is raised again).

    For the rare request that needs a worker's answer now (a channel's test message); every
    other job goes through the outbox. ``redis`` may be any client of the queue's Redis.
    The job expires unstarted after ``wait_seconds``, so a worker that comes up later does not
    run it. TimeoutError when no worker finished it in time.
    """
    queue = ArqRedis(
        connection_pool=redis.connection_pool,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=job.queue,
    )
    queued = await queue.enqueue_job(
        job.function,
        job.model_dump(mode="json"),
        request_id_var.get(),
        _job_id=job_id,
        _queue_name=job.queue,
        _expires=wait_seconds,
    )
    if queued is None:
        raise RuntimeError(f"a job with id '{job_id}' exists already")
    try:
        return await queued.result(timeout=wait_seconds, poll_delay=RESULT_POLL_SECONDS)
    except ResultNotFound as exc:
        # Expired before a worker took it (or its result was not kept).
        raise TimeoutError(f"no worker ran job '{job_id}'") from exc


def job_function(
    model: type[JobT],
    handler: Callable[[StateT, JobT], Awaitable[Any]],
    *,
    timeout: float | None = None,
    max_tries: int | None = None,
    keep_result: float | None = None,
) -> Function:
    """Wrap ``handler(state, job)`` as an arq function named after the job model.

    ``state`` is the worker's typed state (put in place by its start-up hook). The payload is
    validated before the handler runs, and the request id that caused the job is bound for
    the handler's logs.
    """

    @functools.wraps(handler)
    async def run(ctx: Context, payload: dict[str, Any], request_id: str | None = None) -> Any:
        token = request_id_var.set(request_id)
        try:
            job = model.model_validate(payload)
            return await handler(ctx[STATE_KEY], job)
        finally:
            request_id_var.reset(token)

    return func(
        run, name=model.function, timeout=timeout, max_tries=max_tries, keep_result=keep_result
    )


def scheduled_job(
    handler: Callable[[StateT], Awaitable[Any]],
    *,
    name: str,
    seconds: set[int],
    timeout: float,
) -> CronJob:
    """``handler(state)`` run by the worker at these seconds of every minute (unique across
    workers); ``state`` is the worker's typed state."""

    @functools.wraps(handler)
    async def run(ctx: Context) -> Any:
        return await handler(ctx[STATE_KEY])

    coroutine: WorkerCoroutine = run
    return cron(coroutine, name=name, second=seconds, timeout=timeout, run_at_startup=False)


# ------------------------------------------------------------------------- reconnecting

# Between attempts to reach a lost dependency: quick at first (a restart takes a second or
# two), then at most every RECONNECT_MAX_SECONDS so a long outage costs next to nothing.
RECONNECT_MIN_SECONDS = 0.25
RECONNECT_MAX_SECONDS = 5.0


class Outage:
    """Backoff and logging for one dependency that comes and goes (Redis, PostgreSQL).

    ``failed`` returns how long to wait before the next attempt, doubling up to a cap; only
    the first failure of an outage is logged as a warning (the rest at debug), and
    ``recovered`` logs once how long it lasted.
    """

    def __init__(
        self,
        what: str,
        *,
        minimum: float = RECONNECT_MIN_SECONDS,
        maximum: float = RECONNECT_MAX_SECONDS,
        log: logging.Logger | None = None,
    ) -> None:
        self.what = what
        self.minimum = minimum
        self.maximum = maximum
        self.log = log or logger
        self.delay = minimum
        self.since: float | None = None

    @property
    def ongoing(self) -> bool:
        """Whether the last attempt failed and none succeeded since."""
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        """Record a failed attempt; returns the seconds to wait before the next one."""
        if self.since is None:
            self.since = time.monotonic()
            self.delay = self.minimum
            self.log.warning(
                "%s unreachable; retrying until it is back",
                self.what,
                extra={"error": repr(error)},
            )
        else:
            self.log.debug("%s still unreachable", self.what, extra={"error": repr(error)})
        delay = self.delay
        self.delay = min(self.maximum, self.delay * 2)
        return delay

    def recovered(self) -> None:
        """Record a successful attempt (logs once when it ends an outage)."""
        if self.since is not None:
            self.log.info(
                "%s reachable again",
                self.what,
                extra={"outage_seconds": round(time.monotonic() - self.since, 1)},
            )
        self.since = None
        self.delay = self.minimum


async def _wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _close_worker(worker: Worker, main: asyncio.Task[None]) -> None:
    """What arq's ``Worker.close`` does, minus its assumption that Redis is reachable."""
    for task in (*worker.tasks.values(), main):
        task.cancel()
    await asyncio.gather(*worker.tasks.values(), main, return_exceptions=True)
    with contextlib.suppress(RedisError, OSError):
        await worker.pool.delete(worker.health_check_key)


async def run_worker_until_stopped(
    worker_settings: type, *, settings: Settings, stop: asyncio.Event
) -> None:
    """Run an arq worker from ``worker_settings`` until ``stop`` is set, whatever Redis does.

    Each connection gets a fresh arq ``Worker`` (its start-up hook runs again, so work lost
    with Redis is swept back in); when Redis goes away the worker is closed, and a new one
    starts once Redis answers again. Start-up and shutdown hooks run in pairs.
    """
    outage = Outage("Redis")
    queue_name: str = getattr(worker_settings, "queue_name")  # noqa: B009 - a class attribute
    on_startup = getattr(worker_settings, "on_startup", None)
    on_shutdown = getattr(worker_settings, "on_shutdown", None)
    while not stop.is_set():
        try:
            pool = await create_queue_pool(settings, queue_name=queue_name, retry=False)
        except (RedisError, OSError) as exc:
            await _wait_or_stop(stop, outage.failed(exc))
            continue
        ctx: Context = {"settings": settings}
        started = False

        async def startup(ctx: Context) -> None:
            nonlocal started
            if on_startup is not None:
                await on_startup(ctx)
            started = True

        worker = create_worker(
            worker_settings,
            redis_pool=pool,
            handle_signals=False,
            ctx=ctx,
            on_startup=startup,
            on_shutdown=None,
        )
        main = asyncio.create_task(worker.main())
        worker.main_task = main
        stopping = asyncio.create_task(stop.wait())
        outage.recovered()
        try:
            await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            error = main.exception() if main.done() and not main.cancelled() else None
            await _close_worker(worker, main)
            if started and on_shutdown is not None:
                try:
                    await on_shutdown(ctx)
                except Exception:
                    logger.exception("worker shutdown hook failed")
            with contextlib.suppress(RedisError, OSError):
                await pool.aclose()
        if stop.is_set():
            break
        if error is None or isinstance(error, RedisError | OSError):
            await _wait_or_stop(stop, outage.failed(error or ConnectionError("worker stopped")))
        else:
            # Not an outage: a bug or a broken start-up. Logged in full every time, and
            # retried with the same backoff, because a worker that exits stalls all its work.
            logger.error("worker failed; restarting it", exc_info=error)
            await _wait_or_stop(stop, outage.failed(error))


def run_worker(worker_settings: type, *, settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM (running jobs are cancelled and re-queued)."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker_until_stopped(worker_settings, settings=settings, stop=stop)

    asyncio.run(run())


def redelivery_seconds(worker_settings: type) -> float:
    """How long after its worker died mid-run a job runs again: arq's in-progress mark
    expires after the largest timeout of the worker's jobs and scheduled jobs, plus 10 s."""
    worker = create_worker(worker_settings, handle_signals=False, redis_settings=RedisSettings())
    seconds: float = worker.in_progress_timeout_s
    return seconds
