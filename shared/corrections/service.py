"""A source's correction target: the webhook channel through which the source platform
receives ``decision.corrected`` for its own decisions (and no other source's).

The target is an ordinary ``webhook`` channel bound to the source (``source_id``), so it is
delivered, retried, dead-lettered and re-driven like every other channel; the notifier's
fan-out gives a source-bound channel only that source's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.channels.service import channel_read, generate_secret, url_target_hint
from shared.core.auth import Principal
from shared.core.encryption import SecretBox
from shared.core.errors import Conflict, NotFound, UnprocessableEntity
from shared.events import EventType
from shared.models import Channel, Source
from shared.schemas.disagreements import CorrectionTargetRead, CorrectionTargetSet

CORRECTION_EVENTS = (EventType.DECISION_CORRECTED.value,)
# Corrections are read by machines; the language only matters to chat renderers.
CORRECTION_LANGUAGE = "en"


def correction_channel_name(source_name: str) -> str:
    """The name of a source's corrections channel."""
    return f"source-{source_name}-corrections"


def correction_target_read(channel: Channel) -> CorrectionTargetRead:
    """The API view of a correction target (target as a hint, secret as ``has_secret``)."""
    assert channel.source_id is not None
    return CorrectionTargetRead(**channel_read(channel).model_dump(), source_id=channel.source_id)


def _state(channel: Channel) -> dict[str, Any]:
    return correction_target_read(channel).model_dump(mode="json")


async def _source(session: AsyncSession, source_id: uuid.UUID) -> Source:
    source = await session.get(Source, source_id)
    if source is None:
        raise NotFound("source not found")
    return source


async def _channel_of(session: AsyncSession, source: Source, *, lock: bool) -> Channel | None:
    query = select(Channel).where(
        Channel.source_id == source.id, Channel.name == correction_channel_name(source.name)
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def get_correction_target(session: AsyncSession, *, source_id: uuid.UUID) -> Channel:
    """The source's corrections channel; 404 when the source or its target does not exist."""
    channel = await _channel_of(session, await _source(session, source_id), lock=False)
    if channel is None:
        raise NotFound("this source has no correction target")
    return channel


async def set_correction_target(
    session: AsyncSession,
    *,
    source_id: uuid.UUID,
    data: CorrectionTargetSet,
    box: SecretBox,
    insecure_hosts: Collection[str],
    actor: Principal,
) -> tuple[Channel, str | None, bool]:
    """Create or update the source's corrections channel.

    Returns the channel, the secret when it was generated here (creation without one), and
    whether the channel was created. An update without a secret keeps the current one: the
    platform already verifies with it.
    """
    source = await _source(session, source_id)
    try:
        hint = url_target_hint(data.url, insecure_hosts=insecure_hosts)
    except ValueError as exc:
        raise UnprocessableEntity(f"url {exc}", errors=[{"loc": ["url"], "msg": str(exc)}]) from exc
    supplied = data.secret.get_secret_value() if data.secret is not None else None
    channel = await _channel_of(session, source, lock=True)
    if channel is not None:
        before = _state(channel)
        channel.target_encrypted = box.encrypt(data.url)
        channel.target_hint = hint
        if supplied is not None:
            channel.secret_encrypted = box.encrypt(supplied)
        channel.enabled = True
        await session.flush()
        await record_change(
            session,
            actor=actor,
            action="source.correction_target.updated",
            entity_type="channel",
            entity_id=channel.id,
            before=before,
            after={**_state(channel), "secret_changed": supplied is not None},
        )
        return channel, None, False
    secret = supplied if supplied is not None else generate_secret()
    channel = Channel(
        id=uuid.uuid4(),
        name=correction_channel_name(source.name),
        kind="webhook",
        target_encrypted=box.encrypt(data.url),
        target_hint=hint,
        secret_encrypted=box.encrypt(secret),
        language=CORRECTION_LANGUAGE,
        events=list(CORRECTION_EVENTS),
        markets=None,
        enabled=True,
        source_id=source.id,
    )
    session.add(channel)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"a channel named '{channel.name}' exists already and is not this source's"
        ) from exc
    await record_change(
        session,
        actor=actor,
        action="source.correction_target.created",
        entity_type="channel",
        entity_id=channel.id,
        after=_state(channel),
    )
    return channel, (secret if supplied is None else None), True
