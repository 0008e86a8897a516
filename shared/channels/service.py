"""Channels (where notifications go) and deliveries (each message sent to one of them).

Targets and secrets are encrypted at rest and never returned. A webhook channel created
without a secret gets a generated one, returned once by ``create_channel``; a Lark channel
needs its bot's signing secret; a Teams channel may carry OAuth client credentials (see
``shared.channels.credentials`` for how these are stored).
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Collection
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, and_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.channels.credentials import (
    STRUCTURED_PREFIX,
    ChannelCredentials,
    OAuthClientCredentials,
    encode_credentials,
)
from shared.core.auth import Principal
from shared.core.encryption import SecretBox
from shared.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    UnprocessableEntity,
)
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.core.queue import run_and_wait
from shared.jobs import SendTestMessage
from shared.models import Channel, Delivery, DeliveryAttempt, Event
from shared.reference import register_markets
from shared.schemas.channels import (
    ChannelCreate,
    ChannelRead,
    ChannelTestResult,
    DeliveryAttemptRead,
    DeliveryDetail,
    DeliveryQuery,
    DeliveryRead,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
URL_KINDS = frozenset({"webhook", "slack", "teams", "lark"})
# The kinds the notifier has an adapter for. A channel of another kind would be accepted and
# then never deliver, so creating one is refused until its adapter lands (a test holds this
# set equal to the notifier's adapters).
DELIVERABLE_KINDS = frozenset({"webhook", "slack", "teams", "lark", "email"})
# The kinds whose messages are signed with the channel's secret (required; generated for a
# webhook created without one).
SIGNED_KINDS = frozenset({"webhook", "lark"})
# Deliberately loose: the mail server is the judge; this only catches obvious mistakes.
_EMAIL = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+)$")


def generate_secret() -> str:
    """A new webhook signing secret (256 random bits), in the Standard Webhooks form
    ``whsec_<base64>`` so that receivers can hand it to that standard's libraries as is."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def url_target_hint(target: str, *, insecure_hosts: Collection[str]) -> str:
    """The hint shown for a URL target (``https://host/…``); ValueError when it is refused.

    Plain ``http://`` is allowed only to hosts in ``insecure_hosts`` (local development):
    everywhere else a message and its signature would cross the network readable.
    """
    if any(char.isspace() or ord(char) < 32 for char in target):
        raise ValueError("must not contain whitespace or control characters")
    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError("must be an https:// URL")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ValueError("is not a valid URL") from exc
    if not host:
        raise ValueError("must name a host")
    if scheme == "http" and host not in insecure_hosts and f"[{host}]" not in insecure_hosts:
        raise ValueError(
            f"must use https:// (plain http:// is allowed only to PLUMBLINE_INSECURE_TARGET_HOSTS,"
            f" which does not list '{host}')"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}/…"


def email_target_hint(target: str) -> str:
    """The hint shown for an email target (``…@domain``); ValueError when it is refused."""
    match = _EMAIL.match(target)
    if match is None:
        raise ValueError("must be an email address")
    return f"…@{match.group(1).lower()}"


def target_hint(kind: str, target: str, *, insecure_hosts: Collection[str]) -> str:
    """Check ``target`` for a channel of ``kind`` and return its redacted hint (422 if bad)."""
    try:
        if kind in URL_KINDS:
            return url_target_hint(target, insecure_hosts=insecure_hosts)
        return email_target_hint(target)
    except ValueError as exc:
        raise UnprocessableEntity(
            f"target {exc}", errors=[{"loc": ["target"], "msg": str(exc)}]
        ) from exc


def _refuse(loc: list[str | int], message: str) -> UnprocessableEntity:
    return UnprocessableEntity(
        f"{'.'.join(str(part) for part in loc)} {message}",
        errors=[{"loc": loc, "msg": message}],
    )


