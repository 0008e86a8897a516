"""Routing in the notifier: channels by queue, personal e-mails to an event's recipients (a
policy update's with their signed acknowledgement link), and digest channels collecting
low-priority events into one message per hour or day in their time zone. Real PostgreSQL,
Redis, notifier workers, a local HTTP receiver and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from services.notifier.deliveries import fan_out_event, personal_link
from services.notifier.digests import period_end, send_digest, send_due_digests
from services.notifier.worker import WorkerSettings
from shared.core.encryption import secret_box
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.deliveries.lifecycle import events_missing_deliveries
from shared.events import (
    DIGEST_EVENT_TYPE,
    CalibrationOpened,
    EscalationOpened,
    EventPayload,
    EventType,
    PolicyQuestionAnswered,
    PolicyUpdatePublished,
    PolicyUpdateText,
    record_event,
)
from shared.models import Channel, Delivery, DigestItem, Event, Reviewer
from shared.models.base import utcnow
from shared.policy_updates.acknowledgement_links import verify_acknowledgement_token
from tests.conftest import auth, make_key, relay_all
from tests.support.mail import (
    RecordingMailServer,
    decoded,
    mail_settings,
    subparts,
)
from tests.support.problems import assert_problem
from tests.support.webhooks import WebhookReceiver, create_channel, notify, rejected_batch_data

Sessions = async_sessionmaker[AsyncSession]


# --- events ------------------------------------------------------------------------------


def calibration_opened(title: str) -> CalibrationOpened:
    return CalibrationOpened(
        id=uuid.uuid4(), title=title, market="DE", participants=["qa-1"], deadline=None
    )


def escalation_opened() -> EscalationOpened:
    return EscalationOpened(
        id=uuid.uuid4(),
        title="Accuracy dropped in DE",
        slice={"market": "DE"},
        metric="accuracy",
        opened_at=utcnow(),
    )


def policy_update_published(policy_update_id: uuid.UUID) -> PolicyUpdatePublished:
    return PolicyUpdatePublished(
        id=policy_update_id,
        language="en",
        texts={
            "en": PolicyUpdateText(
                title="Hate speech: coded slurs", summary="New examples", body="Remove them."
            )
        },
        policy_codes=["hate_speech"],
        versions={"hate_speech": 2},
        markets=["DE"],
        effective_at=utcnow() + timedelta(days=7),
        published_by="poc-1",
    )


async def emit(
    sessionmaker: Sessions,
    type: EventType,
    data: EventPayload,
    *,
    market: str | None = None,
    queue: str | None = None,
    recipients: list[str] | None = None,
) -> Event:
    async with sessionmaker() as session, session.begin():
        return await record_event(
            session, type=type, data=data, market=market, queue=queue, recipients=recipients
        )


async def channels_of(sessionmaker: Sessions, event: Event) -> set[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Delivery.channel_id).where(Delivery.event_id == event.id)
        )
        return {str(channel_id) for channel_id in rows}


async def missing(sessionmaker: Sessions) -> list[uuid.UUID]:
    """What the notifier's sweep would fan out again now."""
    now = utcnow()
    async with sessionmaker() as session:
        return await events_missing_deliveries(
            session,
            since=now - timedelta(hours=1),
            until=now + timedelta(seconds=1),
            supported_kinds=SUPPORTED_KINDS,
            limit=100,
        )


async def fan_out(
    sessionmaker: Sessions, settings: Settings, event: Event, *, now: datetime
) -> None:
    async with sessionmaker() as session, session.begin():
        await fan_out_event(
            session,
            event_id=event.id,
            now=now,
            supported_kinds=SUPPORTED_KINDS,
            settings=settings,
            box=secret_box(settings),
        )


async def notify_all(settings: Settings, sessionmaker: Sessions, queue: ArqRedis) -> None:
    """Run the notifier until no delivery waits (a channel sends one message at a time)."""
    for _ in range(5):
        await notify(settings, sessionmaker, queue)
        async with sessionmaker() as session:
            waiting = await session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
            )
        if not waiting:
            return


