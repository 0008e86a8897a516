"""Everything arq: pools, queue names, JSON job serialisation, and the job handler wrapper.

Keeping arq behind this module keeps it replaceable (the project is in maintenance mode).

arq's own ``run_worker`` lets a Redis ``ConnectionError`` escape and the process exits; ours
(:func:`run_worker`) runs the worker in a loop that waits for Redis to come back, with
backoff, and logs one warning per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from arq import Retry, cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.cron import CronJob
from arq.jobs import ResultNotFound
from arq.jobs import serialize_job as arq_serialize_job
from arq.typing import WorkerCoroutine
from arq.utils import timestamp_ms
from arq.worker import Function, Worker, create_worker, func, get_kwargs
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared.core.db import is_connection_error
from shared.core.observability import request_id_var
from shared.core.settings import Settings
from shared.jobs import NOTIFY_QUEUE, REPORT_QUEUE, Job

__all__ = [
    "NOTIFY_QUEUE",
    "REPORT_QUEUE",
    "ArqJobState",
    "ArqRedis",
    "CronJob",
    "Outage",
    "QueuedPayload",
    "RedisSettings",
    "Retry",
    "create_queue_pool",
    "database_retry_seconds",
    "deserialize_job",
    "enqueue",
    "enqueue_many",
    "enqueue_payload",
    "job_function",
    "job_state",
    "queued_job",
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
    """Enqueue an already serialised job; False when arq already holds a job (or result)
    with this id. Every enqueue of the code base comes here or to :func:`enqueue_many`."""
    queued = await redis.enqueue_job(
        function,
        payload,
        request_id,
        _job_id=job_id,
        _queue_name=queue_name,
        _defer_by=defer_seconds,
    )
    return queued is not None


@dataclass(frozen=True)
class QueuedPayload:
    """One job for :func:`enqueue_many`: what :func:`enqueue_payload` takes, by field."""

    function: str
    payload: dict[str, Any]
    queue_name: str
    job_id: str
    request_id: str | None


# arq's enqueue_job, for many jobs in one round trip: WATCH, EXISTS and MULTI/EXEC per job
# become one script, atomic like the transaction it replaces. KEYS: per job its job key,
# result key and queue; ARGV: per job its id, serialised job, score and expiry (ms).
_ENQUEUE_MANY = """
local queued = {}
for i = 0, #KEYS / 3 - 1 do
  local job_key, result_key, queue = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  if redis.call('EXISTS', job_key, result_key) == 0 then
    redis.call('PSETEX', job_key, ARGV[i * 4 + 4], ARGV[i * 4 + 2])
    redis.call('ZADD', queue, ARGV[i * 4 + 3], ARGV[i * 4 + 1])
    queued[i + 1] = 1
  else
    queued[i + 1] = 0
  end
end
return queued
"""


def queued_job(job: Job, *, job_id: str, request_id: str | None = None) -> QueuedPayload:
    """``job`` as one of :func:`enqueue_many`'s jobs."""
    return QueuedPayload(
        function=job.function,
        payload=job.model_dump(mode="json"),
        queue_name=job.queue,
        job_id=job_id,
        request_id=request_id,
    )


async def enqueue_many(redis: ArqRedis, jobs: Sequence[QueuedPayload]) -> list[bool]:
    """Enqueue already serialised jobs, due now, in one round trip to Redis; for each,
    whether it was new (False: arq already holds a job or result with its id), exactly as
    :func:`enqueue_payload` would answer one by one."""
    if not jobs:
        return []
    enqueue_time_ms = timestamp_ms()
    expires_ms = redis.expires_extra_ms
    keys: list[str] = []
    args: list[str | bytes | int] = []
    for job in jobs:
        keys += [job_key_prefix + job.job_id, result_key_prefix + job.job_id, job.queue_name]
        serialized = arq_serialize_job(
            job.function,
            (job.payload, job.request_id),
            {},
            None,
            enqueue_time_ms,
            serializer=redis.job_serializer,
        )
        args += [job.job_id, serialized, enqueue_time_ms, expires_ms]
    script = redis.register_script(_ENQUEUE_MANY)
    queued = await script(keys=keys, args=args)
    return [bool(flag) for flag in queued]


