"""Delivery order per channel, the outage hold, the shared rate limit and a notifier killed
mid-send, end to end: the real notifier (burst workers, or a real ``plumbline notifier``
process) against real local HTTP servers standing in for the targets.

The single-message failure paths (5xx then success, 429 with Retry-After, a hanging
target, Lark's codes 11232 and 19021, dead-letter then redrive) are in test_notifier.py and
test_channel_adapters.py; here is what happens to a channel's other messages meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.worker import WorkerSettings, open_notifier_state, probe_held_channels_now
from shared.core.queue import ArqRedis
from shared.core.rate_limit import UNREACHABLE_WAIT_SECONDS, RateLimiter
from shared.core.settings import Settings
from shared.events import EventType, record_event
from shared.models import Delivery, DeliveryAttempt, Event
from tests.conftest import _free_port, auth, relay_all, run_worker_burst
from tests.support.webhooks import (
    ReceivedRequest,
    Reply,
    WebhookReceiver,
    create_channel,
    notify,
    rejected_batch_data,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

Sessions = async_sessionmaker[AsyncSession]


# --- helpers ------------------------------------------------------------------------------


async def produce(sessionmaker: Sessions, count: int) -> list[Event]:
    """``count`` events, each committed on its own, in this order."""
    events = []
    for number in range(count):
        async with sessionmaker() as session, session.begin():
            events.append(
                await record_event(
                    session,
                    type=EventType.SOURCE_REJECTED_BATCH,
                    data=rejected_batch_data(f"batch {number} is invalid"),
                )
            )
    return events


def event_ids(requests: list[ReceivedRequest]) -> list[str]:
    return [request.headers["x-plumbline-event-id"] for request in requests]


def ids(events: list[Event]) -> list[str]:
    return [str(event.id) for event in events]


async def deliveries_by_event(
    sessionmaker: Sessions, channel_id: str
) -> dict[str, tuple[str, int, bool]]:
    """Per event id: (status, attempts, holds_channel) of the channel's delivery."""
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Delivery).where(Delivery.channel_id == uuid.UUID(channel_id))
        )
        return {str(d.event_id): (d.status, d.attempts, d.holds_channel) for d in rows}


async def attempt_numbers(sessionmaker: Sessions, event: Event) -> list[tuple[int, int | None]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(DeliveryAttempt.number, DeliveryAttempt.status_code)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.event_id == event.id)
            .order_by(DeliveryAttempt.attempted_at)
        )
        return [(row.number, row.status_code) for row in rows]


async def probe(settings: Settings, queue: ArqRedis) -> int:
    """What the notifier's sweep does first: probe the held channels whose probe is due."""
    state = open_notifier_state(settings, redis=queue)
    try:
        return await probe_held_channels_now(state)
    finally:
        await state.close()


# --- order per channel --------------------------------------------------------------------


