"""The life of a delivery (one message to one channel), for the notifier and the API alike.

PostgreSQL holds the durable state of every message (a ``Delivery`` row: its body, status,
attempt count and when the next attempt is due); arq jobs only say "look at this delivery
now". Lost or duplicated jobs therefore lose or duplicate nothing: the worker's sweep
re-queues whatever is due, and a job for a delivery that is not due does nothing.

One attempt takes two short transactions around the HTTP call, never one long one (a slow
receiver must hold no row lock and no pooled connection for up to the send timeout):

1. claim: lock the row ``FOR UPDATE SKIP LOCKED`` (another worker claiming it is skipped,
   not waited for), check it is pending and due, count the attempt and push
   ``next_attempt_at`` out by a lease (send timeout plus a margin); commit.
2. send, with no transaction open.
3. record: lock the row, store the ``DeliveryAttempt``, and move the delivery to
   ``delivered``, to its next attempt (exponential backoff with jitter, or the receiver's
   ``Retry-After`` when later), or to ``dead``; commit.

A worker killed between 1 and 3 leaves the row pending until the lease ends; then it is due
again and the next attempt runs (the lost one counts). The claimed attempt number fences a
late outcome: an outcome whose lease was taken over is recorded as an attempt, and a success
still marks the delivery delivered (it did arrive), but it reschedules nothing.

Statuses: a 2xx delivers, unless the adapter read a refusal in the answer (a Lark bot
answers HTTP 200 with a JSON ``code``; an SMTP server replies with its own codes), which the
adapter classifies as retryable or permanent. A 5xx, a 408, 425 or 429, a timeout or a
connection error is retried until ``delivery_max_attempts``, then dead-lettered. Any other
status (another 4xx, or a 3xx, since redirects are not followed) is permanent: the receiver
refuses this message or the target is wrong, and resending the same bytes cannot help, so
the delivery is dead at once. Dead deliveries can be re-driven through the API once the
receiver is fixed (``redrive``: the same body, a fresh set of attempts).

The notifier owns the sending (``services/notifier``: fan-out renders through the channel
adapters and creates the deliveries, an adapter sends); every later change of a
delivery's state is here.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.channels.service import visible_deliveries
from shared.core.auth import Principal
from shared.core.errors import Conflict, NotFound
from shared.core.outbox import add_job
from shared.core.settings import Settings
from shared.jobs import DeliverMessage
from shared.models import Channel, Delivery, DeliveryAttempt
from shared.models.base import utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt, as the adapter saw it."""

    status_code: int | None
    """The HTTP status; None when no response came back (timeout, connection error)."""
    error: str | None
    """What went wrong, for people reading the delivery; None on success."""
    duration_ms: int
    retry_after_seconds: float | None = None
    """How long the receiver asked us to wait (a 429's or 503's Retry-After)."""
    refused: Literal["retryable", "permanent"] | None = None
    """Set when the target answered 2xx but its body says the message was not taken (a
    Lark bot's non-zero ``code``): how that refusal is treated, whatever the status."""
    response_excerpt: str | None = None
    """The start of what the target answered, for people testing a channel."""

    @property
    def succeeded(self) -> bool:
        return (
            self.refused is None and self.status_code is not None and 200 <= self.status_code < 300
        )


# The next attempt is due between 80 % and 100 % of the nominal backoff: spread enough that
# receivers recovering from an outage are not hit by every sender in the same second.
JITTER = 0.2


# Lease on a claimed delivery beyond the send timeout: covers the two short transactions.
LEASE_MARGIN_SECONDS = 30.0


RETRYABLE_STATUSES = frozenset({408, 425, 429})


SendClass = Literal["delivered", "retryable", "permanent"]


