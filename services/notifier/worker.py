"""The notifier's arq settings: fan-out and delivery jobs, and the sweeps behind them.

PostgreSQL, not Redis, knows what still has to be sent. Jobs are the fast path: fan-out
queues a ``deliver_message`` for each new delivery's channel that is idle (its head; a busy
channel's new deliveries are reached by the job sending it); a delivery job sends its
channel's head and goes on down the channel in order (``shared.deliveries.lifecycle``: one
delivery of a channel at a time, in production order); a failed attempt's next one is queued
for when it is due. A channel with a rate (``channel_rate_per_second`` per kind) takes a
turn from a limiter in Redis shared by every notifier before each send, and waits when there
is none. The sweeps are the net under it: at start-up and every five seconds, held channels
whose probe is due are probed, each channel's head delivery that is due gets a job again (a
job lost with Redis, or one whose worker was killed mid-send once its lease ran out: within
the lease plus five seconds), and events that should have deliveries but have none get their
fan-out again. Job ids ``delivery:<id>:<attempt>`` make a second enqueue of the same attempt
a no-op (and a killed worker's job, whose id arq keeps in progress for a while, never blocks
the next attempt's), and a job for a delivery that is not due or not its channel's turn does
nothing, so duplicated jobs cost a few queries each.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.channels import ChannelAdapter, build_adapters
from services.notifier.deliveries import (
    decrypt_cached,
    deliver_job_id,
    fan_out_events,
    fan_out_job_id,
    send_claimed,
    send_test_message,
)
from services.notifier.digests import send_due_digests
from services.notifier.http11 import notifier_http_transport
from shared.core.db import unit_of_work
from shared.core.encryption import SecretBox, derived_key, secret_box
from shared.core.observability import configure_logging, request_id_var
from shared.core.queue import (
    ArqRedis,
    Context,
    Retry,
    deserialize_job,
    enqueue,
    enqueue_many,
    job_function,
    queued_job,
    scheduled_job,
    serialize_job,
)
from shared.core.rate_limit import RateLimiter
from shared.core.settings import Settings
from shared.core.workers import (
    WorkerState,
    install_state,
    installed_state,
    queue_of,
    startup_settings,
)
from shared.deliveries.lifecycle import (
    LEASE_MARGIN_SECONDS,
    ClaimedDelivery,
    RetryPolicy,
    SendResult,
    claim_delivery,
    claim_followers,
    due_deliveries,
    events_missing_deliveries,
    idle_channel_heads,
    probe_held_channels,
    record_attempt,
    record_sent,
    release_claim,
    release_unsent,
)
from shared.jobs import NOTIFY_QUEUE, DeliverMessage, FanOutEvent, FanOutEvents, SendTestMessage
from shared.models import Channel
from shared.models.base import utcnow

logger = logging.getLogger(__name__)

# A delivery job stops after the send timeout plus this (two short transactions), shorter
# than the claim's lease (send timeout + LEASE_MARGIN_SECONDS): a stuck job is cancelled
# before its lease runs out, so two workers never send the same delivery at once. The
# handler applies it, from the settings read at start-up; arq's own timeout below is only
# the backstop (and bounds how soon a killed worker's job runs again).
DELIVER_JOB_OVERHEAD_SECONDS = 20.0
DELIVER_JOB_TIMEOUT = 120
# Attempts are counted and capped in PostgreSQL; this only has to exceed them.
DELIVER_JOB_MAX_TRIES = 1000
# A delivery job goes on to its channel's next deliveries (unthrottled channels) for this
# long, then hands the channel to a new job: the whole job stays well inside its timeout.
DRAIN_BUDGET_SECONDS = 30.0
# An unthrottled channel's deliveries claimed together at most (its head and those right
# behind it): sent one at a time, in order, recorded in one transaction.
CLAIM_BATCH = 50
# A batch's later deliveries are sent only this long after its first: with the send timeout
# and the job overhead, every send and the record end inside the leases taken at the claim
# (send timeout + LEASE_MARGIN_SECONDS).
BATCH_SEND_WINDOW_SECONDS = 5.0
SWEEP_BATCH = 500
# The notifier's arq poll (WorkerSettings.poll_delay).
NOTIFY_POLL_SECONDS = 0.05
# Channels locked at once when fan-out looks for idle ones (an event's deliveries are each
# of another channel); few enough for PostgreSQL's lock table however many recipients.
IDLE_CHECK_CHANNELS = 100
SWEEP_MAX_PER_RUN = 10_000
# A due delivery normally has its job already (deferred by Retry, or just queued): leave the
# sweep a second behind it so it re-queues only what was lost.
DELIVERY_SWEEP_GRACE = timedelta(seconds=1)
# Events are fanned out within a second of their commit; older ones without their deliveries
# were lost. Only the last day is looked at (the outbox keeps jobs that long, too).
EVENT_SWEEP_GRACE = timedelta(seconds=30)
EVENT_SWEEP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifierState(WorkerState):
    """The notifier's state: one HTTP transport (one connection pool) behind every adapter."""

    http: httpx.AsyncBaseTransport
    adapters: Mapping[str, ChannelAdapter]
    box: SecretBox
    retry_policy: RetryPolicy
    rate_limiter: RateLimiter
    # Keys the limiter's per-target hashes (see rate_limit_key).
    target_key: bytes
    fan_outs: FanOutBatcher

    async def close(self) -> None:
        """Close the HTTP transport and the database engine."""
        await self.http.aclose()
        await WorkerState.close(self)