async def put_reviewer(
    client: httpx.AsyncClient, admin_key: str, reviewer_id: str, **profile: Any
) -> None:
    body = {"markets": ["DE"], "languages": ["en"], **profile}
    response = await client.put(f"/v1/reviewers/{reviewer_id}", json=body, headers=auth(admin_key))
    assert response.status_code in (200, 201), response.text


# --- queues ------------------------------------------------------------------------------


async def test_channels_get_the_events_of_their_queues(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    video = await create_channel(client, admin_key, receiver.url, name="video", queues=["de-video"])
    live = await create_channel(client, admin_key, receiver.url, name="live", queues=["de-live"])
    every = await create_channel(client, admin_key, receiver.url, name="every queue")

    video_event = await emit(
        sessionmaker, EventType.SOURCE_REJECTED_BATCH, rejected_batch_data(), queue="de-video"
    )
    live_event = await emit(
        sessionmaker, EventType.SOURCE_REJECTED_BATCH, rejected_batch_data(), queue="de-live"
    )
    no_queue = await emit(sessionmaker, EventType.SOURCE_REJECTED_BATCH, rejected_batch_data())
    await notify_all(settings, sessionmaker, queue)

    assert await channels_of(sessionmaker, video_event) == {video, every}
    assert await channels_of(sessionmaker, live_event) == {live, every}
    assert await channels_of(sessionmaker, no_queue) == {video, live, every}
    assert len(receiver.requests) == 7
    # The sweep routes by the same rule: nothing is missing, nothing is fanned out twice.
    assert await missing(sessionmaker) == []


async def test_the_sweep_routes_like_fan_out(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
) -> None:
    await create_channel(
        client, admin_key, "https://hooks.example.com/a", name="video", queues=["de-video"]
    )
    await create_channel(
        client,
        admin_key,
        "https://hooks.example.com/digest",
        name="calibrations, daily",
        events=("calibration.opened",),
        digest="daily",
    )
    await put_reviewer(client, admin_key, "anna", email="anna@example.com")
    await put_reviewer(client, admin_key, "nomail")

    other_queue = await emit(
        sessionmaker, EventType.SOURCE_REJECTED_BATCH, rejected_batch_data(), queue="de-live"
    )
    video = await emit(
        sessionmaker, EventType.SOURCE_REJECTED_BATCH, rejected_batch_data(), queue="de-video"
    )
    held = await emit(sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened("Q4"))
    personal = await emit(
        sessionmaker, EventType.POLICY_QUESTION_ANSWERED, question_answered(), recipients=["anna"]
    )
    await emit(
        sessionmaker, EventType.POLICY_QUESTION_ANSWERED, question_answered(), recipients=["nomail"]
    )
    # Not fanned out yet (the jobs wait in the outbox): the sweep sees what each one lacks.
    assert set(await missing(sessionmaker)) == {video.id, held.id, personal.id}
    assert other_queue.id not in await missing(sessionmaker)

    for event in (video, held, personal):
        await fan_out(sessionmaker, settings, event, now=utcnow())
    # A digest item stands for the held event's delivery; the personal delivery exists.
    assert await missing(sessionmaker) == []
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(DigestItem)) == 1


def question_answered() -> PolicyQuestionAnswered:
    return PolicyQuestionAnswered(
        id=uuid.uuid4(),
        policy_code="hate_speech",
        market="DE",
        question="Are coded slurs in usernames covered?",
        answer="Yes, since version 2.",
        asked_by="anna",
        answered_by="poc-1",
        answered_at=utcnow(),
    )


# --- personal e-mails ----------------------------------------------------------------------

ACK_LINK = re.compile(
    r"https?://\S+/v1/policy-updates/[0-9a-f-]+/acknowledge\?token=[A-Za-z0-9_%-]+"
)


