"""The life of a delivery (one message to one channel), for the notifier and the API alike.

PostgreSQL holds the durable state of every message (a ``Delivery`` row: its body, status,
attempt count and when the next attempt is due); arq jobs only say "look at this delivery
now". Lost or duplicated jobs therefore lose or duplicate nothing: the worker's sweep
re-queues whatever is due, and a job for a delivery that is not due does nothing.

One attempt takes two short transactions around the HTTP call, never one long one (a slow
receiver must hold no row lock and no pooled connection for up to the send timeout):

1. claim: lock the row ``FOR UPDATE SKIP LOCKED`` (another worker claiming it is skipped,
   not waited for), check it is pending, due and its channel's turn (below), count the
   attempt and lease it: ``next_attempt_at`` and ``leased_until`` move out by the send
   timeout plus a margin; commit.
2. send, with no transaction open.
3. record: lock the row, store the ``DeliveryAttempt``, and move the delivery to
   ``delivered``, to its next attempt (exponential backoff with jitter, or the receiver's
   ``Retry-After`` when later), or to ``dead``; end the lease; commit.

A worker killed between 1 and 3 leaves the row pending until the lease ends; then it is due
again and the next attempt runs (the lost one counts). The claimed attempt number fences a
late outcome: an outcome whose lease was taken over is recorded as an attempt, and a success
still marks the delivery delivered (it did arrive), but it reschedules nothing.

Order per channel. A channel's deliveries go out one at a time, in production order:
``(created_at, event_id)``, where fan-out sets ``created_at`` to the event's time. A
delivery is claimed only when it is its channel's head (no older pending delivery of the
channel), no other delivery of the channel is leased (in flight), and the channel is not
held (below). Deliveries waiting behind the head are not attempted and use no attempts.
Claims and records of one channel are serialised by a transaction-scoped advisory lock on
the channel, so two notifiers never send two deliveries of one channel at once. When a
record frees the channel (the head delivered, or dead for a refusal) it names the new head,
which the notifier sends at once rather than at the next sweep. A channel with a backlog
may have its head and the deliveries right behind it claimed together
(``claim_followers``): they are still sent one at a time, in order, stopping at the first
failure; the delivered are recorded in one statement (``record_sent``) and the unsent
given back uncounted (``release_unsent``) before the channel's next head is looked for.

Outage hold. When the head fails its last attempt the way an unreachable target fails (a
retryable failure: 5xx, 408/425/429, a timeout, a connection error, a throttling refusal),
it is dead-lettered as always, and marked ``holds_channel``: the channel is held, its later
deliveries stay pending and are not attempted. Every ``delivery_max_delay_seconds`` after
it died, the sweep probes the channel by re-driving the holding delivery with ONE attempt
(its attempt count set one short of the maximum): a failed probe dead-letters it again
(still holding), a successful one delivers it and the channel resumes, in order. A manual
redrive of the holding delivery (the API's) gives it a full set of attempts and resumes the
channel when it succeeds. A permanent refusal dead-letters only that message, and the
channel moves on to its next delivery. So a chat service down for an hour gets every
message once it is back, in the order they were produced, and every message whose last
attempt failed is still dead-lettered. Held channels are derived from the deliveries (a
dead, holding delivery of the channel), with no state on the channel.

Statuses: a 2xx delivers, unless the adapter read a refusal in the answer (a Lark bot
answers HTTP 200 with a JSON ``code``; an SMTP server replies with its own codes), which the
adapter classifies as retryable or permanent. A 5xx, a 408, 425 or 429, a timeout or a
connection error is retried until ``delivery_max_attempts``, then dead-lettered (holding the
channel). Any other status (another 4xx, or a 3xx, since redirects are not followed) is
permanent: the receiver refuses this message or the target is wrong, and resending the same
bytes cannot help, so the delivery is dead at once. Dead deliveries can be re-driven through
the API once the receiver is fixed (``redrive``: the same body, a fresh set of attempts).

The notifier owns the sending (``services/notifier``: fan-out renders through the channel
adapters and creates the deliveries, an adapter sends, a shared rate limit per channel
spaces the sends); every later change of a delivery's state is here.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.channels.service import visible_deliveries
from shared.core.auth import Principal
from shared.core.errors import Conflict, NotFound
from shared.core.outbox import add_job
from shared.core.settings import Settings
from shared.jobs import DeliverMessage
from shared.models import Delivery
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
class DueDelivery:
    """A pending delivery whose next attempt is due."""

    id: uuid.UUID
    attempts: int
    next_attempt_at: datetime


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
    channel_id: uuid.UUID
    # False when the claim saw no other pending delivery of its channel: no followers to
    # look for (``claim_followers``).
    others_pending: bool = True


# Deliveries dead-lettered in one claim before it gives up (a disabled channel's backlog is
# dead-lettered in batches; the sweep queues the next batch).
DEAD_LETTER_AT_CLAIM_BATCH = 100


def _lock_key(channel_id: uuid.UUID) -> str:
    return f"channel-deliveries:{channel_id}"


_LOCK_CHANNEL = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")

# The channel of a pending, due delivery, its lock taken (the key as ``_lock_key`` makes it).
_LOCK_CHANNEL_OF_DUE = text(
    """
    SELECT channel_id,
           pg_advisory_xact_lock(hashtextextended('channel-deliveries:' || channel_id::text, 0))
    FROM deliveries
    WHERE id = :delivery_id AND status = 'pending' AND next_attempt_at <= :now
    """
)

# A channel's turn in one round trip: its head (oldest pending delivery, by the index
# ix_deliveries_channel_pending), and whether it is held (ix_deliveries_holding) or has a
# delivery in flight other than :other_id (ix_deliveries_leased).
_CHANNEL_TURN = text(
    """
    SELECT head.id, head.attempts, head.next_attempt_at,
           EXISTS (
               SELECT 1 FROM deliveries held
               WHERE held.channel_id = :channel_id AND held.status = 'dead'
                 AND held.holds_channel
           )
           OR EXISTS (
               SELECT 1 FROM deliveries leased
               WHERE leased.channel_id = :channel_id AND leased.leased_until > :now
                 AND leased.status = 'pending'
                 AND leased.id IS DISTINCT FROM CAST(:other_id AS uuid)
           ) AS blocked
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT d.id, d.attempts, d.next_attempt_at
        FROM deliveries d
        WHERE d.channel_id = :channel_id AND d.status = 'pending'
        ORDER BY d.created_at, d.event_id
        LIMIT 1
    ) AS head ON true
    """
)


# A claim in one round trip after the channel's lock (the statement's snapshot is taken
# after it): the due delivery with what a send needs from its channel, the channel's turn
# as ``_CHANNEL_TURN`` reads it (the delivery in flight being any but this one), whether any
# other delivery of the channel is pending, and its lease, taken when the delivery may be
# attempted now (its turn, attempts left, channel enabled, an adapter for its kind). Plain
# SQL: it runs once per message sent, and the ORM's unit of work costs more CPU than the
# statement itself.
_CLAIM_DUE = text(
    """
    WITH due AS (
        SELECT d.id, d.event_id, d.attempts, d.body, d.content_type, d.channel_id,
               c.kind, c.enabled, c.target_encrypted, c.secret_encrypted
        FROM deliveries d
        JOIN channels c ON c.id = d.channel_id
        WHERE d.id = :delivery_id AND d.status = 'pending' AND d.next_attempt_at <= :now
        FOR UPDATE OF d SKIP LOCKED
    ), turn AS (
        SELECT due.*, head.id AS head_id,
               EXISTS (
                   SELECT 1 FROM deliveries held
                   WHERE held.channel_id = due.channel_id AND held.status = 'dead'
                     AND held.holds_channel
               )
               OR EXISTS (
                   SELECT 1 FROM deliveries leased
                   WHERE leased.channel_id = due.channel_id AND leased.leased_until > :now
                     AND leased.status = 'pending' AND leased.id <> due.id
               ) AS blocked,
               EXISTS (
                   SELECT 1 FROM deliveries other
                   WHERE other.channel_id = due.channel_id AND other.status = 'pending'
                     AND other.id <> due.id
               ) AS others_pending
        FROM due
        LEFT JOIN LATERAL (
            SELECT h.id
            FROM deliveries h
            WHERE h.channel_id = due.channel_id AND h.status = 'pending'
            ORDER BY h.created_at, h.event_id
            LIMIT 1
        ) AS head ON true
    ), lease AS (
        UPDATE deliveries d
        SET attempts = t.attempts + 1, next_attempt_at = :until, leased_until = :until
        FROM turn t
        WHERE d.id = t.id AND NOT t.blocked AND t.head_id = t.id
          AND t.attempts < :max_attempts AND t.enabled
          AND t.kind = ANY(CAST(:kinds AS text[]))
        RETURNING d.id
    )
    SELECT turn.*, EXISTS (SELECT 1 FROM lease) AS leased FROM turn
    """
)

_DEAD_LETTER = text(
    """
    UPDATE deliveries
    SET status = 'dead', dead_at = :now, last_error = :error, leased_until = NULL,
        holds_channel = :holds_channel
    WHERE id = :delivery_id
    """
)


async def lock_channel(session: AsyncSession, channel_id: uuid.UUID) -> None:
    """Serialise, until the transaction ends, what decides a channel's next send: claims
    and records of its deliveries (their own row locks follow this one, never precede it)."""
    await session.execute(_LOCK_CHANNEL, {"key": _lock_key(channel_id)})


async def _channel_turn(
    session: AsyncSession,
    channel_id: uuid.UUID,
    *,
    now: datetime,
    other_than: uuid.UUID | None = None,
) -> tuple[DueDelivery | None, bool]:
    """The channel's head (None: nothing pending), and whether the channel is blocked: held,
    or sending a delivery other than ``other_than``."""
    row = (
        await session.execute(
            _CHANNEL_TURN, {"channel_id": channel_id, "now": now, "other_id": other_than}
        )
    ).one()
    head = DueDelivery(row.id, row.attempts, row.next_attempt_at) if row.id is not None else None
    return head, bool(row.blocked)


async def channel_head(
    session: AsyncSession, *, channel_id: uuid.UUID, now: datetime
) -> DueDelivery | None:
    """The channel's delivery to send now: its oldest pending one, when it is due, nothing
    of the channel is in flight and the channel is not held; else None."""
    head, blocked = await _channel_turn(session, channel_id, now=now)
    if blocked or head is None or head.next_attempt_at > now:
        return None
    return head


# Each channel of the given deliveries, its lock taken, in channel order (two callers
# locking overlapping sets cannot deadlock; were the planner ever to reorder, PostgreSQL
# would detect the deadlock and the caller falls back to queueing every delivery).
_LOCK_CHANNELS_OF = text(
    """
    SELECT c.channel_id,
           pg_advisory_xact_lock(hashtextextended('channel-deliveries:' || c.channel_id::text, 0))
    FROM (
        SELECT DISTINCT channel_id FROM deliveries
        WHERE id = ANY(CAST(:delivery_ids AS uuid[]))
        ORDER BY channel_id
    ) AS c
    """
)

# Per channel, its head when it is due and nothing holds the channel or is in flight on it.
_STARTABLE_HEADS = text(
    """
    SELECT head.id, head.attempts, head.next_attempt_at
    FROM unnest(CAST(:channel_ids AS uuid[])) AS c(id)
    CROSS JOIN LATERAL (
        SELECT d.id, d.attempts, d.next_attempt_at
        FROM deliveries d
        WHERE d.channel_id = c.id AND d.status = 'pending'
        ORDER BY d.created_at, d.event_id
        LIMIT 1
    ) AS head
    WHERE head.next_attempt_at <= :now
      AND NOT EXISTS (
          SELECT 1 FROM deliveries held
          WHERE held.channel_id = c.id AND held.status = 'dead' AND held.holds_channel
      )
      AND NOT EXISTS (
          SELECT 1 FROM deliveries leased
          WHERE leased.channel_id = c.id AND leased.leased_until > :now
            AND leased.status = 'pending'
      )
    """
)


async def idle_channel_heads(
    session: AsyncSession, *, delivery_ids: Collection[uuid.UUID], now: datetime
) -> list[DueDelivery]:
    """For the channels of ``delivery_ids`` (new deliveries, committed): each one's head
    when the channel is idle (head due, nothing in flight, not held); the rest need no job.

    Fan-out queues a job for these heads only. A busy channel's new deliveries are sent by
    the worker sending its current one: recording that outcome names the channel's next
    head. The channel locks taken here (released at commit) close the gap between the two:
    a record that has already looked for the next head has also committed before the heads
    are read here (so this sees the channel idle, and the new head is queued), and one that
    has not yet looked will see the new deliveries (committed before this was called).
    """
    if not delivery_ids:
        return []
    locked = await session.execute(_LOCK_CHANNELS_OF, {"delivery_ids": list(delivery_ids)})
    channel_ids = [row.channel_id for row in locked]
    # A new statement: its snapshot is taken after every lock was granted.
    rows = await session.execute(_STARTABLE_HEADS, {"channel_ids": channel_ids, "now": now})
    return [DueDelivery(row.id, row.attempts, row.next_attempt_at) for row in rows]


async def claim_delivery(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    now: datetime,
    lease_seconds: float,
    max_attempts: int,
    supported_kinds: Collection[str],
    channel_locked: bool = False,
) -> ClaimedDelivery | None:
    """Take the next attempt of a due, pending delivery; None when there is nothing to do.

    ``channel_locked``: this transaction holds the channel's lock already (it has just
    recorded the channel's last attempt and named this delivery next), so it is not taken
    again.

    Nothing to do: the delivery is gone, final, not due yet (scheduled later, or leased by
    a worker sending it right now), locked by another worker claiming it, or not its
    channel's turn (an older delivery of the channel is pending, another is in flight, or
    the channel is held). A delivery that cannot be attempted (channel disabled, no
    adapter, attempts used up by lost outcomes) is dead-lettered here instead, and the
    channel's next delivery is claimed in its place when it is due: the claim returned may
    then be of another delivery of the same channel.
    """
    if not channel_locked:
        locked = (
            await session.execute(_LOCK_CHANNEL_OF_DUE, {"delivery_id": delivery_id, "now": now})
        ).first()
        if locked is None:
            return None
    parameters = {
        "now": now,
        "until": now + timedelta(seconds=lease_seconds),
        "max_attempts": max_attempts,
        "kinds": list(supported_kinds),
    }
    for _ in range(DEAD_LETTER_AT_CLAIM_BATCH):
        row = (
            await session.execute(_CLAIM_DUE, {**parameters, "delivery_id": delivery_id})
        ).first()
        if row is None or row.blocked or row.head_id != row.id:
            return None
        if row.leased:
            return ClaimedDelivery(
                delivery_id=row.id,
                event_id=row.event_id,
                attempt=row.attempts + 1,
                claimed_at=now,
                body=row.body,
                content_type=row.content_type,
                channel_kind=row.kind,
                target_encrypted=row.target_encrypted,
                secret_encrypted=row.secret_encrypted,
                channel_id=row.channel_id,
                others_pending=row.others_pending,
            )
        # Its turn, but it cannot be attempted (the statement's reasons, in words).
        holds = False
        if row.attempts >= max_attempts:
            reason = (
                f"attempt {row.attempts} of {max_attempts} never reported back "
                "(its worker stopped or timed out)"
            )
            # The target was not heard refusing it: like an outage, the channel waits.
            holds = True
        elif not row.enabled:
            reason = "channel is disabled"
        else:
            reason = f"no adapter for channel kind '{row.kind}'"
        await session.execute(
            _DEAD_LETTER,
            {"delivery_id": row.id, "now": now, "error": reason, "holds_channel": holds},
        )
        logger.warning(
            "delivery dead-lettered before sending",
            extra={"delivery_id": str(row.id), "reason": reason},
        )
        next_head = await channel_head(session, channel_id=row.channel_id, now=now)
        if next_head is None:
            return None
        delivery_id = next_head.id
    return None


# The deliveries right behind a claimed head, in production order, with what a send needs:
# they go out after it, one at a time, under leases taken now (``claim_followers``).
_FOLLOWERS = text(
    """
    SELECT d.id, d.event_id, d.attempts, d.body, d.content_type, d.next_attempt_at,
           d.leased_until
    FROM deliveries d
    WHERE d.channel_id = :channel_id AND d.status = 'pending' AND d.id <> :head_id
    ORDER BY d.created_at, d.event_id
    LIMIT :limit
    """
)

_LEASE_MANY = text(
    """
    UPDATE deliveries d
    SET attempts = c.attempt, next_attempt_at = :until, leased_until = :until
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[])) AS c(id, attempt)
    WHERE d.id = c.id
    """
)


async def claim_followers(
    session: AsyncSession,
    *,
    head: ClaimedDelivery,
    now: datetime,
    lease_seconds: float,
    max_attempts: int,
    limit: int,
) -> list[ClaimedDelivery]:
    """Claim, with ``head`` (just claimed in this transaction, which holds its channel's
    lock), up to ``limit`` of the channel's next pending deliveries, in production order, to
    be sent after it one at a time: a channel with a backlog costs one claim and one record
    per batch rather than per message. Stops at the first that is not due or has used its
    attempts (it waits for its own claim). Their leases are the head's, so a worker killed
    mid-batch leaves every one of them to be sent again once the leases end; what was not
    sent goes back with ``release_unsent``."""
    if limit <= 0 or not head.others_pending:
        return []
    rows = await session.execute(
        _FOLLOWERS, {"channel_id": head.channel_id, "head_id": head.delivery_id, "limit": limit}
    )
    followers: list[ClaimedDelivery] = []
    for row in rows:
        leased = row.leased_until is not None and row.leased_until > now
        if row.next_attempt_at > now or leased or row.attempts + 1 >= max_attempts:
            break
        followers.append(
            ClaimedDelivery(
                delivery_id=row.id,
                event_id=row.event_id,
                attempt=row.attempts + 1,
                claimed_at=now,
                body=row.body,
                content_type=row.content_type,
                channel_kind=head.channel_kind,
                target_encrypted=head.target_encrypted,
                secret_encrypted=head.secret_encrypted,
                channel_id=head.channel_id,
            )
        )
    if followers:
        await session.execute(
            _LEASE_MANY,
            {
                "ids": [f.delivery_id for f in followers],
                "attempts": [f.attempt for f in followers],
                "until": now + timedelta(seconds=lease_seconds),
            },
        )
    return followers


_RELEASE_UNSENT = text(
    """
    UPDATE deliveries d
    SET attempts = c.attempt - 1, next_attempt_at = :now, leased_until = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[])) AS c(id, attempt)
    WHERE d.id = c.id AND d.status = 'pending' AND d.attempts = c.attempt
    """
)


async def release_unsent(
    session: AsyncSession, *, claims: Collection[ClaimedDelivery], now: datetime
) -> None:
    """Give back claimed attempts that were never made (a batch stopped before them): not
    counted, due now, behind whatever stopped the batch. Those whose lease was taken over
    are left to their new owner."""
    if not claims:
        return
    await lock_channel(session, next(iter(claims)).channel_id)
    await session.execute(
        _RELEASE_UNSENT,
        {
            "ids": [c.delivery_id for c in claims],
            "attempts": [c.attempt for c in claims],
            "now": now,
        },
    )


# Delivered attempts stored and their deliveries marked delivered (what ``record_attempt``
# does for a success, for many), and the channel's turn after them, in one statement (one
# round trip). A delivery no longer pending (redriven, dead) keeps its state; the attempt is
# stored either way, and the lease ends only where it is still this attempt's. The turn: the
# oldest pending delivery other than those just delivered (a statement does not see its own
# changes, so they are left out by id), and whether the channel is held or has a delivery in
# flight other than these attempts.
_RECORD_SENT = text(
    """
    WITH sent AS (
        SELECT * FROM unnest(
            CAST(:attempt_ids AS uuid[]), CAST(:ids AS uuid[]), CAST(:numbers AS integer[]),
            CAST(:attempted_at AS timestamptz[]), CAST(:status_codes AS integer[]),
            CAST(:errors AS text[]), CAST(:durations AS integer[])
        ) AS s(attempt_id, id, number, attempted_at, status_code, error, duration_ms)
    ),
    attempt AS (
        INSERT INTO delivery_attempts
            (id, delivery_id, number, attempted_at, status_code, error, duration_ms)
        SELECT attempt_id, id, number, attempted_at, status_code, error, duration_ms
        FROM sent
        WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = sent.id)
    ),
    delivered AS (
        UPDATE deliveries d
        SET status = 'delivered', delivered_at = :now, last_status_code = s.status_code,
            last_error = s.error,
            leased_until = CASE WHEN d.attempts = s.number THEN NULL ELSE d.leased_until END
        FROM sent s
        WHERE d.id = s.id AND d.status = 'pending'
    )
    SELECT head.id, head.attempts, head.next_attempt_at,
           EXISTS (
               SELECT 1 FROM deliveries held
               WHERE held.channel_id = :channel_id AND held.status = 'dead'
                 AND held.holds_channel
           )
           OR EXISTS (
               SELECT 1 FROM deliveries leased
               WHERE leased.channel_id = :channel_id AND leased.leased_until > :now
                 AND leased.status = 'pending'
                 AND NOT EXISTS (
                     SELECT 1 FROM sent s WHERE s.id = leased.id AND s.number = leased.attempts
                 )
           ) AS blocked
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT d.id, d.attempts, d.next_attempt_at
        FROM deliveries d
        WHERE d.channel_id = :channel_id AND d.status = 'pending'
          AND d.id <> ALL(CAST(:ids AS uuid[]))
        ORDER BY d.created_at, d.event_id
        LIMIT 1
    ) AS head ON true
    """
)


async def record_sent(
    session: AsyncSession,
    *,
    sent: Collection[tuple[ClaimedDelivery, SendResult]],
    now: datetime,
) -> AttemptOutcome:
    """Record attempts of one channel that all succeeded (``classify`` says delivered) as
    ``record_attempt`` would, and name the channel's next delivery as it does after a
    success: the lock and one statement. The outcome is ``delivered`` even for an attempt
    whose delivery had meanwhile ended otherwise (``record_attempt`` would say superseded;
    what is stored is the same)."""
    assert sent
    assert all(classify(result) == "delivered" for _, result in sent)
    channel_id = next(iter(sent))[0].channel_id
    await lock_channel(session, channel_id)
    row = (
        await session.execute(
            _RECORD_SENT,
            {
                "attempt_ids": [uuid.uuid4() for _ in sent],
                "ids": [claim.delivery_id for claim, _ in sent],
                "numbers": [claim.attempt for claim, _ in sent],
                "attempted_at": [claim.claimed_at for claim, _ in sent],
                "status_codes": [result.status_code for _, result in sent],
                "errors": [result.error for _, result in sent],
                "durations": [result.duration_ms for _, result in sent],
                "now": now,
                "channel_id": channel_id,
            },
        )
    ).one()
    next_delivery = None
    if row.id is not None and not row.blocked and row.next_attempt_at <= now:
        next_delivery = DueDelivery(row.id, row.attempts, row.next_attempt_at)
    return AttemptOutcome("delivered", next_delivery=next_delivery)


async def release_claim(
    session: AsyncSession, *, claim: ClaimedDelivery, now: datetime, retry_in: float
) -> bool:
    """Give back a claimed attempt that was not made (no send: the rate limit said wait):
    the attempt is not counted and the delivery is due again in ``retry_in`` seconds.
    False when the claim is no longer this worker's (its lease was taken over)."""
    await lock_channel(session, claim.channel_id)
    delivery = await session.get(
        Delivery, claim.delivery_id, with_for_update=True, populate_existing=True
    )
    if delivery is None or delivery.status != "pending" or delivery.attempts != claim.attempt:
        return False
    delivery.attempts -= 1
    delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    delivery.leased_until = None
    await session.flush()
    return True


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What recording an attempt did to its delivery."""

    status: OutcomeStatus
    delay_seconds: float | None = None
    """For ``retry``: how long until the next attempt is due."""
    next_delivery: DueDelivery | None = None
    """The channel's next delivery, due now, when this outcome freed the channel (the
    delivery is delivered, or dead without holding the channel)."""


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
    await lock_channel(session, claim.channel_id)
    row = (await session.execute(_LOCK_DELIVERY, {"delivery_id": claim.delivery_id})).first()
    if row is None:
        # Its channel was deleted while the message was in flight.
        return AttemptOutcome("gone")
    fields = {name: getattr(row, name) for name in _RECORDED_FIELDS}
    send_class = classify(result)
    own_lease = row.attempts == claim.attempt
    delay: float | None = None
    if row.status != "pending":
        status: OutcomeStatus = "superseded"
    elif send_class == "delivered":
        fields |= {"status": "delivered", "delivered_at": now}
        status = "delivered"
    elif not own_lease:
        # The lease ran out and another worker owns a newer attempt: it decides what's next.
        status = "superseded"
    elif send_class == "retryable" and claim.attempt < policy.max_attempts:
        delay = policy.delay_after(claim.attempt, retry_after=result.retry_after_seconds, rng=rng)
        fields["next_attempt_at"] = now + timedelta(seconds=delay)
        status = "retry"
    else:
        fields |= {
            "status": "dead",
            "dead_at": now,
            "leased_until": None,
            "holds_channel": send_class == "retryable",
        }
        status = "dead"
    if status in ("delivered", "retry", "dead"):
        fields |= {"last_status_code": result.status_code, "last_error": result.error}
    if own_lease:
        fields["leased_until"] = None
    await session.execute(
        _RECORD,
        {
            **fields,
            "delivery_id": claim.delivery_id,
            "attempt_id": uuid.uuid4(),
            "number": claim.attempt,
            "attempted_at": claim.claimed_at,
            "status_code": result.status_code,
            "error": result.error,
            "duration_ms": result.duration_ms,
        },
    )
    next_delivery = None
    if fields["status"] == "delivered" or (
        fields["status"] == "dead" and not fields["holds_channel"]
    ):
        next_delivery = await channel_head(session, channel_id=row.channel_id, now=now)
    return AttemptOutcome(status, delay_seconds=delay, next_delivery=next_delivery)


# What recording an attempt may change on its delivery (all written back, changed or not).
_RECORDED_FIELDS = (
    "status",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
    "dead_at",
    "holds_channel",
    "leased_until",
)

_LOCK_DELIVERY = text(
    """
    SELECT id, channel_id, attempts, status, next_attempt_at, last_status_code, last_error,
           delivered_at, dead_at, holds_channel, leased_until
    FROM deliveries WHERE id = :delivery_id
    FOR UPDATE
    """
)

# The attempt stored and its delivery moved on, in one round trip.
_RECORD = text(
    """
    WITH attempt AS (
        INSERT INTO delivery_attempts
            (id, delivery_id, number, attempted_at, status_code, error, duration_ms)
        VALUES (:attempt_id, :delivery_id, :number, :attempted_at, :status_code, :error,
                :duration_ms)
    )
    UPDATE deliveries
    SET status = :status, next_attempt_at = :next_attempt_at,
        last_status_code = :last_status_code, last_error = :last_error,
        delivered_at = :delivered_at, dead_at = :dead_at, holds_channel = :holds_channel,
        leased_until = :leased_until
    WHERE id = :delivery_id
    """
)


# Per channel, its head (oldest pending delivery) when it is due and the channel not held.
# One index probe per channel (ix_deliveries_channel_pending), however long the backlog.
_DUE_HEADS = text(
    """
    SELECT head.id, head.attempts, head.next_attempt_at
    FROM channels c
    CROSS JOIN LATERAL (
        SELECT d.id, d.attempts, d.next_attempt_at
        FROM deliveries d
        WHERE d.channel_id = c.id AND d.status = 'pending'
        ORDER BY d.created_at, d.event_id
        LIMIT 1
    ) head
    WHERE head.next_attempt_at <= :now
      AND (CAST(:after_at AS timestamptz) IS NULL
           OR (head.next_attempt_at, head.id) > (CAST(:after_at AS timestamptz),
                                                 CAST(:after_id AS uuid)))
      AND NOT EXISTS (
          SELECT 1 FROM deliveries h
          WHERE h.channel_id = c.id AND h.status = 'dead' AND h.holds_channel
      )
    ORDER BY head.next_attempt_at, head.id
    LIMIT :limit
    """
)


async def due_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[DueDelivery]:
    """The deliveries to attempt by ``now``, one per channel at most (its head, when due
    and the channel is not held), the most overdue first, after ``after`` (a page's last
    ``(next_attempt_at, id)``) when given. Deliveries waiting behind a head are not listed:
    the head's outcome moves the channel on."""
    rows = await session.execute(
        _DUE_HEADS,
        {
            "now": now,
            "limit": limit,
            "after_at": after[0] if after is not None else None,
            "after_id": after[1] if after is not None else None,
        },
    )
    return [DueDelivery(row.id, row.attempts, row.next_attempt_at) for row in rows]


