"""Fan-out of events to channels, and sending one claimed attempt through its adapter.

What a delivery is and how its state moves (claim, record, retry, dead-letter, redrive) is
``shared.deliveries.lifecycle``, which the API's redrive uses too; this module adds what
only the notifier does: route an event to its channels (team channels by subscription,
digest channels' low-priority events into their next digest, the event's recipients by
personal e-mail), render each message through its adapter at fan-out, and make the HTTP
call of a claimed attempt.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
import uuid
import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, String, Uuid, any_, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.channels import (
    CHANNEL_TEST_EVENT,
    ChannelAdapter,
    MessageLink,
    OutgoingMessage,
    RenderedMessage,
    acknowledgement_link,
    render_message,
)
from shared.channels.credentials import ChannelCredentials, decode_credentials
from shared.channels.personal import personal_email_channels
from shared.core.encryption import SecretBox
from shared.core.observability import redact
from shared.core.settings import Settings
from shared.deliveries.lifecycle import ClaimedDelivery, SendResult
from shared.events import DIGEST_EVENT_TYPE, LOW_PRIORITY_EVENTS, EventType
from shared.models import Channel, Delivery, DigestItem, Event
from shared.policy_updates.acknowledgement_links import acknowledgement_url
from shared.report_schedules.files import snapshot_attachments

logger = logging.getLogger(__name__)

# The events whose personal e-mail carries the recipient's signed acknowledgement link.
ACKNOWLEDGED_EVENTS = frozenset(
    {EventType.POLICY_UPDATE_PUBLISHED.value, EventType.POLICY_UPDATE_REMINDER.value}
)


def deliver_job_id(delivery_id: uuid.UUID, attempt: int) -> str:
    """The arq job id for a delivery's ``attempt``: a second enqueue of it is refused."""
    return f"delivery:{delivery_id}:{attempt}"


def fan_out_job_id(event_id: uuid.UUID) -> str:
    """The arq job id the sweep gives a repeated fan-out of an event."""
    return f"fan-out:{event_id}"


async def fan_out_event(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    now: datetime,
    supported_kinds: Collection[str],
    public_url: str | None = None,
    settings: Settings | None = None,
    box: SecretBox | None = None,
) -> list[uuid.UUID]:
    """Create the deliveries of an event, once; returns the deliveries not yet attempted.

    Team channels match by subscription (``subscribed_channels``), or, for an event
    addressed to channels (``channel_ids``), are those channels (``addressed_channels``);
    an e-mail channel's ``report.ready`` carries the snapshot's files. A channel in digest mode
    gets a low-priority event as a ``DigestItem`` instead of a delivery, sent later in its
    digest (``services.notifier.digests``). Each of the event's ``recipients`` whose profile
    has an e-mail address gets a delivery through their personal e-mail channel (created or
    brought up to date here; this needs ``settings`` and ``box``), rendered for them alone:
    a policy update's carries their signed acknowledgement link. A digest event is never
    fanned out: its one delivery is made with it.

    Each body is rendered here by the channel's adapter (team channels once per kind,
    language and time zone; links below ``public_url``, else the settings' public URL), and
    never again. Running this twice creates nothing new: ``(channel_id, event_id)`` is unique
    for deliveries and digest items alike, and the inserts skip existing rows. Channels of a
    kind without an adapter get nothing (logged).
    """
    event = await session.get(Event, event_id)
    if event is None:
        logger.warning("event to fan out does not exist", extra={"event_id": str(event_id)})
        return []
    if public_url is None and settings is not None:
        public_url = settings.public_url
    if event.type != DIGEST_EVENT_TYPE:
        channels = (
            await addressed_channels(session, event)
            if event.channel_ids
            else await subscribed_channels(session, event)
        )
        rows, digest_items = _team_rows(
            channels,
            event,
            now=now,
            supported_kinds=supported_kinds,
            public_url=public_url,
            email_event=await _with_report_files(session, event, channels),
        )
        if event.recipients and "email" in supported_kinds:
            if settings is None or box is None:
                logger.warning(
                    "fan-out without settings: no personal e-mails",
                    extra={"event_id": str(event.id)},
                )
            else:
                rows += await _personal_rows(
                    session, event, now=now, settings=settings, box=box, public_url=public_url
                )
        for chunk in _chunks(digest_items):
            await session.execute(insert(DigestItem).values(chunk).on_conflict_do_nothing())
        await insert_deliveries(session, rows)
    # Also those created by an earlier run that may have stopped before queueing them.
    unattempted = await session.scalars(
        select(Delivery.id).where(
            Delivery.event_id == event.id, Delivery.status == "pending", Delivery.attempts == 0
        )
    )
    return list(unattempted)