def channel_credentials(
    data: ChannelCreate, *, insecure_hosts: Collection[str]
) -> tuple[ChannelCredentials, str | None]:
    """The credentials a new channel stores, and its secret when generated here (422 for a
    setting that does not apply to the kind, or a missing one that does)."""
    supplied = data.secret.get_secret_value() if data.secret is not None else None
    if supplied is not None and supplied.startswith(STRUCTURED_PREFIX):
        raise _refuse(["secret"], "must not start with the reserved credentials prefix")
    if data.kind not in SIGNED_KINDS and supplied is not None:
        raise _refuse(["secret"], "applies to webhook and lark channels only")
    if data.kind != "webhook" and data.standard_webhooks:
        raise _refuse(["standard_webhooks"], "applies to webhook channels only")
    if data.kind != "teams" and data.oauth is not None:
        raise _refuse(["oauth"], "applies to teams channels only")
    if data.kind == "lark" and supplied is None:
        raise _refuse(["secret"], "is required: the Lark bot's signing secret")
    generated = None
    if data.kind == "webhook" and supplied is None:
        generated = supplied = generate_secret()
    oauth = None
    if data.oauth is not None:
        try:
            url_target_hint(data.oauth.token_url, insecure_hosts=insecure_hosts)
        except ValueError as exc:
            raise _refuse(["oauth", "token_url"], str(exc)) from exc
        oauth = OAuthClientCredentials(
            token_url=data.oauth.token_url.strip(),
            client_id=data.oauth.client_id,
            client_secret=data.oauth.client_secret.get_secret_value(),
            scope=data.oauth.scope,
        )
    credentials = ChannelCredentials(
        secret=supplied, standard_webhooks=data.standard_webhooks, oauth=oauth
    )
    return credentials, generated


async def create_channel(
    session: AsyncSession,
    *,
    data: ChannelCreate,
    box: SecretBox,
    insecure_hosts: Collection[str],
    actor: Principal | None = None,
) -> tuple[Channel, str | None]:
    """Create a channel; returns it with its secret when the secret was generated here. A
    market-scoped ``actor`` creates channels of its markets only (403 otherwise).

    Audit-logged as its API view: the target only as its hint, the secret only as
    ``has_secret``.
    """
    if data.kind not in DELIVERABLE_KINDS:
        raise UnprocessableEntity(
            f"channels of kind '{data.kind}' cannot deliver yet; kinds that deliver:"
            f" {', '.join(sorted(DELIVERABLE_KINDS))}",
            errors=[{"loc": ["kind"], "msg": "this channel kind cannot deliver yet"}],
        )
    if actor is not None and actor.markets is not None:
        outside = sorted(set(data.markets or ()) - set(actor.markets))
        if not data.markets or outside:
            raise Forbidden(
                "a market-scoped key creates channels for its own markets only: name them in"
                " markets"
                + (f" ({', '.join(outside)} lie outside this key's markets)" if outside else "")
            )
    hint = target_hint(data.kind, data.target, insecure_hosts=insecure_hosts)
    credentials, generated = channel_credentials(data, insecure_hosts=insecure_hosts)
    stored_credentials = encode_credentials(credentials)
    if data.markets:
        await register_markets(session, data.markets)
    channel = Channel(
        id=uuid.uuid4(),
        name=data.name,
        kind=data.kind,
        target_encrypted=box.encrypt(data.target),
        target_hint=hint,
        secret_encrypted=(
            box.encrypt(stored_credentials) if stored_credentials is not None else None
        ),
        language=data.language,
        events=[event.value for event in data.events],
        markets=sorted(set(data.markets)) if data.markets else None,
        queues=data.queues,
        digest=data.digest,
        digest_hour=data.digest_hour,
        time_zone=data.time_zone,
        enabled=True,
    )
    session.add(channel)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a channel named '{data.name}' exists already") from exc
    await record_change(
        session,
        actor=actor,
        action="channel.created",
        entity_type="channel",
        entity_id=channel.id,
        after=channel_read(channel).model_dump(mode="json"),
    )
    return channel, generated


def channel_read(channel: Channel) -> ChannelRead:
    """The API view of a channel: target as a hint, the secret only as ``has_secret``."""
    return ChannelRead(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        target_hint=channel.target_hint,
        language=channel.language,
        events=channel.events,
        markets=channel.markets,
        queues=channel.queues,
        digest=channel.digest,
        digest_hour=channel.digest_hour,
        time_zone=channel.time_zone,
        enabled=channel.enabled,
        has_secret=channel.secret_encrypted is not None,
        created_at=channel.created_at,
    )


def visible_channels(principal: Principal) -> ColumnElement[bool]:
    """The channels ``principal`` may see and change, as SQL: the team channels (never a
    reviewer's personal e-mail channel, which the notifier keeps in step with the profile);
    all of them for a key of every market, for a market-scoped key those subscribed to its
    markets only (a channel of no markets, a source's correction target included, hears
    every market, so it is not theirs)."""
    team = Channel.reviewer_id.is_(None)
    if principal.markets is None:
        return team
    return and_(
        team,
        Channel.markets.is_not(None),
        Channel.markets.contained_by(list(principal.markets)),
    )