async def test_a_channel_down_gets_every_message_once_back_in_production_order(
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    down = await create_channel(client, admin_key, receiver.url, name="down")
    await create_channel(client, admin_key, other_receiver.url, name="up")
    # The first channel's target answers 503 four times, then is back.
    receiver.answer(*[Reply(503)] * 4)
    events = await produce(sessionmaker, 5)
    # Five fan-outs run concurrently in the worker: the order is the events', not theirs.
    await notify(settings, sessionmaker, queue)

    # Only the head was tried while the target was down; then every message once, in order.
    assert event_ids(receiver.requests) == [str(events[0].id)] * 5 + ids(events[1:])
    assert [r.body for r in receiver.requests[:5]] == [receiver.requests[0].body] * 5
    # The healthy channel of the same events was not held up, and is in order too.
    assert event_ids(other_receiver.requests) == ids(events)
    # Messages waiting behind the head used no attempts.
    assert await deliveries_by_event(sessionmaker, down) == {
        str(events[0].id): ("delivered", 5, False),
        **{str(event.id): ("delivered", 1, False) for event in events[1:]},
    }


async def test_a_refused_message_dies_alone_and_the_channel_moves_on(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    channel = await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(400, body=b"bad payload"))
    events = await produce(sessionmaker, 3)
    await notify(settings, sessionmaker, queue)

    assert event_ids(receiver.requests) == ids(events)
    assert await deliveries_by_event(sessionmaker, channel) == {
        str(events[0].id): ("dead", 1, False),
        str(events[1].id): ("delivered", 1, False),
        str(events[2].id): ("delivered", 1, False),
    }


async def test_a_backlog_sent_in_one_turn_stops_at_a_failure_and_resumes_in_order(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    """A channel's backlog is claimed together and sent one message at a time; the third
    fails, so the ones behind it are given back unsent (no attempt counted) and go out after
    it, in order, once it succeeds."""
    channel = await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(200), Reply(200), Reply(503))
    events = await produce(sessionmaker, 6)
    await notify(settings, sessionmaker, queue)

    assert event_ids(receiver.requests) == ids(events[:3]) + ids(events[2:])
    assert await deliveries_by_event(sessionmaker, channel) == {
        **{str(event.id): ("delivered", 1, False) for event in events},
        str(events[2].id): ("delivered", 2, False),
    }
    assert await attempt_numbers(sessionmaker, events[2]) == [(1, 503), (2, 200)]
    for event in events[3:]:
        assert await attempt_numbers(sessionmaker, event) == [(1, 200)]


async def test_two_notifiers_never_send_one_channel_two_messages_at_once(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    # Each answer takes 0.3 s: a second message sent before it came back would arrive sooner.
    receiver.responder = lambda _: Reply(200, hang_seconds=0.3)
    events = await produce(sessionmaker, 5)
    await relay_all(sessionmaker, queue)
    await asyncio.gather(
        run_worker_burst(WorkerSettings, settings), run_worker_burst(WorkerSettings, settings)
    )

    assert event_ids(receiver.requests) == ids(events)
    gaps = [b.at - a.at for a, b in itertools.pairwise(receiver.requests)]
    assert min(gaps) >= 0.29, gaps


# --- the outage hold ------------------------------------------------------------------------


async def test_a_target_down_past_the_last_attempt_holds_the_channel_until_a_probe_succeeds(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    # Two attempts; held channels are probed every delivery_max_delay_seconds (0.5 s here).
    two_tries = settings.model_copy(update={"delivery_max_attempts": 2})
    channel = await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(502), Reply(502))
    events = await produce(sessionmaker, 3)
    await notify(two_tries, sessionmaker, queue)

    # The head is dead-lettered as always; the others wait, pending, untried.
    assert event_ids(receiver.requests) == [str(events[0].id)] * 2
    held = {
        str(events[0].id): ("dead", 2, True),
        str(events[1].id): ("pending", 0, False),
        str(events[2].id): ("pending", 0, False),
    }
    assert await deliveries_by_event(sessionmaker, channel) == held
    listed = await client.get(f"/v1/deliveries?channel_id={channel}", headers=auth(admin_key))
    assert sorted(item["status"] for item in listed.json()["items"]) == [
        "dead",
        "pending",
        "pending",
    ]
    # Not yet time to probe: nothing happens (an hour's interval: the test's 0.5 s may have
    # passed already on a loaded machine).
    not_due = two_tries.model_copy(update={"delivery_max_delay_seconds": 3600})
    assert await probe(not_due, queue) == 0

    # A failed probe: one attempt, dead again, still holding; the rest untouched.
    receiver.answer(Reply(503))
    await asyncio.sleep(0.6)
    assert await probe(two_tries, queue) == 1
    await run_worker_burst(WorkerSettings, two_tries)
    assert event_ids(receiver.requests) == [str(events[0].id)] * 3
    assert await deliveries_by_event(sessionmaker, channel) == held

    # The target is back: the next probe delivers the head, and the channel resumes in order.
    await asyncio.sleep(0.6)
    assert await probe(two_tries, queue) == 1
    await run_worker_burst(WorkerSettings, two_tries)
    assert event_ids(receiver.requests) == [str(events[0].id)] * 4 + ids(events[1:])
    assert await deliveries_by_event(sessionmaker, channel) == {
        str(events[0].id): ("delivered", 2, False),
        str(events[1].id): ("delivered", 1, False),
        str(events[2].id): ("delivered", 1, False),
    }
    assert await attempt_numbers(sessionmaker, events[0]) == [
        (1, 502),
        (2, 502),
        (2, 503),
        (2, 200),
    ]


async def test_redriving_the_held_head_resumes_the_channel_in_order(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    # Long probe interval: only the redrive can resume this channel within the test.
    patient = settings.model_copy(
        update={"delivery_max_attempts": 3, "delivery_max_delay_seconds": 300.0}
    )
    channel = await create_channel(client, admin_key, receiver.url)
    receiver.answer(*[Reply(500)] * 3)
    events = await produce(sessionmaker, 3)
    await notify(patient, sessionmaker, queue)
    assert event_ids(receiver.requests) == [str(events[0].id)] * 3

    dead = await client.get(
        f"/v1/deliveries?channel_id={channel}&status=dead", headers=auth(admin_key)
    )
    [head] = dead.json()["items"]
    assert head["event_id"] == str(events[0].id)
    redriven = await client.post(f"/v1/deliveries/{head['id']}/redrive", headers=auth(admin_key))
    assert redriven.status_code == 202, redriven.text
    await notify(patient, sessionmaker, queue)

    assert event_ids(receiver.requests) == [str(events[0].id)] * 4 + ids(events[1:])
    statuses = await deliveries_by_event(sessionmaker, channel)
    assert {status for status, _, _ in statuses.values()} == {"delivered"}


# --- the shared rate limit ------------------------------------------------------------------


async def test_two_notifiers_share_one_rate_limit_per_slack_webhook(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    assert settings.channel_rate_per_second["slack"] == 1.0
    await create_channel(client, admin_key, receiver.url, kind="slack", secret=None)
    events = await produce(sessionmaker, 6)
    await relay_all(sessionmaker, queue)
    # Two notifiers take the channel's messages from one queue at the same time.
    await asyncio.gather(
        run_worker_burst(WorkerSettings, settings), run_worker_burst(WorkerSettings, settings)
    )

    assert len(receiver.requests) == 6
    assert {r.headers.get("content-type") for r in receiver.requests} == {"application/json"}
    async with sessionmaker() as session:
        statuses = await session.scalars(select(Delivery.status))
        assert set(statuses) == {"delivered"}
    # One message a second: consecutive arrivals about a second apart at least (a little
    # less allowed for the time between taking a turn and the request arriving).
    gaps = [b.at - a.at for a, b in itertools.pairwise(receiver.requests)]
    assert min(gaps) >= 0.9, gaps
    # And still in production order: the limit delays, it never reorders.
    for number, request in enumerate(receiver.requests):
        assert f"batch {number} is invalid".encode() in request.body
    assert len(receiver.requests) == len(events)


async def test_two_channels_posting_to_one_slack_webhook_share_its_limit(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    # Slack limits the webhook URL, not our channel: two channels on one URL (say, one per
    # market for the same Slack channel) must not get twice the rate between them.
    await create_channel(client, admin_key, receiver.url, kind="slack", secret=None, name="a")
    await create_channel(client, admin_key, receiver.url, kind="slack", secret=None, name="b")
    await produce(sessionmaker, 3)
    await relay_all(sessionmaker, queue)
    await run_worker_burst(WorkerSettings, settings)

    assert len(receiver.requests) == 6
    gaps = [b.at - a.at for a, b in itertools.pairwise(receiver.requests)]
    assert min(gaps) >= 0.9, gaps


async def test_limiters_sharing_a_key_never_grant_two_turns_within_the_interval(
    settings: Settings,
) -> None:
    assert settings.redis_url is not None
    clients = [Redis.from_url(settings.redis_url) for _ in range(4)]
    limiters = [RateLimiter(client) for client in clients]
    key = f"test:{uuid.uuid4()}"
    granted: list[float] = []

    async def take_turns(limiter: RateLimiter) -> None:
        while len(granted) < 8:
            wait = await limiter.wait_seconds(key, per_second=5.0)
            if wait == 0.0:
                granted.append(time.monotonic())
            else:
                assert 0.0 < wait <= 0.2
                await asyncio.sleep(wait / 3)

    try:
        await asyncio.gather(*(take_turns(limiter) for limiter in limiters))
    finally:
        for client in clients:
            await client.aclose()
    # Redis grants them at least 0.2 s apart; measured here, a little scheduling noise.
    gaps = [b - a for a, b in itertools.pairwise(sorted(granted))]
    assert min(gaps) >= 0.15, gaps


async def test_the_limiter_waits_instead_of_failing_while_redis_is_unreachable() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=0.5)
    try:
        wait = await RateLimiter(unreachable).wait_seconds("channel:x", per_second=1.0)
    finally:
        await unreachable.aclose()
    assert wait == UNREACHABLE_WAIT_SECONDS


# --- a notifier killed mid-send -------------------------------------------------------------


def start_notifier(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``plumbline notifier`` as its own process, on the test's database and Redis, with
    the default delivery settings."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    assert settings.encryption_key is not None
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLUMBLINE_")}
    env.update(
        PLUMBLINE_DATABASE_URL=settings.database_url,
        PLUMBLINE_REDIS_URL=settings.redis_url,
        PLUMBLINE_DATA_DIR=str(log.parent / "data"),
        PLUMBLINE_ENCRYPTION_KEY=settings.encryption_key.get_secret_value(),
        PLUMBLINE_INSECURE_TARGET_HOSTS="127.0.0.1",
        PLUMBLINE_LOG_LEVEL="INFO",
        PLUMBLINE_LOG_JSON="true",
    )
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "notifier"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


async def wait_for(condition: Callable[[], bool], *, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")  # noqa: ASYNC240
        await asyncio.sleep(0.1)


async def test_a_notifier_killed_mid_send_loses_nothing(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
    tmp_path: Path,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    # The first request hangs (the send is in flight when the notifier dies); then 200.
    receiver.answer(Reply(200, hang_seconds=120.0))
    [event] = await produce(sessionmaker, 1)
    await relay_all(sessionmaker, queue)
    log = tmp_path / "notifier.err"
    first = start_notifier(settings, log)
    second: subprocess.Popen[bytes] | None = None
    delivery: Delivery | None = None
    try:
        await wait_for(lambda: len(receiver.requests) == 1, seconds=60, what="the send", log=log)
        first.kill()  # SIGKILL: no shutdown hook, no outcome recorded, the arq job in progress
        first.wait(10)

        started = time.monotonic()
        second = start_notifier(settings, log)
        await wait_for(lambda: len(receiver.requests) == 2, seconds=90, what="the resend", log=log)
        assert time.monotonic() - started <= 60.0
        # Recorded by then, or very soon after.
        for _ in range(100):
            async with sessionmaker() as session:
                delivery = await session.scalar(
                    select(Delivery).where(Delivery.event_id == event.id)
                )
            assert delivery is not None
            if delivery.status != "pending":
                break
            await asyncio.sleep(0.1)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    resent = receiver.requests[1]
    assert resent.body == receiver.requests[0].body
    assert resent.headers["x-plumbline-event-id"] == str(event.id)
    assert resent.headers["x-plumbline-delivery-attempt"] == "2"
    # Exactly one delivered state; the lost attempt counted, the second one recorded.
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.leased_until) == ("delivered", 2, None)
    assert await attempt_numbers(sessionmaker, event) == [(2, 200)]
    assert len(receiver.requests) == 2


# --- egress proxy -------------------------------------------------------------------------


async def test_deliveries_go_through_the_configured_proxy_and_not_the_environments(
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ``other_receiver`` stands in for the proxy: a request that reaches it went through the
    # proxy (it answers for the target itself, as a proxy relays the target's answer).
    channel = await create_channel(client, admin_key, receiver.url)
    # A proxy named only in the environment is not used: deliveries name theirs in settings.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    await produce(sessionmaker, 1)
    await notify(settings, sessionmaker, queue)
    assert len(receiver.requests) == 1
    assert other_receiver.requests == []

    proxied = settings.model_copy(update={"notifier_proxy_url": SecretStr(other_receiver.url)})
    events = await produce(sessionmaker, 1)
    await notify(proxied, sessionmaker, queue)

    assert len(receiver.requests) == 1
    assert event_ids(other_receiver.requests) == ids(events)
    assert (await deliveries_by_event(sessionmaker, channel))[str(events[0].id)][0] == "delivered"


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_failed_attempts_are_logged_at_info_and_delivered_ones_at_debug(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    receiver.answer(Reply(503))
    events = await produce(sessionmaker, 3)
    handler = RecordingHandler()
    records = handler.records
    worker_logger = logging.getLogger("services.notifier.worker")
    worker_logger.addHandler(handler)
    worker_logger.setLevel(logging.DEBUG)
    try:
        await notify(settings, sessionmaker, queue)
    finally:
        worker_logger.removeHandler(handler)
        worker_logger.setLevel(logging.NOTSET)

    attempts = [r for r in records if r.getMessage() == "delivery attempted"]
    by_level = sorted((r.levelname, getattr(r, "outcome", None)) for r in attempts)
    # The 503, then the three messages delivered.
    assert by_level == [("DEBUG", "delivered")] * 3 + [("INFO", "retry")]
    assert event_ids(receiver.requests) == [str(events[0].id)] * 2 + ids(events[1:])
