"""Digests: a digest channel's low-priority events, sent as one message per hour or day.

Fan-out does not deliver a low-priority event (``shared.events.LOW_PRIORITY_EVENTS``) to a
channel in digest mode: it stores a ``DigestItem`` instead. Every minute the notifier looks
for digest channels whose period has ended in their time zone (``hourly``: at each full
local hour; ``daily``: at ``digest_hour`` local, through daylight-saving changes) and that
hold items collected before its end. For each such channel, in one transaction, it stores
ONE event of type ``shared.events.DIGEST_EVENT_TYPE`` whose data lists the items in the
order they were produced, marks the items as sent by it, and creates that channel's
delivery of it (queued through the outbox), which then takes the normal path: retries,
order per channel, dead letters, redrive.

A period without items sends nothing. A period missed while no notifier ran is sent once
when one comes back, with every item still unsent. Two notifiers never send a digest twice:
the channel row is locked for the transaction (another run skips it) and only items not yet
marked are taken. A digest event is about no market and no queue and is never fanned out,
so it reaches no other channel.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import render_message
from services.notifier.deliveries import delivery_row
from shared.core.db import unit_of_work
from shared.core.outbox import add_job
from shared.events import DIGEST_EVENT_TYPE
from shared.jobs import DeliverMessage
from shared.models import Channel, Delivery, DigestItem, Event

logger = logging.getLogger(__name__)

# The most items one digest message carries (every kind renders this many within its
# limits); more wait for the next run's digest.
DIGEST_MAX_ITEMS = 10_000
_INSTANT = timedelta(microseconds=1)


def period_end(now: datetime, *, mode: str, digest_hour: int, time_zone: str) -> datetime:
    """The end of the latest digest period ended by ``now`` (UTC): the last full local hour
    (``hourly``) or the last ``digest_hour``:00 local (``daily``) at or before ``now``.

    Local times come from the zone database, so a daily digest at 09:00 in Europe/Berlin
    goes at 07:00 UTC in summer and 08:00 UTC in winter. A ``digest_hour`` skipped by a
    spring-forward change fires at the change; one repeated by a fall-back change fires at
    its first occurrence. Any other ``mode`` (``off``): ``now`` itself.
    """
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    if mode == "hourly":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    if mode == "daily":
        day = local.date()
        while True:
            candidate = datetime.combine(day, time(digest_hour), tzinfo=zone).astimezone(UTC)
            if candidate <= now:
                return candidate
            day -= timedelta(days=1)
    return now


def period_start(
    end: datetime, *, oldest: datetime, mode: str, digest_hour: int, time_zone: str
) -> datetime:
    """The start of the digest period ending at ``end``: the boundary before it, or the
    boundary before the ``oldest`` item when that is earlier (periods missed while no
    notifier ran are covered by one digest)."""
    if mode not in ("hourly", "daily"):
        return min(oldest, end)
    previous = period_end(end - _INSTANT, mode=mode, digest_hour=digest_hour, time_zone=time_zone)
    return min(
        previous,
        period_end(oldest, mode=mode, digest_hour=digest_hour, time_zone=time_zone),
    )


async def channels_with_due_digests(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Enabled channels holding unsent items collected before their period's end at
    ``now`` (a channel no longer in digest mode gets its held items at once)."""
    rows = await session.execute(
        select(
            Channel.id,
            Channel.digest,
            Channel.digest_hour,
            Channel.time_zone,
            func.min(DigestItem.collected_at).label("oldest"),
        )
        .join(DigestItem, DigestItem.channel_id == Channel.id)
        .where(Channel.enabled, DigestItem.digest_event_id.is_(None))
        .group_by(Channel.id)
        .order_by(Channel.id)
    )
    due = []
    for row in rows:
        end = period_end(now, mode=row.digest, digest_hour=row.digest_hour, time_zone=row.time_zone)
        if row.oldest < end or row.digest not in ("hourly", "daily"):
            due.append(row.id)
    return due