def text_of(message: Message) -> str:
    """The text/plain part of a personal e-mail."""
    if message.get_content_type() == "multipart/mixed":
        message = subparts(message)[0]
    text, _html = subparts(message)
    assert text.get_content_type() == "text/plain"
    return decoded(text).decode()


def html_of(message: Message) -> str:
    if message.get_content_type() == "multipart/mixed":
        message = subparts(message)[0]
    _text, html = subparts(message)
    return decoded(html).decode()


async def personal_channel(sessionmaker: Sessions, reviewer_id: str) -> Channel:
    async with sessionmaker() as session:
        channel = await session.scalar(select(Channel).where(Channel.reviewer_id == reviewer_id))
    assert channel is not None
    return channel


async def test_recipients_get_a_personal_email_with_their_acknowledgement_link(
    mail_server: tuple[RecordingMailServer, int],
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    handler, port = mail_server
    await put_reviewer(client, admin_key, "anna", languages=["de"], email="anna@example.com")
    await put_reviewer(client, admin_key, "bob", languages=["fr", "en"], email="bob@example.org")
    await put_reviewer(client, admin_key, "carla")  # no e-mail address: no personal message
    update_id = uuid.uuid4()
    event = await emit(
        sessionmaker,
        EventType.POLICY_UPDATE_PUBLISHED,
        policy_update_published(update_id),
        market="DE",
        recipients=["anna", "bob", "carla", "unknown-reviewer"],
    )
    await notify_all(mail_settings(settings, port), sessionmaker, queue)

    received = {envelope.rcpt_tos[0]: message for envelope, message in handler.messages}
    assert sorted(received) == ["anna@example.com", "bob@example.org"]
    links = {}
    for address, reviewer_id in (("anna@example.com", "anna"), ("bob@example.org", "bob")):
        message = received[address]
        assert message["X-Plumbline-Event-Id"] == str(event.id)
        [link] = set(ACK_LINK.findall(text_of(message)))
        assert f'href="{link}"' in html_of(message)
        token = link.split("token=", 1)[1]
        # The link names its recipient, and only them, for this update only.
        assert (
            verify_acknowledgement_token(
                settings, policy_update_id=update_id, token=token, now=utcnow()
            )
            == reviewer_id
        )
        links[reviewer_id] = link
    assert links["anna"] != links["bob"]
    # Each in the recipient's language: Anna's profile says German, Bob's first known is English.
    assert "Kenntnisnahme bestätigen" in html_of(received["anna@example.com"])
    assert "Acknowledge" in html_of(received["bob@example.org"])

    anna = await personal_channel(sessionmaker, "anna")
    assert (anna.kind, anna.name, anna.events, anna.language) == (
        "email",
        "reviewer:anna",
        [],
        "de",
    )
    assert secret_box(settings).decrypt(anna.target_encrypted) == "anna@example.com"
    assert b"anna@example.com" not in anna.target_encrypted
    bob = await personal_channel(sessionmaker, "bob")
    assert bob.language == "en"
    assert await channels_of(sessionmaker, event) == {str(anna.id), str(bob.id)}

    # Personal channels are not team channels: not listed, not reachable by id...
    listed = await client.get("/v1/channels", headers=auth(admin_key))
    assert listed.json()["items"] == []
    assert (await client.get(f"/v1/channels/{anna.id}", headers=auth(admin_key))).status_code == 404
    # ...but their deliveries are listed like any other.
    deliveries = await client.get(
        "/v1/deliveries", params={"channel_id": str(anna.id)}, headers=auth(admin_key)
    )
    [delivery] = deliveries.json()["items"]
    assert (delivery["event_id"], delivery["status"]) == (str(event.id), "delivered")


async def test_acknowledgement_link_in_the_email_acknowledges_through_the_api(
    mail_server: tuple[RecordingMailServer, int],
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    """The whole path: a published update, its e-mail, the link posted without a key."""
    handler, port = mail_server
    await put_reviewer(client, admin_key, "anna", languages=["de"], email="anna@example.com")
    poc_key = await make_key(sessionmaker, "policy_poc")
    created = await client.post(
        "/v1/policy-updates",
        json={
            "title": "Coded slurs",
            "summary": "New examples",
            "body": "Remove them.",
            "policy_codes": ["hate_speech"],
            "markets": ["DE"],
            "effective_at": (utcnow() + timedelta(days=7)).isoformat(),
        },
        headers=auth(poc_key),
    )
    assert created.status_code == 201, created.text
    update_id = created.json()["id"]
    published = await client.post(f"/v1/policy-updates/{update_id}/publish", headers=auth(poc_key))
    assert published.status_code in (200, 201), published.text
    await notify_all(mail_settings(settings, port), sessionmaker, queue)

    [(envelope, message)] = handler.messages
    assert envelope.rcpt_tos == ["anna@example.com"]
    [link] = set(ACK_LINK.findall(text_of(message)))
    # The link is below the configured public URL; post it to this test's API instead.
    path = link.split("/v1/", 1)[1]
    acknowledged = await client.post(f"/v1/{path}")
    assert acknowledged.status_code == 200, acknowledged.text
    status = await client.get(
        f"/v1/policy-updates/{update_id}/acknowledgements", headers=auth(poc_key)
    )
    assert [item["reviewer_id"] for item in status.json()["acknowledged"]] == ["anna"]
    assert status.json()["pending"] == []


@pytest.mark.parametrize(
    ("event_type", "linked"),
    [
        ("policy_update.published", True),
        ("policy_update.reminder", True),
        ("policy_question.answered", False),
    ],
)
def test_only_policy_updates_carry_an_acknowledgement_link(
    settings: Settings, event_type: str, linked: bool
) -> None:
    update_id = uuid.uuid4()
    event = Event(id=uuid.uuid4(), type=event_type, data={"id": str(update_id)})
    now = utcnow()
    link = personal_link(event, reviewer_id="anna", language="de", settings=settings, now=now)
    if not linked:
        assert link is None
        return
    assert link is not None
    assert link.label == "Kenntnisnahme bestätigen"
    token = link.url.split("token=", 1)[1]
    assert (
        verify_acknowledgement_token(settings, policy_update_id=update_id, token=token, now=now)
        == "anna"
    )


async def test_a_changed_profile_address_moves_the_personal_channel(
    mail_server: tuple[RecordingMailServer, int],
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    handler, port = mail_server
    await put_reviewer(client, admin_key, "anna", languages=["de"], email="anna@example.com")
    await emit(
        sessionmaker, EventType.POLICY_QUESTION_ANSWERED, question_answered(), recipients=["anna"]
    )
    await notify_all(mail_settings(settings, port), sessionmaker, queue)
    first = await personal_channel(sessionmaker, "anna")
    assert first.language == "de"

    await put_reviewer(
        client,
        admin_key,
        "anna",
        languages=["de"],
        email="anna.new@example.net",
        notification_language="en",
    )
    await emit(
        sessionmaker, EventType.POLICY_QUESTION_ANSWERED, question_answered(), recipients=["anna"]
    )
    await notify_all(mail_settings(settings, port), sessionmaker, queue)

    assert [envelope.rcpt_tos for envelope, _ in handler.messages] == [
        ["anna@example.com"],
        ["anna.new@example.net"],
    ]
    assert handler.messages[1][1]["Subject"] != handler.messages[0][1]["Subject"]
    moved = await personal_channel(sessionmaker, "anna")
    assert moved.id == first.id
    assert (moved.language, moved.target_hint) == ("en", "…@example.net")
    assert secret_box(settings).decrypt(moved.target_encrypted) == "anna.new@example.net"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Channel)) == 1

    # A personal channel is reached through recipients only, never by subscription (even
    # one that somehow subscribed to the type).
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Channel).values(events=["policy_question.answered"], markets=None)
        )
    unaddressed = await emit(sessionmaker, EventType.POLICY_QUESTION_ANSWERED, question_answered())
    await notify_all(mail_settings(settings, port), sessionmaker, queue)
    assert await channels_of(sessionmaker, unaddressed) == set()
    assert len(handler.messages) == 2
    assert await missing(sessionmaker) == []


