"""Domain events, notification channels and the deliveries made to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id

CHANNEL_KINDS = ("slack", "teams", "lark", "webhook", "email")
DELIVERY_STATUSES = ("pending", "delivered", "dead")
DIGEST_MODES = ("off", "hourly", "daily")


class Event(Base):
    """Something that happened that people may need to hear about."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Channels may subscribe to some markets only; null means not market-specific.
    market: Mapped[str | None] = mapped_column(String(2))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Set for events meant for one source's own channel (a correction of its decision).
    source_id: Mapped[uuid.UUID | None]
    # Channels may subscribe to some queues only; null means not queue-specific.
    queue: Mapped[str | None] = mapped_column(String(128))
    # Reviewers who also get the message personally, by e-mail to the address of their
    # profile (a policy update's pending readers, a question's asker).
    recipients: Mapped[list[str] | None] = mapped_column(ARRAY(String(128)))
    # Set for events addressed to named channels (a report schedule's): exactly these get
    # it, whatever they subscribe to; null: routed by subscription.
    channel_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid()))


class Channel(CreatedAtMixin, Base):
    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('slack', 'teams', 'lark', 'webhook', 'email')",
            name="kind",
        ),
        CheckConstraint("digest IN ('off', 'hourly', 'daily')", name="digest"),
        CheckConstraint("digest_hour >= 0 AND digest_hour < 24", name="digest_hour"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Targets hold tokens (Slack and Teams URLs are bearer secrets): encrypted, shown redacted.
    target_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    target_hint: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    markets: Mapped[list[str] | None] = mapped_column(ARRAY(String(2)))
    enabled: Mapped[bool] = mapped_column(default=True, server_default="true")
    # A source's own channel (corrections back to the platform) gets only that source's events.
    source_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # Only events of these queues (events about no queue are always sent); null: all.
    queues: Mapped[list[str] | None] = mapped_column(ARRAY(String(128)))
    # Low-priority events collected into one message per hour or day (at digest_hour), in
    # the channel's time zone.
    digest: Mapped[str] = mapped_column(String(8), default="off", server_default="off")
    digest_hour: Mapped[int] = mapped_column(default=9, server_default="9")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # A reviewer's personal e-mail channel (target = the address of their profile): not
    # listed with the team channels and never routed by subscription, only by an event's
    # recipients.
    reviewer_id: Mapped[str | None] = mapped_column(String(128), unique=True)


class Delivery(CreatedAtMixin, Base):
    """One message for one channel. Its body is rendered once and never changes.

    ``created_at`` is when its event occurred (set by fan-out), so a channel's deliveries
    sort in production order by ``(created_at, event_id)``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_id"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # A channel's pending deliveries in the order they go out: its oldest is its head.
        Index(
            "ix_deliveries_channel_pending",
            "channel_id",
            "created_at",
            "event_id",
            postgresql_where=text("status = 'pending'"),
        ),
        # Dead deliveries holding their channel (its target was down): few, probed.
        Index(
            "ix_deliveries_holding",
            "channel_id",
            "dead_at",
            postgresql_where=text("status = 'dead' AND holds_channel"),
        ),
        # Deliveries being sent right now (at most one per channel).
        Index(
            "ix_deliveries_leased",
            "channel_id",
            postgresql_where=text("leased_until IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(64), default="application/json")
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
    # Dead after its last attempt failed the way an unreachable target fails (5xx, timeout,
    # 429): the channel's later deliveries wait behind it, and it is probed again
    # (shared.deliveries.lifecycle). False for a refused message, which only dies itself.
    holds_channel: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Set while an attempt is being sent (claimed, outcome not yet recorded): until then.
    leased_until: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    attempted_at: Mapped[datetime] = mapped_column(server_default=func.now())
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


class DigestItem(Base):
    """A low-priority event held for a digest channel until its next digest is sent."""

    __tablename__ = "digest_items"
    __table_args__ = (
        Index(
            "ix_digest_items_unsent",
            "channel_id",
            "event_id",
            postgresql_where=text("digest_event_id IS NULL"),
        ),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    collected_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The digest event (type "digest") whose delivery carried this item; null until sent.
    digest_event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE")
    )
