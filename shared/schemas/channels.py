"""Notification channels and the deliveries made to them.

A channel's target (a webhook URL, a chat URL that is itself a bearer token, an email
address) and its signing secret are stored encrypted and never returned: responses carry a
``target_hint`` (scheme and host only) and ``has_secret``.
"""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.channels.languages import MessageLanguage
from shared.events import EventType
from shared.schemas.common import PageQuery
from shared.schemas.fields import MarketCode, QueueName

ChannelKind = Literal["slack", "teams", "lark", "webhook", "email"]
ChannelLanguage = MessageLanguage
DeliveryStatus = Literal["pending", "delivered", "dead"]
DigestMode = Literal["off", "hourly", "daily"]

MIN_SECRET_LENGTH = 16
# The names of reviewers' personal e-mail channels ("reviewer:<id>"), kept apart from the
# names people give team channels.
PERSONAL_CHANNEL_PREFIX = "reviewer:"


@cache
def _time_zones() -> frozenset[str]:
    # The IANA names the zone database knows, minus the pseudo-zones that name no place.
    return frozenset(zoneinfo.available_timezones()) - {"Factory", "localtime", "posixrules"}


def check_time_zone(value: str) -> str:
    """``value`` when it names an IANA time zone (``Europe/Berlin``); ValueError otherwise."""
    if value not in _time_zones():
        raise ValueError("must be an IANA time zone name, such as Europe/Berlin or UTC")
    return value


class OAuthClientCredentialsCreate(BaseModel):
    """An OAuth 2.0 client-credentials grant (token URL, client id and secret, scope)."""

    model_config = ConfigDict(extra="forbid")

    token_url: str = Field(min_length=1, max_length=2048, description="An https:// URL.")
    client_id: str = Field(min_length=1, max_length=256)
    client_secret: SecretStr = Field(min_length=1, max_length=1024)
    scope: str | None = Field(None, min_length=1, max_length=1024)


class ChannelCreate(BaseModel):
    """A new channel: where to send, in which language, which events (and markets)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: ChannelKind
    target: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "Where messages go: an https:// URL (plain http:// only to hosts listed in "
            "PLUMBLINE_INSECURE_TARGET_HOSTS), or an email address for kind 'email'. "
            "Stored encrypted; never returned."
        ),
    )
    language: ChannelLanguage
    events: list[EventType] = Field(min_length=1, max_length=64)
    markets: list[MarketCode] | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="Only events of these markets (events about no market are always sent).",
    )
    queues: list[QueueName] | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="Only events of these queues (events about no queue are always sent).",
    )
    digest: DigestMode = Field(
        "off",
        description=(
            "'hourly' or 'daily': low-priority events are collected and sent as one message "
            "at each full hour, or once a day at digest_hour, in the channel's time zone; "
            "every other event is sent at once."
        ),
    )
    digest_hour: int = Field(
        9, ge=0, le=23, description="The local hour (0-23) a daily digest is sent at."
    )
    time_zone: str = Field(
        "UTC",
        min_length=1,
        max_length=64,
        description="The IANA time zone of the channel's dates and digest hours.",
    )
    secret: SecretStr | None = Field(
        None,
        min_length=MIN_SECRET_LENGTH,
        max_length=256,
        description=(
            "The HMAC key signing each message (kind 'webhook' only). When omitted, one is "
            "generated and returned once, in the creation response."
        ),
    )

    standard_webhooks: bool = Field(
        False,
        description=(
            "Kind 'webhook' only: also send the Standard Webhooks headers (webhook-id, "
            "webhook-timestamp, webhook-signature), keyed by the same secret."
        ),
    )
    oauth: OAuthClientCredentialsCreate | None = Field(
        None,
        description=(
            "Kind 'teams' only: a client-credentials grant whose bearer token is sent with "
            "each message (Workflows URLs that require Entra ID). Stored encrypted."
        ),
    )

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("must not be blank")
        if stripped.startswith(PERSONAL_CHANNEL_PREFIX):
            raise ValueError(
                f"must not start with '{PERSONAL_CHANNEL_PREFIX}' (reviewers' personal channels)"
            )
        return stripped

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return check_time_zone(value)

    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, value: list[str] | None) -> list[str] | None:
        return sorted(set(value)) if value is not None else None

    @field_validator("target")
    @classmethod
    def _strip_target(cls, value: str) -> str:
        return value.strip()

    @field_validator("events")
    @classmethod
    def _unique_events(cls, value: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(value))


class ChannelRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: ChannelKind
    target_hint: str = Field(description="The target's scheme and host only, e.g. https://host/…")
    language: ChannelLanguage
    events: list[str]
    markets: list[str] | None
    queues: list[str] | None
    digest: DigestMode
    digest_hour: int
    time_zone: str
    enabled: bool
    has_secret: bool
    created_at: datetime


class ChannelCreated(ChannelRead):
    secret: str | None = Field(
        description=(
            "The generated signing secret of a webhook channel created without one. Shown "
            "only in this response; null when the secret was supplied or does not apply."
        )
    )


class DeliveryRead(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempt_count: int = Field(description="Attempts made since creation or the last redrive.")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending).")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class DeliveryAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    attempted_at: datetime
    status_code: int | None = Field(description="The HTTP status; null when none came back.")
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryRead):
    attempts: list[DeliveryAttemptRead] = Field(description="Every attempt, oldest first.")


class DeliveryQuery(PageQuery):
    status: DeliveryStatus | None = None
    channel_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None


class ChannelTestResult(BaseModel):
    """What a channel's target answered to a test message sent just now."""

    delivered: bool = Field(description="True when the target accepted the message.")
    status_code: int | None = Field(description="The target's HTTP status (or SMTP reply code).")
    response_excerpt: str | None = Field(description="The start of the target's answer.")
    error: str | None = Field(description="What went wrong; null when delivered.")
    duration_ms: int