async def test_thousands_of_recipients_are_fanned_out_once(
    settings: Settings, sessionmaker: Sessions
) -> None:
    """More rows than one statement may bind parameters for; a repeat creates nothing."""
    count = 3500
    async with sessionmaker() as session, session.begin():
        await session.execute(
            insert(Reviewer).values(
                [
                    {
                        "id": f"r-{n}",
                        "markets": ["DE"],
                        "languages": ["en"],
                        "email": f"r{n}@example.com",
                    }
                    for n in range(count)
                ]
            )
        )
    event = await emit(
        sessionmaker,
        EventType.POLICY_QUESTION_ANSWERED,
        question_answered(),
        recipients=[f"r-{n}" for n in range(count)],
    )
    await fan_out(sessionmaker, settings, event, now=utcnow())
    await fan_out(sessionmaker, settings, event, now=utcnow())
    async with sessionmaker() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.event_id == event.id)
            )
            == count
        )
        assert (
            await session.scalar(
                select(func.count()).select_from(Channel).where(Channel.reviewer_id.is_not(None))
            )
            == count
        )
    assert await missing(sessionmaker) == []


# --- digests ---------------------------------------------------------------------------------


async def digest_events(sessionmaker: Sessions) -> list[Event]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.type == DIGEST_EVENT_TYPE).order_by(Event.occurred_at)
            )
        )