def open_notifier_state(settings: Settings, *, redis: ArqRedis) -> NotifierState:
    """The notifier's state for ``settings``: database, HTTP transport, adapters, keys."""
    # Timeouts are the adapters' (per request); redirects are never followed by a transport.
    proxy = settings.notifier_proxy_url
    http = notifier_http_transport(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        proxy=proxy.get_secret_value() if proxy is not None else None,
    )
    return NotifierState(
        **WorkerState.base_fields(settings, redis=redis),
        http=http,
        adapters=build_adapters(http, settings=settings),
        box=secret_box(settings),
        retry_policy=RetryPolicy.from_settings(settings),
        rate_limiter=RateLimiter(redis),
        target_key=derived_key(settings, purpose="rate-limit-target"),
        fan_outs=FanOutBatcher(),
    )


async def startup(ctx: Context) -> None:
    """Open the database engine and HTTP transport, then sweep work left unfinished."""
    settings = startup_settings(ctx)
    configure_logging(service="notifier", level=settings.log_level, json=settings.log_json)
    state = open_notifier_state(settings, redis=queue_of(ctx))
    install_state(ctx, state)
    # Work left by a killed worker or lost with Redis runs now, not at the next sweep.
    try:
        await sweep_due_deliveries(state, grace=timedelta(0))
        await sweep_events_missing_deliveries(state, grace=timedelta(0))
    except Exception:
        logger.exception("start-up sweep failed; the periodic sweep will retry")


async def shutdown(ctx: Context) -> None:
    """Close what ``startup`` opened."""
    await installed_state(ctx).close()


async def enqueue_deliveries(redis: ArqRedis, deliveries: Iterable[tuple[uuid.UUID, int]]) -> int:
    """Queue the next attempt of each ``(delivery id, attempts made)``; returns how many
    were new to arq (an attempt already queued or running is refused by its job id)."""
    request_id = request_id_var.get()
    jobs = [
        queued_job(
            DeliverMessage(delivery_id=delivery_id),
            job_id=deliver_job_id(delivery_id, attempts_made + 1),
            request_id=request_id,
        )
        for delivery_id, attempts_made in deliveries
    ]
    return sum(await enqueue_many(redis, jobs))


async def run_fan_out_event(state: NotifierState, job: FanOutEvent) -> int:
    """arq entry point: the event's deliveries are created and their idle channels' heads
    queued by ``fan_out_batch``, together with the other events whose jobs are running at
    the same time (``FanOutBatcher``); returns how many deliveries were not yet attempted.
    The job ends once that is committed, so a lost batch is a failed job, retried."""
    return await state.fan_outs.fan_out(job.event_id, run=functools.partial(fan_out_batch, state))