class ArqJobState(enum.Enum):
    """What Redis holds of one arq job."""

    # Waiting in its queue, or running (a worker's in-progress mark).
    HELD = "held"
    # Ended (its result is kept for the worker's ``keep_result``): arq refuses the id.
    FINISHED = "finished"
    # Nothing: never queued here, or lost with Redis (or its result has expired).
    MISSING = "missing"


async def job_state(redis: Redis, job_id: str) -> ArqJobState:
    """What Redis holds of the job ``job_id`` (one round trip)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
        pipe.exists(result_key_prefix + job_id)
        held, finished = await pipe.execute()
    if held:
        return ArqJobState.HELD
    return ArqJobState.FINISHED if finished else ArqJobState.MISSING


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


# The longest a job that met PostgreSQL unavailable waits before it runs again.
DATABASE_RETRY_MAX_SECONDS = 5.0


def database_retry_seconds(job_try: int) -> float:
    """How long a job that met PostgreSQL unavailable waits before try ``job_try + 1``:
    1, 2, 4, then 5 s, so the 5 tries of a worker span a restart with crash recovery
    (about 12 s); a longer outage leaves the job to its sweep."""
    return min(DATABASE_RETRY_MAX_SECONDS, float(2 ** max(0, job_try - 1)))


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
        except Exception as exc:
            if isinstance(exc, Retry) or not is_connection_error(exc):
                raise
            # PostgreSQL is away (a restart, a failover): run the job again shortly rather
            # than let arq fail it, which would leave its work to a sweep (up to a minute
            # and a half for a fan-out) or a background job unfinished for an hour.
            delay = database_retry_seconds(int(ctx.get("job_try", 1)))
            logger.warning(
                "job met PostgreSQL unavailable; running it again",
                extra={"job": model.function, "retry_in_seconds": delay, "error": repr(exc)},
            )
            raise Retry(defer=delay) from exc
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


# ------------------------------------------------------------------------ dead workers

# arq marks a job in progress for its worker's largest job timeout plus 10 s (130 s on the
# report worker), so a job whose worker died mid-run (kill -9, the OOM killer, a lost
# machine) would wait that long to run again. Our workers write their own id into that mark
# and keep a heartbeat key alive while they run; the mark of a worker whose heartbeat has
# lapsed holds nothing back, so such a job runs again within WORKER_HEARTBEAT_TTL_SECONDS
# (plus a poll) of the death, on any worker of its queue. Jobs are at-least-once already
# (every handler is idempotent): a worker whose event loop stalls past the TTL may see its
# job run twice, never lost.
WORKER_HEARTBEAT_PREFIX = "plumbline:worker-alive:"
WORKER_HEARTBEAT_SECONDS = 1.0
WORKER_HEARTBEAT_TTL_SECONDS = 10.0
# arq's own mark (a worker that does not write its id): honoured until it expires.
_ANONYMOUS_MARK = b"1"


class HeartbeatWorker(Worker):
    """arq's worker, whose in-progress marks name it and outlive it by a heartbeat only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_id = uuid.uuid4().hex
        self.heartbeat_key = WORKER_HEARTBEAT_PREFIX + self.worker_id
        self._beaten_at: float | None = None
        self._mark_script: AsyncScript | None = None

    async def beat(self) -> None:
        """Keep this worker's heartbeat key alive (written at most once a second)."""
        now = time.monotonic()
        if self._beaten_at is not None and now - self._beaten_at < WORKER_HEARTBEAT_SECONDS:
            return
        await self.pool.psetex(self.heartbeat_key, int(WORKER_HEARTBEAT_TTL_SECONDS * 1000), b"1")
        self._beaten_at = now

    async def heart_beat(self) -> None:
        """arq calls this after every poll: our heartbeat, then arq's health record."""
        await self.beat()
        await super().heart_beat()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq 0.28's ``start_jobs``, except that the in-progress mark is this worker's id,
        a mark left by a worker whose heartbeat lapsed does not hold the job back, and the
        checks and the mark are one script (one round trip, not arq's five)."""
        await self.beat()  # alive before any job is marked ours
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = job_id_b.decode()
            if self._mark_script is None or self._mark_script.registered_client is not self.pool:
                self._mark_script = self.pool.register_script(_MARK_IN_PROGRESS)
            # Sent by its digest; in full once per Redis (after a NOSCRIPT answer).
            marked = await self._mark_script(
                keys=[in_progress_key_prefix + job_id, self.queue_name],
                args=[
                    job_id,
                    timestamp_ms(),
                    self.worker_id,
                    int(self.in_progress_timeout_s * 1000),
                    WORKER_HEARTBEAT_PREFIX,
                    _ANONYMOUS_MARK,
                ],
            )
            if not marked:
                # Running elsewhere, finished, or deferred again by another worker.
                self.job_counter -= 1
                self.sem.release()
                continue
            score, dead_worker = marked
            if dead_worker:
                logger.warning(
                    "job %s was running on a worker that died; running it again",
                    job_id,
                    extra={"dead_worker": dead_worker.decode(errors="replace")},
                )
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task


# Marks a queued job as this worker's, atomically: nothing when the job is finished (not in
# the queue), deferred (its score is later than now) or marked by a live worker (its
# heartbeat key exists; arq's anonymous mark and our own count as live). Returns the job's
# score and the mark it replaced ('' when none). The heartbeat key is named from the mark it
# reads, so the script is for one Redis, not a cluster (which Plumbline does not use).
_MARK_IN_PROGRESS = """
local mark = redis.call('GET', KEYS[1])
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
    return false
end
if mark then
    if mark == ARGV[3] or mark == ARGV[6] then
        return false
    end
    if redis.call('EXISTS', ARGV[5] .. mark) == 1 then
        return false
    end
else
    mark = ''
end
redis.call('PSETEX', KEYS[1], ARGV[4], ARGV[3])
return {score, mark}
"""


def create_heartbeat_worker(worker_settings: type, **kwargs: Any) -> HeartbeatWorker:
    """``arq.worker.create_worker`` for a :class:`HeartbeatWorker`."""
    return HeartbeatWorker(**{**get_kwargs(worker_settings), **kwargs})


# ------------------------------------------------------------------------- reconnecting

# Between attempts to reach a lost dependency: quick at first (a restart takes a second or
# two), then every RECONNECT_MAX_SECONDS. The cap is what a dependency that is back already
# may wait to be noticed (5 s added that much to every recovery of the relay); an attempt
# every 2 s of a long outage is still next to nothing (one refused connection).
RECONNECT_MIN_SECONDS = 0.25
RECONNECT_MAX_SECONDS = 2.0


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
        if isinstance(worker, HeartbeatWorker):
            # Stopped cleanly: the jobs it gave back may start elsewhere at once.
            await worker.pool.delete(worker.heartbeat_key)


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

        worker = create_heartbeat_worker(
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
    """The longest a job waits to run again after its worker died mid-run: arq's
    in-progress mark expires after the largest timeout of the worker's jobs and scheduled
    jobs, plus 10 s. A mark of a :class:`HeartbeatWorker` (every worker ``run_worker``
    starts) gives way sooner, once that worker's heartbeat lapses
    (``WORKER_HEARTBEAT_TTL_SECONDS``)."""
    worker = create_worker(worker_settings, handle_signals=False, redis_settings=RedisSettings())
    seconds: float = worker.in_progress_timeout_s
    return seconds