async def test_hourly_digest_collects_low_priority_events_and_sends_high_ones_at_once(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    # India is 5:30 ahead of UTC: its full hours are at half past in UTC.
    channel_id = await create_channel(
        client,
        admin_key,
        receiver.url,
        name="qa, hourly",
        events=("calibration.opened", "escalation.opened"),
        digest="hourly",
        time_zone="Asia/Kolkata",
    )
    low = [
        await emit(
            sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened(f"Q{n}"), market="DE"
        )
        for n in range(1, 4)
    ]
    high = await emit(sessionmaker, EventType.ESCALATION_OPENED, escalation_opened(), market="DE")
    await notify_all(settings, sessionmaker, queue)

    # The escalation went at once; the three calibrations wait for the hour.
    [sent] = receiver.requests
    assert orjson.loads(sent.body)["id"] == str(high.id)
    assert await channels_of(sessionmaker, low[0]) == set()

    # The clock, injected: the items were collected ten minutes before the last full hour.
    now = utcnow()
    hour = period_end(now, mode="hourly", digest_hour=9, time_zone="Asia/Kolkata")
    assert hour.minute == 30
    async with sessionmaker() as session, session.begin():
        await session.execute(update(DigestItem).values(collected_at=hour - timedelta(minutes=10)))

    async def run(at: datetime) -> int:
        return await send_due_digests(
            sessionmaker, now=at, supported_kinds=SUPPORTED_KINDS, public_url=None
        )

    assert await run(hour - timedelta(seconds=1)) == 0
    assert await run(now) == 1
    # The next minute's run finds nothing more to send.
    assert await run(now + timedelta(seconds=60)) == 0
    await notify_all(settings, sessionmaker, queue)

    [digest] = await digest_events(sessionmaker)
    assert (digest.market, digest.queue, digest.recipients) == (None, None, None)
    assert digest.data["channel_id"] == channel_id
    assert datetime.fromisoformat(digest.data["period_end"]) == hour
    assert datetime.fromisoformat(digest.data["period_start"]) == hour - timedelta(hours=1)
    assert [item["event_id"] for item in digest.data["items"]] == [str(event.id) for event in low]
    assert [item["data"]["title"] for item in digest.data["items"]] == ["Q1", "Q2", "Q3"]
    assert {item["type"] for item in digest.data["items"]} == {"calibration.opened"}

    _escalation, second = receiver.requests
    body = orjson.loads(second.body)
    assert (body["id"], body["type"]) == (str(digest.id), "digest")
    assert body["data"] == digest.data
    # One delivery for the digest, to this channel only; the items are marked as sent.
    assert await channels_of(sessionmaker, digest) == {channel_id}
    async with sessionmaker() as session:
        marked = set(await session.scalars(select(DigestItem.digest_event_id)))
    assert marked == {digest.id}
    listed = await client.get(
        "/v1/deliveries", params={"channel_id": channel_id}, headers=auth(admin_key)
    )
    assert [item["event_type"] for item in listed.json()["items"]] == [
        "digest",
        "escalation.opened",
    ]


async def test_daily_digest_at_nine_berlin_time_across_the_dst_change(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    channel_id = await create_channel(
        client,
        admin_key,
        receiver.url,
        name="qa, daily",
        events=("calibration.opened",),
        digest="daily",
        digest_hour=9,
        time_zone="Europe/Berlin",
    )
    # Summer time ends on 25 October 2026: 09:00 in Berlin is 07:00 UTC on the 24th, 08:00
    # UTC on the 25th. One item from days before (no notifier sent that day's digest), one
    # from the 24th after its digest hour.
    old = await emit(sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened("old"))
    recent = await emit(sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened("recent"))
    await fan_out(sessionmaker, settings, old, now=datetime(2026, 10, 21, 12, 0, tzinfo=UTC))
    await fan_out(sessionmaker, settings, recent, now=datetime(2026, 10, 24, 8, 0, tzinfo=UTC))
    kinds = SUPPORTED_KINDS

    async def run(at: datetime) -> int:
        return await send_due_digests(sessionmaker, now=at, supported_kinds=kinds, public_url=None)

    # 07:30 UTC on the 25th is 08:30 in Berlin (a fixed summer offset would say 09:30).
    assert await run(datetime(2026, 10, 25, 7, 30, tzinfo=UTC)) == 1  # the 24th's (missed) digest
    [missed] = await digest_events(sessionmaker)
    assert [item["data"]["title"] for item in missed.data["items"]] == ["old"]
    assert missed.data["period_end"] == "2026-10-24T07:00:00+00:00"
    assert missed.data["period_start"] == "2026-10-21T07:00:00+00:00"

    assert await run(datetime(2026, 10, 25, 7, 59, tzinfo=UTC)) == 0
    assert await run(datetime(2026, 10, 25, 8, 0, 10, tzinfo=UTC)) == 1
    _, daily = await digest_events(sessionmaker)
    assert [item["data"]["title"] for item in daily.data["items"]] == ["recent"]
    # A day of 25 hours, from 09:00 summer time to 09:00 winter time.
    assert daily.data["period_start"] == "2026-10-24T07:00:00+00:00"
    assert daily.data["period_end"] == "2026-10-25T08:00:00+00:00"
    assert await run(datetime(2026, 10, 26, 8, 0, 10, tzinfo=UTC)) == 0  # no items, no digest

    await notify_all(settings, sessionmaker, queue)
    assert [orjson.loads(request.body)["id"] for request in receiver.requests] == [
        str(missed.id),
        str(daily.id),
    ]
    assert await channels_of(sessionmaker, daily) == {channel_id}


def test_the_notifier_sends_digests_every_minute() -> None:
    [job] = [job for job in WorkerSettings.cron_jobs if job.name == "send_digests"]
    assert job.second == {10}
    assert job.minute is None


def test_digest_period_ends_follow_the_local_clock() -> None:
    berlin: dict[str, Any] = {"mode": "daily", "digest_hour": 9, "time_zone": "Europe/Berlin"}
    # Spring forward (29 March 2026): 09:00 is 08:00 UTC the day before, 07:00 UTC after.
    assert period_end(datetime(2026, 3, 29, 6, 59, tzinfo=UTC), **berlin) == datetime(
        2026, 3, 28, 8, 0, tzinfo=UTC
    )
    assert period_end(datetime(2026, 3, 29, 7, 0, tzinfo=UTC), **berlin) == datetime(
        2026, 3, 29, 7, 0, tzinfo=UTC
    )
    # A digest hour skipped by the change fires at the change; a repeated one at its first time.
    skipped: dict[str, Any] = {"mode": "daily", "digest_hour": 2, "time_zone": "Europe/Berlin"}
    assert period_end(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), **skipped) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    assert period_end(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), **skipped) == datetime(
        2026, 10, 25, 0, 0, tzinfo=UTC
    )
    # Hourly in a zone half an hour off UTC, and across the autumn change in Berlin (the
    # repeated hour 02:00-03:00 is two periods).
    kolkata: dict[str, Any] = {"mode": "hourly", "digest_hour": 9, "time_zone": "Asia/Kolkata"}
    assert period_end(datetime(2026, 6, 1, 10, 29, tzinfo=UTC), **kolkata) == datetime(
        2026, 6, 1, 9, 30, tzinfo=UTC
    )
    hourly_berlin: dict[str, Any] = {
        "mode": "hourly",
        "digest_hour": 9,
        "time_zone": "Europe/Berlin",
    }
    assert period_end(datetime(2026, 10, 25, 0, 45, tzinfo=UTC), **hourly_berlin) == datetime(
        2026, 10, 25, 0, 0, tzinfo=UTC
    )
    assert period_end(datetime(2026, 10, 25, 1, 15, tzinfo=UTC), **hourly_berlin) == datetime(
        2026, 10, 25, 1, 0, tzinfo=UTC
    )