async def run_fan_out_events(state: NotifierState, job: FanOutEvents) -> int:
    """arq entry point: many events' fan-outs (the relay's merge of their jobs), each event
    as its own job would be fanned out (``FanOutBatcher``: a batch that fails is retried
    event by event); returns how many deliveries were not yet attempted. One event failing
    fails the job, which runs again: fan-out is idempotent."""
    run = functools.partial(fan_out_batch, state)
    counts = await asyncio.gather(
        *(state.fan_outs.fan_out(event_id, run=run) for event_id in job.event_ids)
    )
    return sum(counts)


async def fan_out_batch(
    state: NotifierState, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Create the deliveries of ``event_ids`` (one unit of work), then queue a job for each
    of their channels that is idle (``idle_channel_heads``): a busy channel's worker goes
    on to them itself, so a backlog costs no job per message. Returns, per event, how many
    of its deliveries were not yet attempted."""
    async with unit_of_work(state.sessionmaker) as session:
        unattempted = await fan_out_events(
            session,
            event_ids=event_ids,
            now=utcnow(),
            supported_kinds=state.adapters.keys(),
            public_url=state.settings.public_url,
            settings=state.settings,
            box=state.box,
        )
    missing = [event_id for event_id in event_ids if event_id not in unattempted]
    if missing:
        logger.warning(
            "events to fan out do not exist", extra={"event_ids": [str(e) for e in missing]}
        )
    new = [delivery_id for ids in unattempted.values() for delivery_id in ids]
    try:
        heads = await _idle_heads(state, new)
    except (SQLAlchemyError, OSError):
        # Every new delivery gets its job, as it would without the shortcut.
        logger.warning("could not find the idle channels; queueing every delivery", exc_info=True)
        heads = [(delivery_id, 0) for delivery_id in new]
    try:
        await enqueue_deliveries(state.redis, heads)
    except (RedisError, OSError):
        # The deliveries are committed and due: the sweep queues them.
        logger.warning("could not queue deliveries; the sweep will", exc_info=True)
    logger.info(
        "events fanned out",
        extra={"events": len(unattempted), "deliveries": len(new), "jobs": len(heads)},
    )
    return {event_id: len(ids) for event_id, ids in unattempted.items()}


FanOutRun = Callable[[Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, int]]]

# Events fanned out in one transaction at most: their rows stay far below an INSERT's limit.
FAN_OUT_BATCH = 200


class FanOutBatcher:
    """Fans out the events of the fan-out jobs running at the same time together.

    A job hands its event over and waits for the batch holding it to be committed. While a
    batch runs, the events of jobs started meanwhile wait for the next one, so under load a
    transaction covers many events (its statements cost about what one event's do) and a
    lone event is fanned out at once, as before. A batch that fails is tried again event by
    event, so one bad event fails its own job only.
    """

    def __init__(self, *, max_batch: int = FAN_OUT_BATCH) -> None:
        self._max_batch = max_batch
        self._waiting: list[tuple[uuid.UUID, asyncio.Future[int]]] = []
        self._task: asyncio.Task[None] | None = None

    async def fan_out(self, event_id: uuid.UUID, *, run: FanOutRun) -> int:
        """Fan ``event_id`` out with the others waiting, through ``run`` (``fan_out_batch``
        on the worker's state); its unattempted deliveries' count."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((event_id, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(run))
        return await future

    async def _drain(self, run: FanOutRun) -> None:
        try:
            while self._waiting:
                batch = [entry for entry in self._waiting[: self._max_batch] if not entry[1].done()]
                del self._waiting[: self._max_batch]
                if batch:
                    await self._run_batch(run, batch)
        finally:
            # Stopped (the worker shuts down): the jobs still waiting fail and run again.
            for _, future in self._waiting:
                future.cancel()
            self._waiting.clear()

    async def _run_batch(
        self, run: FanOutRun, batch: list[tuple[uuid.UUID, asyncio.Future[int]]]
    ) -> None:
        try:
            counts = await run([event_id for event_id, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            logger.warning("a fan-out batch failed; fanning its events out one by one")
            for entry in batch:
                await self._run_batch(run, [entry])
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for event_id, future in batch:
            _settle(future, result=counts.get(event_id, 0))


def _settle(
    future: asyncio.Future[int], *, result: int = 0, error: BaseException | None = None
) -> None:
    """Complete ``future`` unless its job stopped waiting (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def _idle_heads(
    state: NotifierState, delivery_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, int]]:
    """``(id, attempts)`` of the heads of the idle channels among those of ``delivery_ids``
    (committed), a few channels' locks per transaction."""
    heads: list[tuple[uuid.UUID, int]] = []
    for start in range(0, len(delivery_ids), IDLE_CHECK_CHANNELS):
        async with unit_of_work(state.sessionmaker) as session:
            due = await idle_channel_heads(
                session,
                delivery_ids=delivery_ids[start : start + IDLE_CHECK_CHANNELS],
                now=utcnow(),
            )
        heads += [(head.id, head.attempts) for head in due]
    return heads


async def run_deliver_message(state: NotifierState, job: DeliverMessage) -> str:
    """arq entry point: one attempt of one delivery, if it is due and its channel's turn,
    then the channel's next deliveries in order (see ``shared.deliveries.lifecycle``).

    Claim and record are separate transactions; the HTTP calls run between them with no
    transaction open. A channel without a rate limit claims its head together with up to
    ``CLAIM_BATCH - 1`` deliveries right behind it (``claim_followers``): they are sent one
    at a time, in order, until one fails, and recorded in one transaction, the unsent given
    back (``release_unsent``); a channel with a backlog thus costs two transactions a batch,
    not a message. A rate-limited channel's claim is one delivery, given back unmade when
    the limit says wait, and the attempt runs again after the wait. When the last sent is
    delivered (or dead for a refusal) the channel's next deliveries are claimed in the same
    transaction as the outcome and sent by this job, for up to ``DRAIN_BUDGET_SECONDS``;
    after that, or for a rate-limited channel, the next gets its own job at once. A failed
    attempt's next one is queued for when it is due; the schedule itself is in PostgreSQL,
    should that job be lost.
    """
    timeout = state.settings.delivery_timeout_seconds
    started = time.monotonic()
    async with asyncio.timeout(timeout + DELIVER_JOB_OVERHEAD_SECONDS):
        async with unit_of_work(state.sessionmaker) as session:
            claims = await _claim_batch(state, session, job.delivery_id)
    if not claims:
        return "nothing to do"
    status = "nothing to do"
    while claims:
        batch = claims
        claims = []
        head = batch[0]
        async with asyncio.timeout(
            timeout + DELIVER_JOB_OVERHEAD_SECONDS + BATCH_SEND_WINDOW_SECONDS
        ):
            wait = await _rate_limit_wait(state, head)
            if wait > 0:
                async with unit_of_work(state.sessionmaker) as session:
                    released = await release_claim(session, claim=head, now=utcnow(), retry_in=wait)
                    await release_unsent(session, claims=batch[1:], now=utcnow())
                if released:
                    await _attempt_later(
                        state, job, head.delivery_id, attempt=head.attempt, delay=wait
                    )
                return "rate limited"
            sent = await _send_in_order(state, batch)
            attempted, result = sent[-1]
            async with unit_of_work(state.sessionmaker) as session:
                now = utcnow()
                await release_unsent(session, claims=batch[len(sent) :], now=now)
                if result.succeeded:
                    # The usual case: every send recorded and the channel's next delivery
                    # named in one statement (after the channel's lock), not four or more.
                    outcome = await record_sent(session, sent=sent, now=now)
                else:
                    if delivered := sent[:-1]:
                        await record_sent(session, sent=delivered, now=now)
                    outcome = await record_attempt(
                        session, claim=attempted, result=result, now=now, policy=state.retry_policy
                    )
                following = outcome.next_delivery
                if (
                    following is not None
                    and _rate_of(state, attempted.channel_kind) is None
                    and time.monotonic() - started < DRAIN_BUDGET_SECONDS
                ):
                    claims = await _claim_batch(state, session, following.id, channel_locked=True)
                    if claims:
                        following = None
        status = outcome.status
        for claim, claim_result in sent:
            failed = claim is attempted and outcome.status != "delivered"
            # A delivered message's attempt is stored (its delivery's attempts); a line per
            # message at INFO would cost a busy notifier a tenth of its CPU for no news.
            logger.log(
                logging.INFO if failed else logging.DEBUG,
                "delivery attempted",
                extra={
                    "delivery_id": str(claim.delivery_id),
                    "attempt": claim.attempt,
                    "status_code": claim_result.status_code,
                    "error": claim_result.error,
                    "outcome": outcome.status if claim is attempted else "delivered",
                    "next_attempt_in_s": outcome.delay_seconds if claim is attempted else None,
                },
            )
        if outcome.status == "retry":
            assert outcome.delay_seconds is not None
            await _attempt_later(
                state,
                job,
                attempted.delivery_id,
                attempt=attempted.attempt + 1,
                delay=outcome.delay_seconds,
            )
        if following is not None:
            await _queue_quietly(state, ((following.id, following.attempts),))
    return status


async def _send_in_order(
    state: NotifierState, batch: Sequence[ClaimedDelivery]
) -> list[tuple[ClaimedDelivery, SendResult]]:
    """Send a channel's claimed deliveries one after another, in their order, until one
    fails or ``BATCH_SEND_WINDOW_SECONDS`` have passed (the rest stay unsent, inside their
    leases); at least the first is sent."""
    sent: list[tuple[ClaimedDelivery, SendResult]] = []
    began = time.monotonic()
    for claim in batch:
        if sent and (
            not sent[-1][1].succeeded or time.monotonic() - began > BATCH_SEND_WINDOW_SECONDS
        ):
            break
        sent.append((claim, await send_claimed(claim, adapters=state.adapters, box=state.box)))
    return sent


async def _claim_batch(
    state: NotifierState,
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    channel_locked: bool = False,
) -> list[ClaimedDelivery]:
    """The claim of ``delivery_id`` (``claim_delivery``), and for a channel without a rate
    limit the deliveries right behind it (``claim_followers``), sent in the same turn."""
    claim = await _claim(state, session, delivery_id, channel_locked=channel_locked)
    if claim is None:
        return []
    if _rate_of(state, claim.channel_kind) is not None:
        return [claim]
    return [
        claim,
        *await claim_followers(
            session,
            head=claim,
            now=claim.claimed_at,
            lease_seconds=state.settings.delivery_timeout_seconds + LEASE_MARGIN_SECONDS,
            max_attempts=state.retry_policy.max_attempts,
            limit=CLAIM_BATCH - 1,
        ),
    ]


async def _claim(
    state: NotifierState,
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    channel_locked: bool = False,
) -> ClaimedDelivery | None:
    return await claim_delivery(
        session,
        delivery_id=delivery_id,
        now=utcnow(),
        lease_seconds=state.settings.delivery_timeout_seconds + LEASE_MARGIN_SECONDS,
        max_attempts=state.retry_policy.max_attempts,
        supported_kinds=state.adapters.keys(),
        channel_locked=channel_locked,
    )


def _rate_of(state: NotifierState, kind: str) -> float | None:
    """Messages a second a channel of ``kind`` may get; None: unlimited."""
    return state.settings.channel_rate_per_second.get(kind)


async def _rate_limit_wait(state: NotifierState, claim: ClaimedDelivery) -> float:
    """0.0 when the claimed attempt may be sent now (its target's turn taken), else the
    seconds to wait. Shared by every notifier, in Redis."""
    rate = _rate_of(state, claim.channel_kind)
    if rate is None:
        return 0.0
    return await state.rate_limiter.wait_seconds(rate_limit_key(state, claim), per_second=rate)


def rate_limit_key(state: NotifierState, claim: ClaimedDelivery) -> str:
    """The limiter's key for a claim: its target, not its channel, since the chat service
    limits per webhook URL and two channels may post to one. The URL is a credential, so the
    key is a keyed hash of it (nothing in Redis reveals it)."""
    try:
        target = decrypt_cached(state.box, claim.target_encrypted)
    except RuntimeError:
        # The send will fail on the same key and say so; limit it per channel meanwhile.
        return f"channel:{claim.channel_id}"
    digest = hmac.new(state.target_key, target.encode(), hashlib.sha256).hexdigest()
    return f"target:{digest}"


async def _attempt_later(
    state: NotifierState, job: DeliverMessage, delivery_id: uuid.UUID, *, attempt: int, delay: float
) -> None:
    """Run ``attempt`` of a delivery in ``delay`` seconds: this job again (arq ``Retry``)
    when it is the job's own delivery, else a job of its own."""
    if delivery_id == job.delivery_id:
        raise Retry(defer=delay)
    try:
        await enqueue(
            state.redis,
            DeliverMessage(delivery_id=delivery_id),
            job_id=deliver_job_id(delivery_id, attempt),
            request_id=request_id_var.get(),
            defer_seconds=delay,
        )
    except (RedisError, OSError):
        # It is due in PostgreSQL: the sweep queues it.
        logger.warning("could not queue a delivery's next attempt; the sweep will", exc_info=True)


async def _queue_quietly(state: NotifierState, deliveries: Iterable[tuple[uuid.UUID, int]]) -> None:
    try:
        await enqueue_deliveries(state.redis, deliveries)
    except (RedisError, OSError):
        logger.warning("could not queue deliveries; the sweep will", exc_info=True)


async def run_send_test_message(state: NotifierState, job: SendTestMessage) -> dict[str, Any]:
    """arq entry point: send a channel's test message now; returns what the target answered
    (the API waits for it). Not a delivery: nothing is stored, nothing is retried."""
    async with unit_of_work(state.sessionmaker) as session:
        channel = await session.get(Channel, job.channel_id)
        if channel is not None:
            session.expunge(channel)
    if channel is None:
        return {"status_code": None, "error": "channel not found", "duration_ms": 0}
    result = await send_test_message(
        channel,
        adapters=state.adapters,
        box=state.box,
        now=utcnow(),
        public_url=state.settings.public_url,
    )
    logger.info(
        "test message sent",
        extra={
            "channel_id": str(channel.id),
            "status_code": result.status_code,
            "error": result.error,
        },
    )
    return {
        "delivered": result.succeeded,
        "status_code": result.status_code,
        "response_excerpt": result.response_excerpt,
        "error": result.error,
        "duration_ms": result.duration_ms,
    }


async def sweep_due_deliveries(
    state: NotifierState, *, grace: timedelta = DELIVERY_SWEEP_GRACE
) -> int:
    """Probe held channels whose probe is due, then queue every channel's head delivery due
    for longer than ``grace``; returns how many jobs were queued."""
    queued = await probe_held_channels_now(state)
    cutoff = utcnow() - grace
    after: tuple[datetime, uuid.UUID] | None = None
    seen = 0
    while seen < SWEEP_MAX_PER_RUN:
        async with unit_of_work(state.sessionmaker) as session:
            due = await due_deliveries(session, now=cutoff, limit=SWEEP_BATCH, after=after)
        if not due:
            break
        queued += await enqueue_deliveries(state.redis, ((row.id, row.attempts) for row in due))
        seen += len(due)
        after = (due[-1].next_attempt_at, due[-1].id)
        if len(due) < SWEEP_BATCH:
            break
    if queued:
        logger.info("sweep queued due deliveries", extra={"queued": queued})
    return queued


async def probe_held_channels_now(state: NotifierState) -> int:
    """Re-drive, with one attempt each, the dead deliveries holding their channels whose
    probe is due (every ``delivery_max_delay_seconds``); returns how many were queued."""
    async with unit_of_work(state.sessionmaker) as session:
        probes = await probe_held_channels(
            session,
            now=utcnow(),
            probe_after_seconds=state.settings.delivery_max_delay_seconds,
            max_attempts=state.retry_policy.max_attempts,
            limit=SWEEP_BATCH,
        )
    if not probes:
        return 0
    logger.info("probing held channels", extra={"deliveries": [str(p.id) for p in probes]})
    return await enqueue_deliveries(state.redis, ((probe.id, probe.attempts) for probe in probes))


async def sweep_events_missing_deliveries(
    state: NotifierState, *, grace: timedelta = EVENT_SWEEP_GRACE
) -> int:
    """Fan out again every recent event that lacks a delivery it should have."""
    now = utcnow()
    async with unit_of_work(state.sessionmaker) as session:
        event_ids = await events_missing_deliveries(
            session,
            since=now - EVENT_SWEEP_WINDOW,
            until=now - grace,
            supported_kinds=state.adapters.keys(),
            limit=SWEEP_BATCH,
        )
    jobs = [
        queued_job(FanOutEvent(event_id=event_id), job_id=fan_out_job_id(event_id))
        for event_id in event_ids
    ]
    queued = sum(await enqueue_many(state.redis, jobs))
    if queued:
        logger.info("sweep queued fan-outs", extra={"queued": queued})
    return queued


async def _sweep_due_deliveries_cron(state: NotifierState) -> int:
    return await sweep_due_deliveries(state)


async def _sweep_events_cron(state: NotifierState) -> int:
    return await sweep_events_missing_deliveries(state)


async def _send_digests_cron(state: NotifierState) -> int:
    return await send_due_digests(
        state.sessionmaker,
        now=utcnow(),
        supported_kinds=state.adapters.keys(),
        public_url=state.settings.public_url,
    )


class WorkerSettings:
    queue_name = NOTIFY_QUEUE
    functions: ClassVar[list[Any]] = [
        job_function(FanOutEvent, run_fan_out_event, timeout=60),
        job_function(FanOutEvents, run_fan_out_events, timeout=60),
        # No result key left behind: `delivery:<id>:<n>` is refused only while queued or
        # running, so the same attempt number can be queued again after a redrive.
        job_function(
            DeliverMessage,
            run_deliver_message,
            timeout=DELIVER_JOB_TIMEOUT,
            max_tries=DELIVER_JOB_MAX_TRIES,
            keep_result=0,
        ),
        # The API reads the result within seconds; kept a minute, tried once.
        job_function(
            SendTestMessage,
            run_send_test_message,
            timeout=DELIVER_JOB_TIMEOUT,
            max_tries=1,
            keep_result=60,
        ),
    ]
    cron_jobs: ClassVar[list[Any]] = [
        scheduled_job(
            _sweep_due_deliveries_cron,
            name="sweep_due_deliveries",
            seconds=set(range(0, 60, 5)),
            timeout=60,
        ),
        scheduled_job(
            _sweep_events_cron,
            name="sweep_events_missing_deliveries",
            seconds={30},
            timeout=60,
        ),
        # Digests of the period just ended (services.notifier.digests), a few seconds after
        # each minute starts so that the full hour's last items have been fanned out.
        scheduled_job(_send_digests_cron, name="send_digests", seconds={10}, timeout=60),
    ]
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = staticmethod(serialize_job)
    job_deserializer = staticmethod(deserialize_job)
    # Short: a killed worker's job is picked up again after job_timeout + 10 s (the sweep
    # usually gets there first, once the delivery's lease has run out).
    job_timeout = 60
    max_tries = 5
    # Fan-out ids are outbox ids (kept so a relay re-sending one is refused for a while);
    # fan-out is idempotent anyway, so a minute is plenty and frees failed ids soon.
    keep_result = 60
    max_jobs = 50
    # How often an idle notifier looks for new jobs (arq's default is 0.5 s). An event
    # crosses two of its queues (fan-out, then its channel's delivery), each waiting half a
    # poll on average: at 0.5 s that was most of a message's delay with no backlog. Polling
    # an empty queue 20 times a second costs about 1 % of a core (0.1 % at 0.5 s; measured
    # with arq's worker alone on this machine under load).
    poll_delay = NOTIFY_POLL_SECONDS
    # No redis_settings: whoever runs the worker connects it to the Redis of the settings it
    # resolved at start-up (shared.core.queue.run_worker, the tests' burst runner).