OutcomeStatus = Literal["delivered", "retry", "dead", "superseded", "gone"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed delivery is tried again, and how often at most."""

    max_attempts: int
    base_delay_seconds: float
    max_delay_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy the ``delivery_*`` settings describe."""
        return cls(
            max_attempts=settings.delivery_max_attempts,
            base_delay_seconds=settings.delivery_base_delay_seconds,
            max_delay_seconds=settings.delivery_max_delay_seconds,
        )

    def backoff_seconds(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """The wait after failed ``attempt`` (1-based): base doubling up to max, jittered."""
        nominal = min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** min(attempt - 1, 60))
        # Jitter spreads load; it protects nothing, so a non-cryptographic RNG is right.
        fraction = (rng or random).uniform(1.0 - JITTER, 1.0)
        return nominal * fraction

    def delay_after(
        self, attempt: int, *, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """The wait before the next attempt: the backoff, or ``Retry-After`` when later."""
        delay = self.backoff_seconds(attempt, rng=rng)
        return max(delay, retry_after) if retry_after is not None else delay


def classify(result: SendResult) -> SendClass:
    """Whether an attempt delivered, may succeed when repeated, or never will."""
    if result.succeeded:
        return "delivered"
    if result.refused is not None:
        return result.refused
    status = result.status_code
    if status is None or status >= 500 or status in RETRYABLE_STATUSES:
        return "retryable"
    return "permanent"


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this worker may attempt now, with what the attempt needs."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
    attempt: int
    claimed_at: datetime
    body: bytes
    content_type: str
    channel_kind: str
    target_encrypted: bytes
    secret_encrypted: bytes | None


async def claim_delivery(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    now: datetime,
    lease_seconds: float,
    max_attempts: int,
    supported_kinds: Collection[str],
) -> ClaimedDelivery | None:
    """Take the next attempt of a due, pending delivery; None when there is nothing to do.

    Nothing to do: the delivery is gone, final, not due yet (scheduled later, or leased by
    a worker sending it right now), or locked by another worker claiming it. A delivery
    that cannot be attempted (channel disabled, no adapter, attempts used up by lost
    outcomes) is dead-lettered here instead.
    """
    row = (
        await session.execute(
            select(Delivery, Channel)
            .join(Channel, Channel.id == Delivery.channel_id)
            .where(
                Delivery.id == delivery_id,
                Delivery.status == "pending",
                Delivery.next_attempt_at <= now,
            )
            .with_for_update(of=Delivery, skip_locked=True)
        )
    ).first()
    if row is None:
        return None
    delivery, channel = row
    reason = None
    if delivery.attempts >= max_attempts:
        reason = (
            f"attempt {delivery.attempts} of {max_attempts} never reported back "
            "(its worker stopped or timed out)"
        )
    elif not channel.enabled:
        reason = "channel is disabled"
    elif channel.kind not in supported_kinds:
        reason = f"no adapter for channel kind '{channel.kind}'"
    if reason is not None:
        _dead_letter(delivery, now=now, error=reason)
        await session.flush()
        logger.warning(
            "delivery dead-lettered before sending",
            extra={"delivery_id": str(delivery.id), "reason": reason},
        )
        return None
    delivery.attempts += 1
    delivery.next_attempt_at = now + timedelta(seconds=lease_seconds)
    await session.flush()
    return ClaimedDelivery(
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        attempt=delivery.attempts,
        claimed_at=now,
        body=delivery.body,
        content_type=delivery.content_type,
        channel_kind=channel.kind,
        target_encrypted=channel.target_encrypted,
        secret_encrypted=channel.secret_encrypted,
    )


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What recording an attempt did to its delivery."""

    status: OutcomeStatus
    delay_seconds: float | None = None
    """For ``retry``: how long until the next attempt is due."""


async def record_attempt(
    session: AsyncSession,
    *,
    claim: ClaimedDelivery,
    result: SendResult,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> AttemptOutcome:
    """Store an attempt's result and move its delivery on: delivered, retry, or dead."""
    delivery = await session.get(
        Delivery, claim.delivery_id, with_for_update=True, populate_existing=True
    )
    if delivery is None:
        # Its channel was deleted while the message was in flight.
        return AttemptOutcome("gone")
    session.add(
        DeliveryAttempt(
            id=uuid.uuid4(),
            delivery_id=delivery.id,
            number=claim.attempt,
            attempted_at=claim.claimed_at,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        )
    )
    send_class = classify(result)
    if delivery.status != "pending":
        outcome = AttemptOutcome("superseded")
    elif send_class == "delivered":
        delivery.status = "delivered"
        delivery.delivered_at = now
        outcome = AttemptOutcome("delivered")
    elif delivery.attempts != claim.attempt:
        # The lease ran out and another worker owns a newer attempt: it decides what's next.
        outcome = AttemptOutcome("superseded")
    elif send_class == "retryable" and claim.attempt < policy.max_attempts:
        delay = policy.delay_after(claim.attempt, retry_after=result.retry_after_seconds, rng=rng)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        outcome = AttemptOutcome("retry", delay_seconds=delay)
    else:
        _dead_letter(delivery, now=now, error=result.error)
        outcome = AttemptOutcome("dead")
    if outcome.status in ("delivered", "retry", "dead"):
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
    await session.flush()
    return outcome


def _dead_letter(delivery: Delivery, *, now: datetime, error: str | None) -> None:
    delivery.status = "dead"
    delivery.dead_at = now
    delivery.last_error = error


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A pending delivery whose next attempt is due."""

    id: uuid.UUID
    attempts: int
    next_attempt_at: datetime


async def due_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[DueDelivery]:
    """Pending deliveries due by ``now``, the most overdue first, after ``after`` (a page's
    last ``(next_attempt_at, id)``) when given."""
    query = select(Delivery.id, Delivery.attempts, Delivery.next_attempt_at).where(
        Delivery.status == "pending", Delivery.next_attempt_at <= now
    )
    if after is not None:
        query = query.where(tuple_(Delivery.next_attempt_at, Delivery.id) > tuple_(*after))
    rows = await session.execute(query.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    return [DueDelivery(row.id, row.attempts, row.next_attempt_at) for row in rows]


# An event matched by a channel (that existed when it occurred) with no delivery for it: its
# fan-out job was lost (e.g. Redis lost its data after the relay handed the job over).
# The routing rule of fan-out (services/notifier/deliveries.py) in SQL: a team channel
# subscribed to the event (type, market, queue, source) lacking both its delivery and, for a
# digest channel, its digest item; or a recipient with a usable e-mail address lacking the
# delivery through their personal channel.
_EVENTS_MISSING_DELIVERIES = text(
    r"""
    SELECT e.id, e.occurred_at
    FROM events e
    WHERE e.occurred_at > :since AND e.occurred_at <= :until
      AND (
        EXISTS (
          SELECT 1 FROM channels c
          WHERE c.enabled
            AND c.reviewer_id IS NULL
            AND c.kind = ANY(CAST(:kinds AS text[]))
            AND e.type = ANY(c.events)
            AND (e.market IS NULL OR c.markets IS NULL OR e.market = ANY(c.markets))
            AND (e.queue IS NULL OR c.queues IS NULL OR e.queue = ANY(c.queues))
            AND c.source_id IS NOT DISTINCT FROM e.source_id
            AND c.created_at <= e.occurred_at
            AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.channel_id = c.id
            )
            AND NOT EXISTS (
                SELECT 1 FROM digest_items i WHERE i.event_id = e.id AND i.channel_id = c.id
            )
        )
        OR (
          e.recipients IS NOT NULL
          AND 'email' = ANY(CAST(:kinds AS text[]))
          AND EXISTS (
            SELECT 1 FROM reviewers r
            WHERE r.id = ANY(e.recipients)
              AND r.email ~ '^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$'
              AND NOT EXISTS (
                  SELECT 1 FROM channels p
                  WHERE p.reviewer_id = r.id
                    AND (NOT p.enabled OR EXISTS (
                        SELECT 1 FROM deliveries d
                        WHERE d.event_id = e.id AND d.channel_id = p.id
                    ))
              )
          )
        )
      )
    ORDER BY e.occurred_at
    LIMIT :limit
    """
)


async def events_missing_deliveries(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    supported_kinds: Collection[str],
    limit: int,
) -> list[uuid.UUID]:
    """Events that occurred in ``(since, until]`` and still lack a delivery they should have."""
    rows = await session.execute(
        _EVENTS_MISSING_DELIVERIES,
        {
            "kinds": sorted(supported_kinds),
            "since": since,
            "until": until,
            "limit": limit,
        },
    )
    return [row.id for row in rows]


async def redrive(
    session: AsyncSession, *, principal: Principal, delivery_id: uuid.UUID
) -> Delivery:
    """Give a dead-lettered delivery a fresh set of attempts, starting now.

    The body is not rendered again: the receiver gets the same bytes (and event id) as
    before, under a fresh signature. The job goes through the outbox, so it exists exactly
    when the status change does; were it lost anyway, the notifier's sweep of due pending
    deliveries sends it.
    """
    delivery = await session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery_id, visible_deliveries(principal))
        .with_for_update()
    )
    if delivery is None:
        raise NotFound("delivery not found")
    if delivery.status != "dead":
        raise Conflict(
            f"only a dead-lettered delivery can be re-driven; this one is {delivery.status}"
        )
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.dead_at = None
    await session.flush()
    await add_job(session, DeliverMessage(delivery_id=delivery.id))
    return delivery