async def probe_held_channels(
    session: AsyncSession,
    *,
    now: datetime,
    probe_after_seconds: float,
    max_attempts: int,
    limit: int,
) -> list[DueDelivery]:
    """Re-drive, with one attempt, each delivery that holds its channel and died at least
    ``probe_after_seconds`` ago; returns them (pending and due now)."""
    holding = list(
        await session.scalars(
            select(Delivery)
            .where(
                Delivery.status == "dead",
                Delivery.holds_channel,
                Delivery.dead_at <= now - timedelta(seconds=probe_after_seconds),
            )
            .order_by(Delivery.dead_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    probes = []
    for delivery in holding:
        delivery.status = "pending"
        delivery.holds_channel = False
        delivery.dead_at = None
        # One attempt left: a failed probe is dead (and holding) again at once.
        delivery.attempts = max(0, max_attempts - 1)
        delivery.next_attempt_at = now
        delivery.leased_until = None
        probes.append(DueDelivery(delivery.id, delivery.attempts, now))
    await session.flush()
    return probes


# An event matched by a channel (that existed when it occurred) with no delivery for it: its
# fan-out job was lost (e.g. Redis lost its data after the relay handed the job over).
# The routing rule of fan-out (services/notifier/deliveries.py) in SQL: a channel the event
# is addressed to (channel_ids: enabled team channels, whatever they subscribe to) lacking its
# delivery; for an event not addressed so, a team channel subscribed to the event (type,
# market, queue, source) lacking both its delivery and, for a digest channel, its digest item;
# or a recipient with a usable e-mail address lacking the delivery through their personal
# channel.
_EVENTS_MISSING_DELIVERIES = text(
    r"""
    SELECT e.id, e.occurred_at
    FROM events e
    WHERE e.occurred_at > :since AND e.occurred_at <= :until
      AND (
        EXISTS (
          SELECT 1 FROM channels c
          WHERE e.channel_ids IS NOT NULL
            AND c.id = ANY(e.channel_ids)
            AND c.enabled
            AND c.reviewer_id IS NULL
            AND c.kind = ANY(CAST(:kinds AS text[]))
            AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.channel_id = c.id
            )
            AND NOT EXISTS (
                SELECT 1 FROM digest_items i WHERE i.event_id = e.id AND i.channel_id = c.id
            )
        )
        OR EXISTS (
          SELECT 1 FROM channels c
          WHERE e.channel_ids IS NULL
            AND c.enabled
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
    # Pending, it holds its channel by being its head (when it is the oldest): the channel
    # resumes once it is delivered, or is held again should it die of an outage again.
    delivery.holds_channel = False
    delivery.leased_until = None
    await session.flush()
    await add_job(session, DeliverMessage(delivery_id=delivery.id))
    return delivery