async def test_two_digest_runs_at_once_send_one_digest(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
) -> None:
    channel_id = uuid.UUID(
        await create_channel(
            client,
            admin_key,
            "https://hooks.example.com/digest",
            name="qa, hourly",
            events=("calibration.opened",),
            digest="hourly",
        )
    )
    for n in range(3):
        event = await emit(sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened(f"Q{n}"))
        await fan_out(sessionmaker, settings, event, now=datetime(2026, 11, 30, 9, 15, tzinfo=UTC))
    at = datetime(2026, 11, 30, 10, 0, 10, tzinfo=UTC)
    digest_args: dict[str, Any] = {
        "channel_id": channel_id,
        "now": at,
        "supported_kinds": SUPPORTED_KINDS,
        "public_url": None,
    }

    # While one run holds the channel, another skips it; once it committed, there is
    # nothing left to send.
    async with sessionmaker() as first, first.begin():
        assert await send_digest(first, **digest_args) is not None
        async with sessionmaker() as second, second.begin():
            assert await send_digest(second, **digest_args) is None
    async with sessionmaker() as third, third.begin():
        assert await send_digest(third, **digest_args) is None

    # Two whole runs racing (two notifiers), with fresh items: one digest between them.
    for n in range(2):
        event = await emit(sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened(f"R{n}"))
        await fan_out(sessionmaker, settings, event, now=datetime(2026, 11, 30, 10, 15, tzinfo=UTC))
    later = datetime(2026, 11, 30, 11, 0, 10, tzinfo=UTC)
    runs = await asyncio.gather(
        *(
            send_due_digests(
                sessionmaker, now=later, supported_kinds=SUPPORTED_KINDS, public_url=None
            )
            for _ in range(2)
        )
    )
    assert sorted(runs) == [0, 1]

    first_digest, second_digest = await digest_events(sessionmaker)
    assert len(first_digest.data["items"]) == 3
    assert len(second_digest.data["items"]) == 2
    async with sessionmaker() as session:
        deliveries = list(
            await session.scalars(select(Delivery).where(Delivery.channel_id == channel_id))
        )
    assert sorted(d.event_id for d in deliveries) == sorted([first_digest.id, second_digest.id])