async def fan_out_events(
    session: AsyncSession,
    *,
    event_ids: Sequence[uuid.UUID],
    now: datetime,
    supported_kinds: Collection[str],
    public_url: str | None = None,
    settings: Settings | None = None,
    box: SecretBox | None = None,
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """``fan_out_event`` for many events in one transaction; returns, per event found, its
    deliveries not yet attempted.

    The notifier's fan-out jobs arrive at the events' rate, and most events are plain (about
    a market and a queue, routed by subscription): those cost one query for the events, one
    for the channels that may want them (matched here by ``channel_subscribes``, the rule of
    ``subscribed_channels``), one INSERT for every delivery and one query for what is
    unattempted, whatever their number. The others (addressed to channels, with recipients,
    a report with files, a digest) go through ``fan_out_event`` one by one, in the same
    transaction.
    """
    if public_url is None and settings is not None:
        public_url = settings.public_url
    ids = list(dict.fromkeys(event_ids))
    events = list(
        await session.scalars(
            select(Event)
            .where(Event.id == any_(literal(ids, ARRAY(Uuid()))))
            .order_by(Event.occurred_at, Event.id)
        )
    )
    plain = [event for event in events if _routed_by_subscription(event)]
    for event in events:
        if not _routed_by_subscription(event):
            await fan_out_event(
                session,
                event_id=event.id,
                now=now,
                supported_kinds=supported_kinds,
                public_url=public_url,
                settings=settings,
                box=box,
            )
    if plain:
        types = sorted({event.type for event in plain})
        candidates = list(
            await session.scalars(
                select(Channel)
                .where(
                    Channel.enabled,
                    Channel.reviewer_id.is_(None),
                    Channel.events.overlap(literal(types, ARRAY(String()))),
                )
                .order_by(Channel.id)
            )
        )
        # Each event is matched against the channels of its type only (in id order): a
        # batch of many events to channels of other types costs no rule check for those.
        by_type: dict[str, list[Channel]] = {}
        for channel in candidates:
            for type_ in dict.fromkeys(channel.events):
                by_type.setdefault(type_, []).append(channel)
        rows: list[dict[str, Any]] = []
        digest_items: list[dict[str, Any]] = []
        for event in plain:
            event_rows, event_digest_items = _team_rows(
                [
                    channel
                    for channel in by_type.get(event.type, ())
                    if channel_subscribes(channel, event)
                ],
                event,
                now=now,
                supported_kinds=supported_kinds,
                public_url=public_url,
            )
            rows += event_rows
            digest_items += event_digest_items
        for chunk in _chunks(digest_items):
            await session.execute(insert(DigestItem).values(chunk).on_conflict_do_nothing())
        await insert_deliveries(session, rows)
    unattempted: dict[uuid.UUID, list[uuid.UUID]] = {event.id: [] for event in events}
    found = await session.execute(
        select(Delivery.id, Delivery.event_id).where(
            Delivery.event_id == any_(literal([event.id for event in events], ARRAY(Uuid()))),
            Delivery.status == "pending",
            Delivery.attempts == 0,
        )
    )
    for delivery_id, event_id in found:
        unattempted[event_id].append(delivery_id)
    return unattempted


def _routed_by_subscription(event: Event) -> bool:
    """An event whose deliveries are its subscribers' only, rendered from the event alone."""
    return (
        event.type != DIGEST_EVENT_TYPE
        and not event.channel_ids
        and not event.recipients
        and event.type != EventType.REPORT_READY.value
    )


def channel_subscribes(channel: Channel, event: Event) -> bool:
    """Whether ``subscribed_channels`` would pick ``channel`` (enabled, a team channel) for
    ``event``: the same rule, in Python, for channels loaded once for many events."""
    if not channel.enabled or channel.reviewer_id is not None:
        return False
    if event.type not in channel.events:
        return False
    # An event about no market (or queue) goes to every subscriber, as does a channel
    # limited to none.
    if (
        event.market is not None
        and channel.markets is not None
        and (event.market not in channel.markets)
    ):
        return False
    if (
        event.queue is not None
        and channel.queues is not None
        and (event.queue not in channel.queues)
    ):
        return False
    return channel.source_id == event.source_id


async def subscribed_channels(session: AsyncSession, event: Event) -> list[Channel]:
    """The enabled team channels subscribed to ``event``, by id.

    A channel matches when subscribed to the event's type and, when limited to some markets
    or queues, the event is about one of them (an event about no market, or no queue, goes
    to every subscriber). An event meant for one source (``source_id`` set: a correction of
    that source's decision) goes only to that source's own channels, never to general ones,
    and a source's channel gets only its source's events: a platform hears of its own
    decisions and nothing else, and a general channel subscribed to such a type by mistake
    cannot pass one platform's content to another receiver. Personal channels are never
    picked here (they subscribe to nothing; only ``recipients`` reach them). The notifier's
    sweep (``shared.deliveries.lifecycle.events_missing_deliveries``) applies the same rule
    in SQL.
    """
    query = select(Channel).where(
        Channel.enabled,
        Channel.reviewer_id.is_(None),
        literal(event.type) == any_(Channel.events),
    )
    if event.market is not None:
        query = query.where(
            or_(Channel.markets.is_(None), literal(event.market) == any_(Channel.markets))
        )
    if event.queue is not None:
        query = query.where(
            or_(Channel.queues.is_(None), literal(event.queue) == any_(Channel.queues))
        )
    if event.source_id is not None:
        query = query.where(Channel.source_id == event.source_id)
    else:
        query = query.where(Channel.source_id.is_(None))
    return list(await session.scalars(query.order_by(Channel.id)))


async def addressed_channels(session: AsyncSession, event: Event) -> list[Channel]:
    """The channels an event is addressed to (``event.channel_ids``: a report schedule's),
    by id: those enabled, team channels only, whatever they subscribe to."""
    return list(
        await session.scalars(
            select(Channel)
            .where(
                Channel.id == any_(literal(list(event.channel_ids or ()), ARRAY(Uuid()))),
                Channel.enabled,
                Channel.reviewer_id.is_(None),
            )
            .order_by(Channel.id)
        )
    )


async def _with_report_files(
    session: AsyncSession, event: Event, channels: list[Channel]
) -> Event | None:
    """For a ``report.ready`` event going to an e-mail channel: the event as e-mails render
    it, with its snapshot's files as attachments (loaded here rather than copied into every
    event's data); None otherwise."""
    if event.type != EventType.REPORT_READY.value or not any(
        channel.kind == "email" for channel in channels
    ):
        return None
    try:
        snapshot_id = uuid.UUID(str(event.data["id"]))
    except (KeyError, ValueError):
        return None
    files = await snapshot_attachments(session, snapshot_id=snapshot_id)
    if not files:
        return None
    # A copy never added to the session: only rendered.
    return Event(
        id=event.id,
        type=event.type,
        occurred_at=event.occurred_at,
        market=event.market,
        queue=event.queue,
        data={**event.data, "attachments": files},
    )


def _team_rows(
    channels: list[Channel],
    event: Event,
    *,
    now: datetime,
    supported_kinds: Collection[str],
    public_url: str | None,
    email_event: Event | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The delivery rows and digest items of ``event`` for its team ``channels``; e-mail
    channels render ``email_event`` when given (the event with its files attached)."""
    rendered: dict[tuple[str, str, str], RenderedMessage] = {}
    rows: list[dict[str, Any]] = []
    digest_items: list[dict[str, Any]] = []
    low_priority = event.type in LOW_PRIORITY_EVENTS
    for channel in channels:
        if channel.kind not in supported_kinds:
            logger.info(
                "channel kind has no adapter yet; no delivery created",
                extra={"channel_id": str(channel.id), "kind": channel.kind},
            )
            continue
        if low_priority and channel.digest != "off":
            digest_items.append(
                {"channel_id": channel.id, "event_id": event.id, "collected_at": now}
            )
            continue
        variant = (channel.kind, channel.language, channel.time_zone)
        if variant not in rendered:
            rendered[variant] = render_message(
                channel.kind,
                email_event if email_event is not None and channel.kind == "email" else event,
                language=channel.language,
                public_url=public_url,
                time_zone=channel.time_zone,
            )
        rows.append(delivery_row(channel, event, rendered[variant], now=now))
    return rows, digest_items


async def _personal_rows(
    session: AsyncSession,
    event: Event,
    *,
    now: datetime,
    settings: Settings,
    box: SecretBox,
    public_url: str | None,
) -> list[dict[str, Any]]:
    """The delivery rows of ``event`` for its recipients' personal e-mail channels, each
    rendered for its recipient (a policy update's with their acknowledgement link)."""
    channels = await personal_email_channels(session, reviewer_ids=event.recipients or (), box=box)
    # A repeated fan-out (the sweep's) renders only what is missing: a policy update may
    # have thousands of recipients, each message signed and rendered for one of them.
    done = set(
        await session.scalars(
            select(Delivery.channel_id).where(
                Delivery.event_id == event.id,
                Delivery.channel_id
                == any_(literal([channel.id for channel in channels.values()], ARRAY(Uuid()))),
            )
        )
    )
    shared: dict[tuple[str, str], RenderedMessage] = {}
    rows: list[dict[str, Any]] = []
    for reviewer_id, channel in channels.items():
        if not channel.enabled or channel.id in done:
            continue
        link = personal_link(
            event, reviewer_id=reviewer_id, language=channel.language, settings=settings, now=now
        )
        if link is None:
            variant = (channel.language, channel.time_zone)
            if variant not in shared:
                shared[variant] = render_message(
                    channel.kind,
                    event,
                    language=channel.language,
                    public_url=public_url,
                    time_zone=channel.time_zone,
                )
            message = shared[variant]
        else:
            message = render_message(
                channel.kind,
                event,
                language=channel.language,
                public_url=public_url,
                time_zone=channel.time_zone,
                personal_link=link,
            )
        rows.append(delivery_row(channel, event, message, now=now))
    return rows


def personal_link(
    event: Event, *, reviewer_id: str, language: str, settings: Settings, now: datetime
) -> MessageLink | None:
    """The action a message offers one recipient: for a policy update (published, or a
    reminder), their signed link acknowledging it; None for other events."""
    if event.type not in ACKNOWLEDGED_EVENTS:
        return None
    try:
        policy_update_id = uuid.UUID(str(event.data["id"]))
    except (KeyError, ValueError):
        logger.warning("policy update event without its id", extra={"event_id": str(event.id)})
        return None
    return acknowledgement_link(
        acknowledgement_url(
            settings, policy_update_id=policy_update_id, reviewer_id=reviewer_id, now=now
        ),
        language=language,
    )


# New deliveries in one statement of constant text (columns bound as arrays): prepared once
# per connection, whatever the number of rows, where an ORM multi-row INSERT is compiled
# afresh for every batch (a third of fan-out's CPU). Rows already there are skipped.
_INSERT_DELIVERIES = text(
    """
    INSERT INTO deliveries
        (id, channel_id, event_id, event_type, body, content_type, status, attempts,
         next_attempt_at, created_at)
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:channel_ids AS uuid[]), CAST(:event_ids AS uuid[]),
        CAST(:event_types AS text[]), CAST(:bodies AS bytea[]), CAST(:content_types AS text[]),
        CAST(:statuses AS text[]), CAST(:attempts AS integer[]),
        CAST(:next_attempt_at AS timestamptz[]), CAST(:created_at AS timestamptz[])
    )
    ON CONFLICT (channel_id, event_id) DO NOTHING
    """
)


async def insert_deliveries(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (``delivery_row``'s), skipping those whose (channel, event) exists."""
    for start in range(0, len(rows), _INSERT_ARRAY_CHUNK):
        chunk = rows[start : start + _INSERT_ARRAY_CHUNK]
        await session.execute(
            _INSERT_DELIVERIES,
            {
                "ids": [row["id"] for row in chunk],
                "channel_ids": [row["channel_id"] for row in chunk],
                "event_ids": [row["event_id"] for row in chunk],
                "event_types": [row["event_type"] for row in chunk],
                "bodies": [row["body"] for row in chunk],
                "content_types": [row["content_type"] for row in chunk],
                "statuses": [row["status"] for row in chunk],
                "attempts": [row["attempts"] for row in chunk],
                "next_attempt_at": [row["next_attempt_at"] for row in chunk],
                "created_at": [row["created_at"] for row in chunk],
            },
        )


# Rows per array INSERT: bounds one statement's size (a policy update's thousands of
# personal e-mails), not its parameters (ten arrays whatever the rows).
_INSERT_ARRAY_CHUNK = 5000


# Rows per INSERT: a dozen columns each stays far below PostgreSQL's 32,767 parameters.
_INSERT_CHUNK = 1000


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), _INSERT_CHUNK):
        yield rows[start : start + _INSERT_CHUNK]


def delivery_row(
    channel: Channel, event: Event, message: RenderedMessage, *, now: datetime
) -> dict[str, Any]:
    """A new pending delivery of ``message`` to ``channel``, due ``now``."""
    return {
        "id": uuid.uuid4(),
        "channel_id": channel.id,
        "event_id": event.id,
        "event_type": event.type,
        "body": message.body,
        "content_type": message.content_type,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        # A channel gets its messages in production order (the lifecycle sends the oldest
        # pending first): the event's time, not this fan-out's, which may run late or
        # concurrently with a later event's.
        "created_at": event.occurred_at,
    }


async def send_claimed(
    claim: ClaimedDelivery, *, adapters: Mapping[str, ChannelAdapter], box: SecretBox
) -> SendResult:
    """Make the claimed attempt. Never raises: a bug or a bad key is a failed attempt too,
    recorded and retried like any other, so it shows on the delivery.

    Neither the log nor the stored error quotes the target or a secret, whatever an
    exception's text says: for Slack, Teams and Lark the target URL is the credential.
    """
    return await send_to_channel(
        adapters=adapters,
        box=box,
        kind=claim.channel_kind,
        target_encrypted=claim.target_encrypted,
        credentials_encrypted=claim.secret_encrypted,
        message=RenderedMessage(body=claim.body, content_type=claim.content_type),
        delivery_id=claim.delivery_id,
        event_id=claim.event_id,
        attempt=claim.attempt,
    )


async def send_to_channel(
    *,
    adapters: Mapping[str, ChannelAdapter],
    box: SecretBox,
    kind: str,
    target_encrypted: bytes,
    credentials_encrypted: bytes | None,
    message: RenderedMessage,
    delivery_id: uuid.UUID,
    event_id: uuid.UUID,
    attempt: int,
) -> SendResult:
    """Decrypt a channel's target and credentials and send ``message`` through the kind's
    adapter; never raises, and redacts every secret from the error (see ``send_claimed``)."""
    secrets: list[str | None] = []
    try:
        target = decrypt_cached(box, target_encrypted)
        secrets.append(target)
        plaintext = decrypt_cached(box, credentials_encrypted) if credentials_encrypted else None
        secrets.append(plaintext)
        credentials = decode_credentials(plaintext)
        secrets += _secret_values(credentials)
        result = await adapters[kind].send(
            OutgoingMessage(
                delivery_id=delivery_id,
                event_id=event_id,
                attempt=attempt,
                target=target,
                credentials=credentials,
                body=message.body,
                content_type=message.content_type,
            )
        )
    except Exception as exc:
        error = redact(f"{type(exc).__name__}: {exc}", *secrets)
        logger.error(
            "delivery attempt failed unexpectedly",
            extra={
                "delivery_id": str(delivery_id),
                "error": error,
                "traceback": redact("".join(traceback.format_exception(exc)), *secrets),
            },
        )
        return SendResult(status_code=None, error=f"unexpected error: {error}", duration_ms=0)
    if result.error is None and result.response_excerpt is None:
        return result
    return dataclasses.replace(
        result,
        error=redact(result.error, *secrets) if result.error is not None else None,
        response_excerpt=(
            redact(result.response_excerpt, *secrets)
            if result.response_excerpt is not None
            else None
        ),
    )


# Decrypted channel secrets, kept in this process's memory only and briefly: a channel
# with a backlog sends many messages a second, each needing its target and credentials,
# and a Fernet decryption costs more than its signature check. Keyed by the box and the
# ciphertext, so an edited channel (new ciphertext) or another key never hits a stale entry.
DECRYPTED_TTL_SECONDS = 60.0
_DECRYPTED_MAX = 1024
_decrypted: weakref.WeakKeyDictionary[SecretBox, dict[bytes, tuple[float, str]]] = (
    weakref.WeakKeyDictionary()
)


def decrypt_cached(box: SecretBox, token: bytes) -> str:
    """``box.decrypt(token)``, remembered for ``DECRYPTED_TTL_SECONDS``; raises as it does."""
    cache = _decrypted.setdefault(box, {})
    now = time.monotonic()
    hit = cache.get(token)
    if hit is not None and now - hit[0] < DECRYPTED_TTL_SECONDS:
        return hit[1]
    plaintext = box.decrypt(token)
    if len(cache) >= _DECRYPTED_MAX:
        cache.clear()
    cache[token] = (now, plaintext)
    return plaintext


def _secret_values(credentials: ChannelCredentials) -> list[str | None]:
    values = [credentials.secret]
    if credentials.oauth is not None:
        values.append(credentials.oauth.client_secret)
    return values


def test_event(channel: Channel, *, now: datetime) -> Event:
    """The event a channel's test message is about (not stored): the channel itself."""
    return Event(
        id=uuid.uuid4(),
        type=CHANNEL_TEST_EVENT,
        occurred_at=now,
        market=None,
        data={"id": str(channel.id), "name": channel.name},
    )


async def send_test_message(
    channel: Channel,
    *,
    adapters: Mapping[str, ChannelAdapter],
    box: SecretBox,
    now: datetime,
    public_url: str | None,
) -> SendResult:
    """Render a test message for ``channel`` in its language and send it now, once."""
    if channel.kind not in adapters:
        return SendResult(
            status_code=None, error=f"no adapter for channel kind '{channel.kind}'", duration_ms=0
        )
    event = test_event(channel, now=now)
    return await send_to_channel(
        adapters=adapters,
        box=box,
        kind=channel.kind,
        target_encrypted=channel.target_encrypted,
        credentials_encrypted=channel.secret_encrypted,
        message=render_message(
            channel.kind,
            event,
            language=channel.language,
            public_url=public_url,
            time_zone=channel.time_zone,
        ),
        # A fresh id: a test message is never mistaken for (or deduplicated with) another.
        delivery_id=uuid.uuid4(),
        event_id=event.id,
        attempt=1,
    )