async def get_channel(
    session: AsyncSession, *, channel_id: uuid.UUID, principal: Principal
) -> Channel:
    """The channel, or 404 (also for one ``visible_channels`` hides from the caller)."""
    channel = await session.scalar(
        select(Channel).where(Channel.id == channel_id, visible_channels(principal))
    )
    if channel is None:
        raise NotFound("channel not found")
    return channel


CHANNEL_ORDER = Keyset(Channel.name)
DELIVERY_ORDER = Keyset(Delivery.created_at, Delivery.id, descending=True)


async def list_channels(
    session: AsyncSession, *, principal: Principal, page: PageRequest
) -> KeysetPage[Channel]:
    """A page of the channels ``principal`` may see, by name."""
    query = select(Channel).where(visible_channels(principal))
    channels = list(await session.scalars(CHANNEL_ORDER.apply(query, page)))
    return CHANNEL_ORDER.page(channels, page)


async def delete_channel(session: AsyncSession, *, channel_id: uuid.UUID, actor: Principal) -> None:
    """Delete a channel; its deliveries and their attempts go with it (ON DELETE CASCADE)."""
    channel = await get_channel(session, channel_id=channel_id, principal=actor)
    before = channel_read(channel).model_dump(mode="json")
    await session.delete(channel)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="channel.deleted",
        entity_type="channel",
        entity_id=channel_id,
        before=before,
    )


def visible_deliveries(principal: Principal) -> ColumnElement[bool]:
    """The deliveries ``principal`` may see, as SQL: all for a key of every market; for a
    market-scoped key those of events about one of its markets (an event about no market,
    such as a source's, concerns every market, so it is not theirs to see)."""
    if principal.markets is None:
        return true()
    return Delivery.event_id.in_(select(Event.id).where(Event.market.in_(principal.markets)))


def delivery_read(delivery: Delivery) -> DeliveryRead:
    """The API view of a delivery (``next_attempt_at`` only while it is pending)."""
    return DeliveryRead(
        id=delivery.id,
        channel_id=delivery.channel_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=delivery.status,
        attempt_count=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        dead_at=delivery.dead_at,
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: DeliveryQuery,
) -> KeysetPage[Delivery]:
    """A page of deliveries, newest first."""
    query = select(Delivery).where(visible_deliveries(principal))
    if filters.status is not None:
        query = query.where(Delivery.status == filters.status)
    if filters.channel_id is not None:
        query = query.where(Delivery.channel_id == filters.channel_id)
    if filters.event_id is not None:
        query = query.where(Delivery.event_id == filters.event_id)
    deliveries = list(await session.scalars(DELIVERY_ORDER.apply(query, filters)))
    return DELIVERY_ORDER.page(deliveries, filters)


async def get_delivery(
    session: AsyncSession, *, principal: Principal, delivery_id: uuid.UUID
) -> DeliveryDetail:
    """A delivery with every attempt made, oldest first; 404 when the caller cannot see it."""
    delivery = await session.scalar(
        select(Delivery).where(Delivery.id == delivery_id, visible_deliveries(principal))
    )
    if delivery is None:
        raise NotFound("delivery not found")
    attempts = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.number)
    )
    return DeliveryDetail(
        **delivery_read(delivery).model_dump(),
        attempts=[DeliveryAttemptRead.model_validate(attempt) for attempt in attempts],
    )


async def send_channel_test(
    redis: Redis, *, channel_id: uuid.UUID, wait_seconds: float
) -> ChannelTestResult:
    """Have the notifier send ``channel_id``'s test message now; what the target answered.

    The notifier renders and sends it (only it holds the adapters) while the caller waits up
    to ``wait_seconds``; 503 when no notifier answered in time or Redis is unreachable. A
    test message is not a delivery: it is sent once, not retried, and not listed.
    """
    job = SendTestMessage(channel_id=channel_id)
    try:
        answer = await run_and_wait(
            redis, job, job_id=f"channel-test:{uuid.uuid4()}", wait_seconds=wait_seconds
        )
    except TimeoutError as exc:
        raise ServiceUnavailable(
            f"no notifier sent the test message within {wait_seconds:g} s; is one running?"
        ) from exc
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable("the notifier's queue is unreachable; try again") from exc
    if answer.get("error") == "channel not found":
        raise NotFound("channel not found")
    return ChannelTestResult.model_validate(answer)