async def test_a_lost_digest_job_is_still_delivered(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    """The digest's delivery is queued through the outbox, and due in PostgreSQL."""
    await create_channel(
        client, admin_key, receiver.url, name="qa", events=("calibration.opened",), digest="hourly"
    )
    event = await emit(sessionmaker, EventType.CALIBRATION_OPENED, calibration_opened("Q"))
    await notify_all(settings, sessionmaker, queue)
    assert receiver.requests == []
    async with sessionmaker() as session, session.begin():
        await session.execute(update(DigestItem).values(collected_at=utcnow() - timedelta(hours=2)))
    assert (
        await send_due_digests(
            sessionmaker, now=utcnow(), supported_kinds=SUPPORTED_KINDS, public_url=None
        )
        == 1
    )
    await relay_all(sessionmaker, queue)
    await queue.flushdb()  # the queued delivery job is lost with Redis
    await notify_all(settings, sessionmaker, queue)
    [request] = receiver.requests
    body = orjson.loads(request.body)
    assert body["type"] == "digest"
    assert [item["event_id"] for item in body["data"]["items"]] == [str(event.id)]


# --- the API -------------------------------------------------------------------------------


def channel_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "qa",
        "kind": "webhook",
        "target": "https://hooks.example.com/qa",
        "language": "en",
        "events": ["calibration.opened"],
        **overrides,
    }


