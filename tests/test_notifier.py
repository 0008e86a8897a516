"""The notifier's webhook path end to end: events, fan-out, signed deliveries, retries,
dead letters and redrives, against a real local HTTP server and real arq workers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import (
    SUPPORTED_KINDS,
    RenderedMessage,
    SendResult,
    parse_retry_after,
    render_message,
)
from services.notifier.deliveries import fan_out_event
from services.notifier.templates import render_text, render_webhook_body
from services.notifier.worker import WorkerSettings
from shared.core.encryption import secret_box
from shared.core.outbox import add_job, queued_payloads, run_relay
from shared.core.queue import ArqRedis, enqueue, enqueue_many
from shared.core.settings import Settings
from shared.core.signing import verify_signature
from shared.deliveries.lifecycle import RetryPolicy, claim_delivery, classify
from shared.events import (
    EventType,
    PolicyUpdatePublished,
    PolicyUpdateText,
)
from shared.jobs import ApplyIntakeRollup, FanOutEvent, FanOutEvents
from shared.models import Channel, Delivery, DeliveryAttempt, Event
from shared.models.base import utcnow
from tests.conftest import SignedSender, _free_port, auth, relay_all, run_worker_burst
from tests.support.webhooks import (
    SECRET,
    ReceivedRequest,
    Reply,
    WebhookReceiver,
    create_channel,
    emit_rejected_batch,
    notify,
    rejected_batch_data,
)

# --- a real HTTP endpoint standing in for a customer's webhook receiver ---------------------


# --- helpers ------------------------------------------------------------------------------


async def deliveries_of(
    sessionmaker: async_sessionmaker[AsyncSession], event_id: uuid.UUID
) -> list[Delivery]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.created_at)
            )
        )


async def attempts_of(
    sessionmaker: async_sessionmaker[AsyncSession], delivery_id: uuid.UUID
) -> list[DeliveryAttempt]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.attempted_at)
            )
        )


def signature_is_valid(request: ReceivedRequest, secret: str = SECRET) -> bool:
    return verify_signature(
        [secret], request.headers["x-plumbline-signature"], request.body, int(time.time()), 300
    )


def gaps(requests: list[ReceivedRequest]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]


# --- the delivery path --------------------------------------------------------------------


async def test_webhook_is_signed_and_carries_the_event(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/plumbline"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-plumbline-event-id"] == str(event.id)
    assert request.headers["x-plumbline-delivery-attempt"] == "1"
    assert signature_is_valid(request)
    assert not signature_is_valid(request, secret="whsec_some-other-secret-000000")

    body = orjson.loads(request.body)
    assert list(body) == ["id", "type", "occurred_at", "data"]
    assert body["id"] == str(event.id)
    assert body["type"] == "source.rejected_batch"
    assert datetime.fromisoformat(body["occurred_at"]) == event.occurred_at
    assert body["data"] == event.data
    assert body["data"]["source"] == "acme"

    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert delivery.status == "delivered"
    assert delivery.delivered_at is not None
    assert delivery.body == request.body
    [attempt] = await attempts_of(sessionmaker, delivery.id)
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, None)


async def test_5xx_is_retried_with_doubling_backoff_then_delivered(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(500, body=b"boom"), Reply(503))
    event = await emit_rejected_batch(sessionmaker)
    slow = settings.model_copy(
        update={"delivery_base_delay_seconds": 0.2, "delivery_max_delay_seconds": 5.0}
    )
    await notify(slow, sessionmaker, queue)

    first, second, third = receiver.requests
    # The same bytes every time, each with a valid signature and its attempt number.
    assert first.body == second.body == third.body
    assert all(signature_is_valid(request) for request in receiver.requests)
    assert [r.headers["x-plumbline-delivery-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    # Backoff 0.2 s then 0.4 s, each jittered down by at most 20 %: the second wait is longer.
    after_first, after_second = gaps(receiver.requests)
    assert after_first >= 0.16
    assert after_second >= 0.32
    assert after_second > after_first

    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    attempts = await attempts_of(sessionmaker, delivery.id)
    assert [(a.number, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert attempts[0].error == "HTTP 500: boom"


async def test_429_retry_after_is_honoured(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(429, headers={"Retry-After": "1"}))
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    first, second = receiver.requests
    # The backoff alone would be 0.05 s: the receiver's one second wins.
    assert gaps(receiver.requests)[0] >= 1.0
    assert first.body == second.body
    # A fresh signature per attempt (its timestamp moved on), both valid.
    assert first.headers["x-plumbline-signature"] != second.headers["x-plumbline-signature"]
    assert signature_is_valid(first)
    assert signature_is_valid(second)
    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


async def test_timeout_is_retried(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(200, hang_seconds=3.0))
    event = await emit_rejected_batch(sessionmaker)
    impatient = settings.model_copy(update={"delivery_timeout_seconds": 0.3})
    started = time.monotonic()
    await notify(impatient, sessionmaker, queue)

    assert time.monotonic() - started < 2.5
    assert len(receiver.requests) == 2
    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert delivery.status == "delivered"
    first, second = await attempts_of(sessionmaker, delivery.id)
    assert (first.status_code, first.error) == (None, "no response within 0.3 s")
    assert second.status_code == 200


async def test_dead_letter_after_max_attempts_then_redrive_resends_the_same_bytes(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    receiver.answer(*[Reply(502)] * 3)
    event = await emit_rejected_batch(sessionmaker)
    # A dead delivery holds its channel, which is probed every delivery_max_delay_seconds
    # (the worker's start-up sweep included): long enough here that the second run below
    # probes nothing, however slowly it starts.
    three_tries = settings.model_copy(
        update={"delivery_max_attempts": 3, "delivery_max_delay_seconds": 600}
    )
    await notify(three_tries, sessionmaker, queue)

    assert len(receiver.requests) == 3
    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 3, 502)
    assert delivery.dead_at is not None
    # Nothing more happens to a dead delivery, however often the worker runs.
    await notify(three_tries, sessionmaker, queue)
    assert len(receiver.requests) == 3

    dead = await client.get("/v1/deliveries?status=dead", headers=auth(admin_key))
    assert [item["id"] for item in dead.json()["items"]] == [str(delivery.id)]

    redriven = await client.post(f"/v1/deliveries/{delivery.id}/redrive", headers=auth(admin_key))
    assert redriven.status_code == 202, redriven.text
    assert redriven.json()["status"] == "pending"
    assert redriven.json()["attempt_count"] == 0
    await notify(three_tries, sessionmaker, queue)

    assert len(receiver.requests) == 4
    resent = receiver.requests[3]
    assert resent.body == receiver.requests[0].body
    assert resent.headers["x-plumbline-event-id"] == str(event.id)
    assert resent.headers["x-plumbline-delivery-attempt"] == "1"
    assert signature_is_valid(resent)

    detail = await client.get(f"/v1/deliveries/{delivery.id}", headers=auth(admin_key))
    assert detail.json()["status"] == "delivered"
    assert [a["status_code"] for a in detail.json()["attempts"]] == [502, 502, 502, 200]
    again = await client.post(f"/v1/deliveries/{delivery.id}/redrive", headers=auth(admin_key))
    assert again.status_code == 409


async def test_unreachable_endpoint_is_retried_then_dead_lettered(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    # Nothing listens on this port: every attempt is refused at connect.
    await create_channel(client, admin_key, f"http://127.0.0.1:{_free_port()}/hook")
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings.model_copy(update={"delivery_max_attempts": 3}), sessionmaker, queue)

    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("dead", 3)
    attempts = await attempts_of(sessionmaker, delivery.id)
    assert [a.status_code for a in attempts] == [None, None, None]
    assert all(a.error and a.error.startswith("ConnectError") for a in attempts)


@pytest.mark.parametrize(
    "reply",
    [Reply(400), Reply(410), Reply(302, headers={"Location": "https://elsewhere.example/"})],
)
async def test_other_4xx_and_redirects_are_permanent(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    reply: Reply,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    receiver.answer(reply)
    event = await emit_rejected_batch(sessionmaker)
    await notify(settings, sessionmaker, queue)

    assert len(receiver.requests) == 1
    [delivery] = await deliveries_of(sessionmaker, event.id)
    assert (delivery.status, delivery.attempts) == ("dead", 1)
    assert delivery.last_status_code == reply.status


async def test_fan_out_twice_creates_one_delivery(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    event = await emit_rejected_batch(sessionmaker)
    await relay_all(sessionmaker, queue)
    # The same event fanned out again, as a redelivered job would.
    await enqueue(queue, FanOutEvent(event_id=event.id), job_id="fan-out-again")
    await run_worker_burst(WorkerSettings, settings)
    async with sessionmaker() as session, session.begin():
        unattempted = await fan_out_event(
            session, event_id=event.id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
        )
    assert unattempted == []

    assert len(await deliveries_of(sessionmaker, event.id)) == 1
    assert len(receiver.requests) == 1


async def test_relay_merges_fan_outs_into_one_job_that_reaches_every_event(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    events = [await emit_rejected_batch(sessionmaker, f"event {i} is invalid") for i in range(5)]
    async with sessionmaker() as session, session.begin():
        rollup_job = await add_job(session, ApplyIntakeRollup(batch_id=uuid.uuid4()))
    assert await relay_all(sessionmaker, queue) == 6

    # One job for the five fan-outs (in commit order), the other row its own job.
    notify_jobs = await queue.queued_jobs(queue_name=FanOutEvents.queue)
    assert [(job.function, job.args[0]) for job in notify_jobs] == [
        ("fan_out_events", {"event_ids": [str(event.id) for event in events]})
    ]
    assert [q.decode() for q in await queue.zrange(ApplyIntakeRollup.queue, 0, -1)] == [
        str(rollup_job)
    ]
    await run_worker_burst(WorkerSettings, settings)
    for event in events:
        [delivery] = await deliveries_of(sessionmaker, event.id)
        assert delivery.status == "delivered"
    assert [orjson.loads(r.body)["data"]["reason"] for r in receiver.requests] == [
        f"event {i} is invalid" for i in range(5)
    ]


async def test_the_relay_lingers_so_commits_in_quick_succession_move_as_one_job(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    # The first commit wakes the relay, which then waits out its linger: the two commits
    # made meanwhile move with the first, as one fan-out job (without the linger the first
    # moved alone, as soon as its notification arrived).
    relay = asyncio.create_task(
        run_relay(settings.model_copy(update={"relay_linger_seconds": 1.0}))
    )
    try:
        await asyncio.sleep(0.5)  # listening
        events = [await emit_rejected_batch(sessionmaker, "first")]
        await asyncio.sleep(0.3)
        events += [await emit_rejected_batch(sessionmaker, f"then {i}") for i in range(2)]
        async with asyncio.timeout(10):
            while True:
                if await queue.zcard(FanOutEvents.queue) and not await pending_rows(sessionmaker):
                    break
                await asyncio.sleep(0.05)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
    notify_jobs = await queue.queued_jobs(queue_name=FanOutEvents.queue)
    assert [(job.function, job.args[0]) for job in notify_jobs] == [
        ("fan_out_events", {"event_ids": [str(event.id) for event in events]})
    ]


async def pending_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(
            await session.scalar(text("SELECT count(*) FROM outbox_jobs WHERE enqueued_at IS NULL"))
            or 0
        )


async def test_a_merged_fan_out_enqueued_twice_runs_once(
    sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis
) -> None:
    # A relay that enqueued the merged job and died before marking its rows: the next relay
    # moves the same rows under the same job id, and arq refuses the second.
    for i in range(3):
        await emit_rejected_batch(sessionmaker, f"event {i}")
    async with sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM outbox_jobs ORDER BY created_at"))).all()
    first, again = queued_payloads(rows), queued_payloads(rows)
    assert [job.job_id for job in first] == [job.job_id for job in again]
    assert await enqueue_many(queue, first) == [True]
    assert await enqueue_many(queue, again) == [False]
    # Other rows make another job: fan-out is idempotent, so running both is harmless.
    assert queued_payloads(rows[:2])[0].job_id != first[0].job_id
    # A single fan-out keeps its own job, under its row's id.
    assert [job.job_id for job in queued_payloads(rows[:1])] == [str(rows[0].id)]


async def test_fan_out_matches_type_market_and_kind(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    everywhere = await create_channel(client, admin_key, receiver.url, name="everywhere")
    austria = await create_channel(client, admin_key, receiver.url, name="at", markets=["AT"])
    await create_channel(
        client, admin_key, receiver.url, name="policies", events=("policy_update.published",)
    )
    # A disabled channel gets no delivery.
    async with sessionmaker() as session, session.begin():
        session.add(
            Channel(
                name="slack, disabled",
                kind="slack",
                enabled=False,
                target_encrypted=secret_box(settings).encrypt("https://chat.example.com/in/abc"),
                target_hint="https://chat.example.com/…",
                language="en",
                events=["source.rejected_batch"],
            )
        )
    no_market = await emit_rejected_batch(sessionmaker)
    german = await emit_rejected_batch(sessionmaker, market="DE")
    austrian = await emit_rejected_batch(sessionmaker, market="AT")
    await notify(settings, sessionmaker, queue)

    async def channels_of(event: Event) -> set[str]:
        return {str(d.channel_id) for d in await deliveries_of(sessionmaker, event.id)}

    assert await channels_of(no_market) == {everywhere, austria}
    assert await channels_of(german) == {everywhere}
    assert await channels_of(austrian) == {everywhere, austria}
    assert len(receiver.requests) == 5


async def test_two_workers_never_claim_the_same_attempt(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await create_channel(client, admin_key, "http://127.0.0.1:9/unused")
    event = await emit_rejected_batch(sessionmaker)
    async with sessionmaker() as session, session.begin():
        [delivery_id] = await fan_out_event(
            session, event_id=event.id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
        )
    claim: dict[str, Any] = {
        "delivery_id": delivery_id,
        "lease_seconds": 40.0,
        "max_attempts": 8,
        "supported_kinds": SUPPORTED_KINDS,
    }

    async def second_worker_claims() -> Any:
        async with sessionmaker() as second, second.begin():
            return await claim_delivery(second, now=utcnow(), **claim)

    async with sessionmaker() as first, first.begin():
        won = await claim_delivery(first, now=utcnow(), **claim)
        assert won is not None
        assert won.attempt == 1
        # While the first claim's transaction runs, a second worker's claim of the channel
        # waits for it (claims of one channel are serialised)...
        second = asyncio.create_task(second_worker_claims())
        await asyncio.sleep(0.3)
        assert not second.done()
    # ... and then finds the delivery leased: nothing to do.
    assert await second is None
    # Once committed, the lease keeps it: not due until the lease runs out.
    async with sessionmaker() as third, third.begin():
        assert await claim_delivery(third, now=utcnow(), **claim) is None
    async with sessionmaker() as fourth, fourth.begin():
        later = utcnow() + timedelta(seconds=41)
        retaken = await claim_delivery(fourth, now=later, **claim)
        assert retaken is not None
        assert retaken.attempt == 2


async def test_work_lost_with_redis_or_a_killed_worker_is_swept_from_postgres(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    # 1. A fan-out job relayed to Redis, then lost with Redis's data.
    lost_fan_out = await emit_rejected_batch(sessionmaker)
    await relay_all(sessionmaker, queue)
    # 2. A delivery claimed by a worker that was killed mid-send (its lease still running).
    killed_mid_send = await emit_rejected_batch(sessionmaker)
    async with sessionmaker() as session, session.begin():
        [leased_id] = await fan_out_event(
            session, event_id=killed_mid_send.id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
        )
        claimed = await claim_delivery(
            session,
            delivery_id=leased_id,
            now=utcnow(),
            lease_seconds=60,
            max_attempts=8,
            supported_kinds=SUPPORTED_KINDS,
        )
        assert claimed is not None
    await relay_all(sessionmaker, queue)
    await queue.flushdb()  # Redis loses its data: every queued job is gone.

    await run_worker_burst(WorkerSettings, settings)
    # The lost fan-out was redone; its delivery waits for the channel's one in flight (one
    # at a time per channel), which waits for its lease.
    [swept] = await deliveries_of(sessionmaker, lost_fan_out.id)
    assert (swept.status, swept.attempts) == ("pending", 0)
    assert receiver.requests == []

    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Delivery)
            .where(Delivery.id == leased_id)
            .values(
                next_attempt_at=utcnow() - timedelta(seconds=1),
                leased_until=utcnow() - timedelta(seconds=1),
            )
        )
    await run_worker_burst(WorkerSettings, settings)
    [retaken] = await deliveries_of(sessionmaker, killed_mid_send.id)
    assert (retaken.status, retaken.attempts) == ("delivered", 2)
    # Both arrived, in the order their events occurred.
    first, second = receiver.requests
    assert first.headers["x-plumbline-event-id"] == str(lost_fan_out.id)
    assert second.headers["x-plumbline-event-id"] == str(killed_mid_send.id)
    assert second.headers["x-plumbline-delivery-attempt"] == "2"


async def test_rejected_batch_reaches_the_webhook_end_to_end(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    sender: SignedSender,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    refused = await sender.post({"events": []})
    assert refused.status_code == 422
    await notify(settings, sessionmaker, queue)

    [request] = receiver.requests
    assert signature_is_valid(request)
    body = orjson.loads(request.body)
    assert body["type"] == "source.rejected_batch"
    assert body["data"]["source"] == "acme"
    assert body["data"]["status"] == 422
    assert request.headers["x-plumbline-event-id"] == body["id"]


# --- pure parts ---------------------------------------------------------------------------


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay_seconds=1.0, max_delay_seconds=300.0)
    rng = random.Random(7)
    nominal = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    for attempt, expected in enumerate(nominal, start=1):
        delays = [policy.backoff_seconds(attempt, rng=rng) for _ in range(50)]
        assert all(0.8 * expected <= delay <= expected for delay in delays), attempt
        assert len(set(delays)) > 1
    assert policy.backoff_seconds(10_000, rng=rng) <= 300.0
    assert policy.delay_after(1, retry_after=30.0, rng=rng) == 30.0
    assert policy.delay_after(5, retry_after=1.0, rng=rng) >= 12.8


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (None, "retryable"),
        (500, "retryable"),
        (503, "retryable"),
        (429, "retryable"),
        (408, "retryable"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (301, "permanent"),
    ],
)
def test_classify(status: int | None, expected: str) -> None:
    assert classify(SendResult(status_code=status, error=None, duration_ms=1)) == expected


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    )
    assert parse_retry_after("Tue, 24 Nov 2026 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("99999999999", now=now) == 24 * 3600
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_render_webhook_body_is_the_event_envelope() -> None:
    event_id = uuid.UUID("6c1f0c4e-2a7b-4f43-9d1e-5b2f8f1f0a11")
    event = Event(
        id=event_id,
        type="source.rejected_batch",
        occurred_at=datetime(2026, 11, 24, 11, 0, 0, 250000, tzinfo=UTC),
        market=None,
        data={"source": "acme", "status": 422},
    )
    body = render_webhook_body(event)
    assert body == (
        b'{"id":"6c1f0c4e-2a7b-4f43-9d1e-5b2f8f1f0a11","type":"source.rejected_batch",'
        b'"occurred_at":"2026-11-24T11:00:00.250000Z","data":{"source":"acme","status":422}}'
    )
    assert render_webhook_body(event) == body
    # The webhook adapter renders it, the same bytes in every language: what fan-out stores.
    for language in ("en", "de"):
        assert render_message("webhook", event, language=language) == RenderedMessage(
            body=body, content_type="application/json"
        )


def test_rejected_batch_text_in_english_and_german() -> None:
    data = rejected_batch_data("event 3 is invalid").model_dump(mode="json")
    english = render_text("source.rejected_batch", "en", data)
    german = render_text("source.rejected_batch", "de", data)
    assert english.startswith("Source acme: a signed request was rejected with HTTP 422")
    assert "event 3 is invalid" in english
    assert german.startswith("Quelle acme: Eine signierte Anfrage wurde mit HTTP 422 abgelehnt")
    assert "event 3 is invalid" in german
    # A language without its own text falls back to English; a missing field shows as "?".
    assert render_text("source.rejected_batch", "fr", data) == english
    assert render_text("source.rejected_batch", "en", {"source": "acme"}).count("?") == 2
    with pytest.raises(LookupError):
        render_text("no.such_event", "en", data)


@pytest.mark.parametrize("event_type", [t.value for t in EventType])
@pytest.mark.parametrize("language", ["en", "de"])
def test_every_event_type_has_a_text_in_english_and_german(event_type: str, language: str) -> None:
    from services.notifier.templates.messages import template_types

    assert event_type in template_types(language)


@pytest.mark.parametrize("language", ["en", "de"])
def test_policy_update_text_in_english_and_german(language: str) -> None:
    update = PolicyUpdatePublished(
        id=uuid.uuid4(),
        language="en",
        texts={
            "en": PolicyUpdateText(
                title="Usernames", summary="Slurs in usernames are removed.", body="Details."
            )
        },
        policy_codes=["HATE"],
        versions={"HATE": 3},
        markets=["DE"],
        effective_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        published_by="poc-1",
    ).model_dump(mode="json")
    text = render_text("policy_update.published", language, update, time_zone="Europe/Berlin")
    assert "Slurs in usernames are removed.\n\nDetails." in text
    if language == "de":
        assert text.startswith("Dieses Update liegt nur auf Englisch vor:\n\nUsernames\n")
        assert text.endswith(
            "Gültig ab 01.12.2026, 10:00 MEZ. Bitte lesen Sie das Update und "
            "bestätigen Sie es in Plumbline."
        )
    else:
        assert text.startswith("Slurs in usernames are removed.")