async def send_digest(
    session: AsyncSession,
    *,
    channel_id: uuid.UUID,
    now: datetime,
    supported_kinds: Collection[str],
    public_url: str | None,
) -> uuid.UUID | None:
    """Send ``channel_id``'s digest of the period ended by ``now``, if one is due: the
    digest event, its items marked, and the channel's delivery of it (queued through the
    outbox), all in the session's transaction. Returns the delivery's id; None when nothing
    is due, or another transaction holds the channel (it is sending the digest).
    """
    channel = await session.scalar(
        select(Channel)
        .where(Channel.id == channel_id, Channel.enabled)
        # Not FOR UPDATE: fan-out inserting the channel's next items (a foreign key's KEY
        # SHARE lock) goes on meanwhile; a second digest run skips the channel.
        .with_for_update(skip_locked=True, key_share=True)
    )
    if channel is None:
        return None
    if channel.kind not in supported_kinds:
        logger.info(
            "channel kind has no adapter yet; digest held",
            extra={"channel_id": str(channel.id), "kind": channel.kind},
        )
        return None
    mode = channel.digest
    end = period_end(now, mode=mode, digest_hour=channel.digest_hour, time_zone=channel.time_zone)
    items = (
        await session.execute(
            select(Event, DigestItem.collected_at)
            .join(DigestItem, DigestItem.event_id == Event.id)
            .where(
                DigestItem.channel_id == channel.id,
                DigestItem.digest_event_id.is_(None),
                DigestItem.collected_at < end if mode in ("hourly", "daily") else true(),
            )
            # The order the events were produced in.
            .order_by(Event.occurred_at, Event.id)
            .limit(DIGEST_MAX_ITEMS)
        )
    ).all()
    if not items:
        return None
    oldest = min(collected_at for _, collected_at in items)
    start = period_start(
        end,
        oldest=oldest,
        mode=mode,
        digest_hour=channel.digest_hour,
        time_zone=channel.time_zone,
    )
    digest = Event(
        id=uuid.uuid4(),
        type=DIGEST_EVENT_TYPE,
        occurred_at=now,
        market=None,
        queue=None,
        source_id=None,
        recipients=None,
        data=digest_data(channel.id, start, end, [event for event, _ in items]),
    )
    session.add(digest)
    await session.flush()
    await session.execute(
        update(DigestItem)
        .where(
            DigestItem.channel_id == channel.id,
            DigestItem.event_id.in_([event.id for event, _ in items]),
            DigestItem.digest_event_id.is_(None),
        )
        .values(digest_event_id=digest.id)
        .execution_options(synchronize_session=False)
    )
    message = render_message(
        channel.kind,
        digest,
        language=channel.language,
        public_url=public_url,
        time_zone=channel.time_zone,
    )
    row = delivery_row(channel, digest, message, now=now)
    await session.execute(insert(Delivery).values(row))
    await add_job(session, DeliverMessage(delivery_id=row["id"]))
    delivery_id: uuid.UUID = row["id"]
    return delivery_id


def digest_data(
    channel_id: uuid.UUID, start: datetime, end: datetime, events: list[Event]
) -> dict[str, Any]:
    """The data of a digest event: the channel, the period, and each item as the event it
    was (id, type, time, payload), in production order."""
    return {
        "channel_id": str(channel_id),
        "period_start": start.astimezone(UTC).isoformat(),
        "period_end": end.astimezone(UTC).isoformat(),
        "items": [
            {
                "event_id": str(event.id),
                "type": event.type,
                "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
                "data": event.data,
            }
            for event in events
        ],
    }


async def send_due_digests(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    supported_kinds: Collection[str],
    public_url: str | None,
) -> int:
    """Send every digest due at ``now``, one transaction per channel; returns how many
    were sent. A channel that fails is logged and retried at the next run."""
    async with unit_of_work(sessionmaker) as session:
        channel_ids = await channels_with_due_digests(session, now=now)
    sent = 0
    for channel_id in channel_ids:
        try:
            async with unit_of_work(sessionmaker) as session:
                delivery_id = await send_digest(
                    session,
                    channel_id=channel_id,
                    now=now,
                    supported_kinds=supported_kinds,
                    public_url=public_url,
                )
        except Exception:
            logger.exception(
                "digest failed; retried at the next run", extra={"channel_id": str(channel_id)}
            )
            continue
        if delivery_id is not None:
            sent += 1
            logger.info(
                "digest sent",
                extra={"channel_id": str(channel_id), "delivery_id": str(delivery_id)},
            )
    return sent