async def test_a_channel_reads_back_its_queues_digest_and_time_zone(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    created = await client.post(
        "/v1/channels",
        json=channel_body(
            queues=["de-video", "de-live", "de-video"],
            digest="daily",
            digest_hour=17,
            time_zone="America/New_York",
        ),
        headers=auth(admin_key),
    )
    assert created.status_code == 201, created.text
    fetched = await client.get(f"/v1/channels/{created.json()['id']}", headers=auth(admin_key))
    for body in (created.json(), fetched.json()):
        assert body["queues"] == ["de-live", "de-video"]
        assert (body["digest"], body["digest_hour"], body["time_zone"]) == (
            "daily",
            17,
            "America/New_York",
        )
    plain = await client.post(
        "/v1/channels", json=channel_body(name="plain"), headers=auth(admin_key)
    )
    assert plain.status_code == 201
    assert (plain.json()["queues"], plain.json()["digest"], plain.json()["digest_hour"]) == (
        None,
        "off",
        9,
    )
    assert plain.json()["time_zone"] == "UTC"


@pytest.mark.parametrize(
    ("overrides", "loc", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, ["time_zone"], "IANA time zone"),
        ({"time_zone": "../../etc/passwd"}, ["time_zone"], "IANA time zone"),
        ({"time_zone": "europe/berlin"}, ["time_zone"], "IANA time zone"),
        ({"time_zone": ""}, ["time_zone"], None),
        ({"digest": "weekly"}, ["digest"], None),
        ({"digest_hour": 24}, ["digest_hour"], None),
        ({"digest_hour": -1}, ["digest_hour"], None),
        ({"events": ["calibration.opened", "no.such_event"]}, ["events", 1], None),
        ({"events": ["digest"]}, ["events", 0], None),
        ({"queues": []}, ["queues"], None),
        ({"queues": ["has space"]}, ["queues", 0], None),
        ({"name": "reviewer:anna"}, ["name"], "reviewer:"),
    ],
)
async def test_bad_routing_settings_are_422(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
    overrides: dict[str, Any],
    loc: list[Any],
    message: str | None,
) -> None:
    response = await client.post(
        "/v1/channels", json=channel_body(**overrides), headers=auth(admin_key)
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == loc
    if message is not None:
        assert message in problem["errors"][0]["msg"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Channel)) == 0
