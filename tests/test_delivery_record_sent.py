"""Recording a channel's successful sends in one statement (``record_sent``): what is stored,
and which delivery of the channel it names next."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from shared.deliveries.lifecycle import (
    ClaimedDelivery,
    SendResult,
    claim_delivery,
    claim_followers,
    record_sent,
)
from shared.models import Delivery, DeliveryAttempt
from shared.models.base import utcnow
from tests.support.webhooks import WebhookReceiver, create_channel, emit_rejected_batch, fan_out

Sessions = async_sessionmaker[AsyncSession]
OK = SendResult(status_code=200, error=None, duration_ms=3)


async def claim(
    sessionmaker: Sessions, delivery_id: uuid.UUID, *, with_followers: bool
) -> list[ClaimedDelivery]:
    """Claim a channel's head (and the deliveries behind it) as a delivery job does."""
    async with sessionmaker() as session, session.begin():
        head = await claim_delivery(
            session,
            delivery_id=delivery_id,
            now=utcnow(),
            lease_seconds=60,
            max_attempts=8,
            supported_kinds=SUPPORTED_KINDS,
        )
        assert head is not None
        if not with_followers:
            return [head]
        followers = await claim_followers(
            session, head=head, now=head.claimed_at, lease_seconds=60, max_attempts=8, limit=49
        )
        return [head, *followers]


async def test_recording_sent_attempts_names_the_channels_next_delivery(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    events = [await emit_rejected_batch(sessionmaker, f"batch {n}") for n in range(3)]
    first, second, third = [await fan_out(sessionmaker, event.id) for event in events]
    [head] = await claim(sessionmaker, first, with_followers=False)

    async with sessionmaker() as session, session.begin():
        outcome = await record_sent(session, sent=[(head, OK)], now=utcnow())
    # The head is delivered and its attempt stored; the next is the one right behind it.
    assert outcome.status == "delivered"
    assert outcome.next_delivery is not None
    assert (outcome.next_delivery.id, outcome.next_delivery.attempts) == (second, 0)
    async with sessionmaker() as session:
        states = {d.id: (d.status, d.leased_until) for d in await session.scalars(select(Delivery))}
        attempts = [
            (a.delivery_id, a.number, a.status_code)
            for a in await session.scalars(select(DeliveryAttempt))
        ]
    assert states == {
        first: ("delivered", None),
        second: ("pending", None),
        third: ("pending", None),
    }
    assert attempts == [(first, 1, 200)]

    # While another delivery of the channel is in flight, no next one is named; once the
    # last is recorded, the channel has nothing left.
    claims = await claim(sessionmaker, second, with_followers=True)
    assert [c.delivery_id for c in claims] == [second, third]
    async with sessionmaker() as session, session.begin():
        outcome = await record_sent(session, sent=[(claims[0], OK)], now=utcnow())
    assert outcome.next_delivery is None
    async with sessionmaker() as session, session.begin():
        outcome = await record_sent(session, sent=[(claims[1], OK)], now=utcnow())
    assert (outcome.status, outcome.next_delivery) == ("delivered", None)
    async with sessionmaker() as session:
        delivered = {
            d.id: (d.status, d.attempts, d.leased_until)
            for d in await session.scalars(select(Delivery))
        }
    assert delivered == {d: ("delivered", 1, None) for d in (first, second, third)}


async def test_a_head_held_by_a_dead_delivery_is_not_named(
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
) -> None:
    await create_channel(client, admin_key, receiver.url)
    events = [await emit_rejected_batch(sessionmaker, f"batch {n}") for n in range(3)]
    first, second, third = [await fan_out(sessionmaker, event.id) for event in events]
    [head] = await claim(sessionmaker, first, with_followers=False)
    # Meanwhile the message behind it died of an outage (a probe's) and holds the channel:
    # the third, though pending and due, waits.
    async with sessionmaker() as session, session.begin():
        held = await session.get_one(Delivery, second)
        held.status, held.holds_channel, held.dead_at = "dead", True, utcnow()

    async with sessionmaker() as session, session.begin():
        outcome = await record_sent(session, sent=[(head, OK)], now=utcnow())
    assert (outcome.status, outcome.next_delivery) == ("delivered", None)
    async with sessionmaker() as session:
        assert (await session.get_one(Delivery, third)).status == "pending"
