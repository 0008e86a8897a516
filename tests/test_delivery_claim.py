"""Claiming a delivery (``claim_delivery``): the lease it takes in the same statement as its
checks, the turn it waits for, and the deliveries it dead-letters instead of sending."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from shared.deliveries.lifecycle import ClaimedDelivery, claim_delivery, claim_followers
from shared.models import Channel, Delivery
from shared.models.base import utcnow
from tests.support.webhooks import WebhookReceiver, create_channel, emit_rejected_batch, fan_out

Sessions = async_sessionmaker[AsyncSession]
LEASE_SECONDS = 60


async def try_claim(
    sessionmaker: Sessions,
    delivery_id: uuid.UUID,
    *,
    max_attempts: int = 8,
    supported_kinds: frozenset[str] = frozenset(SUPPORTED_KINDS),
) -> tuple[ClaimedDelivery | None, list[ClaimedDelivery]]:
    async with sessionmaker() as session, session.begin():
        head = await claim_delivery(
            session,
            delivery_id=delivery_id,
            now=utcnow(),
            lease_seconds=LEASE_SECONDS,
            max_attempts=max_attempts,
            supported_kinds=supported_kinds,
        )
        followers = (
            await claim_followers(
                session,
                head=head,
                now=head.claimed_at,
                lease_seconds=LEASE_SECONDS,
                max_attempts=max_attempts,
                limit=49,
            )
            if head is not None
            else []
        )
    return head, followers


async def states(sessionmaker: Sessions) -> dict[uuid.UUID, tuple[str, int, str | None, bool]]:
    async with sessionmaker() as session:
        return {
            d.id: (d.status, d.attempts, d.last_error, d.leased_until is not None)
            for d in await session.scalars(select(Delivery))
        }


async def deliveries_of(sessionmaker: Sessions, count: int) -> list[uuid.UUID]:
    events = [await emit_rejected_batch(sessionmaker, f"batch {n}") for n in range(count)]
    return [await fan_out(sessionmaker, event.id) for event in events]


async def test_a_claim_leases_the_head_and_only_its_turn_counts(
    receiver: WebhookReceiver, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    await create_channel(client, admin_key, receiver.url)
    first, second = await deliveries_of(sessionmaker, 2)

    # Not the channel's turn: an older delivery is pending.
    assert await try_claim(sessionmaker, second) == (None, [])
    head, followers = await try_claim(sessionmaker, first)
    assert head is not None
    assert (head.delivery_id, head.attempt) == (first, 1)
    assert [f.delivery_id for f in followers] == [second]
    async with sessionmaker() as session:
        leased = await session.get(Delivery, first)
        assert leased is not None
        assert leased.leased_until is not None
        assert leased.leased_until - head.claimed_at == timedelta(seconds=LEASE_SECONDS)
    # In flight: neither is claimed again while the leases last.
    assert await try_claim(sessionmaker, first) == (None, [])
    assert await try_claim(sessionmaker, second) == (None, [])


async def test_a_lone_delivery_is_claimed_without_followers(
    receiver: WebhookReceiver, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    await create_channel(client, admin_key, receiver.url)
    [only] = await deliveries_of(sessionmaker, 1)
    head, followers = await try_claim(sessionmaker, only)
    assert head is not None
    assert not head.others_pending
    assert followers == []
    assert (await states(sessionmaker))[only] == ("pending", 1, None, True)


async def test_a_disabled_channels_deliveries_are_dead_lettered_at_the_claim(
    receiver: WebhookReceiver, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    await create_channel(client, admin_key, receiver.url)
    first, second = await deliveries_of(sessionmaker, 2)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Channel).values(enabled=False))

    assert await try_claim(sessionmaker, first) == (None, [])
    assert await states(sessionmaker) == {
        first: ("dead", 0, "channel is disabled", False),
        second: ("dead", 0, "channel is disabled", False),
    }


async def test_a_kind_without_an_adapter_is_dead_lettered_and_the_next_is_claimed(
    receiver: WebhookReceiver, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    await create_channel(client, admin_key, receiver.url)
    [only] = await deliveries_of(sessionmaker, 1)
    assert await try_claim(sessionmaker, only, supported_kinds=frozenset({"slack"})) == (None, [])
    assert (await states(sessionmaker))[only] == (
        "dead",
        0,
        "no adapter for channel kind 'webhook'",
        False,
    )


async def test_attempts_used_up_by_lost_outcomes_dead_letter_and_hold_the_channel(
    receiver: WebhookReceiver, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    await create_channel(client, admin_key, receiver.url)
    first, second = await deliveries_of(sessionmaker, 2)
    # Three attempts were claimed and never reported back (their workers died).
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Delivery).where(Delivery.id == first).values(attempts=3, leased_until=None)
        )

    assert await try_claim(sessionmaker, first, max_attempts=3) == (None, [])
    async with sessionmaker() as session:
        dead = await session.get(Delivery, first)
        assert dead is not None
        assert (dead.status, dead.holds_channel) == ("dead", True)
        assert dead.last_error is not None
        assert "never reported back" in dead.last_error
    # The channel is held: the next waits for a probe or a redrive.
    assert await try_claim(sessionmaker, second, max_attempts=3) == (None, [])
    assert (await states(sessionmaker))[second] == ("pending", 0, None, False)
