"""Reviewers' personal e-mail channels: where an event's ``recipients`` get their own copy.

A reviewer whose profile has an e-mail address gets one channel of kind ``email``, named
``reviewer:<id>``, subscribed to nothing (``events`` empty, so routing by subscription never
picks it), created the first time a message is meant for them and kept in step with the
profile (address and language) every time after. Its deliveries take the path of every
other delivery: retries, order per channel, dead letters, redrive, ``GET /v1/deliveries``.
The target is encrypted like any channel's; the API never lists these channels.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, String, any_, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.channels.languages import (
    DEFAULT_MESSAGE_LANGUAGE,
    MESSAGE_LANGUAGES,
    MessageLanguage,
)
from shared.channels.service import email_target_hint
from shared.core.encryption import SecretBox
from shared.models import Channel, Reviewer
from shared.schemas.channels import PERSONAL_CHANNEL_PREFIX

logger = logging.getLogger(__name__)

_NAME_LENGTH = 128
_INSERT_CHUNK = 1000


def personal_channel_name(reviewer_id: str) -> str:
    """``reviewer:<id>``; for an id too long for a channel name, a digest of it instead."""
    name = PERSONAL_CHANNEL_PREFIX + reviewer_id
    if len(name) <= _NAME_LENGTH:
        return name
    return PERSONAL_CHANNEL_PREFIX + "sha256:" + hashlib.sha256(reviewer_id.encode()).hexdigest()


def personal_language(reviewer: Reviewer) -> MessageLanguage:
    """The language of a reviewer's personal messages: their notification language, else
    the first of their languages we have templates in (``de-AT`` counts as ``de``), else
    English."""
    choices: list[str | None] = [reviewer.notification_language, *(reviewer.languages or ())]
    for choice in choices:
        if not choice:
            continue
        for candidate in (choice.lower(), choice.lower().split("-", 1)[0]):
            for language in MESSAGE_LANGUAGES:
                if candidate == language:
                    return language
    return DEFAULT_MESSAGE_LANGUAGE


async def personal_email_channels(
    session: AsyncSession, *, reviewer_ids: Collection[str], box: SecretBox
) -> dict[str, Channel]:
    """The personal e-mail channel of each of ``reviewer_ids`` whose profile has a usable
    e-mail address, by reviewer id; created when missing, updated when the profile's address
    or language changed since. Reviewers without an address (or unknown ids) are left out.

    Safe against a concurrent call for the same reviewer: the insert skips a row another
    transaction created (``ON CONFLICT``), and the row is then read back.
    """
    if not reviewer_ids:
        return {}
    reviewers = list(
        await session.scalars(
            select(Reviewer)
            .where(Reviewer.id == any_(_ids(reviewer_ids)), Reviewer.email.is_not(None))
            .order_by(Reviewer.id)
        )
    )
    wanted: dict[str, tuple[str, str, str]] = {}
    for reviewer in reviewers:
        address = (reviewer.email or "").strip()
        try:
            hint = email_target_hint(address)
        except ValueError:
            logger.warning(
                "reviewer's e-mail address is not usable; no personal message",
                extra={"reviewer_id": reviewer.id},
            )
            continue
        wanted[reviewer.id] = (address, hint, personal_language(reviewer))
    if not wanted:
        return {}
    existing = {
        channel.reviewer_id: channel
        for channel in await session.scalars(
            select(Channel).where(Channel.reviewer_id == any_(_ids(wanted)))
        )
    }
    missing = [reviewer_id for reviewer_id in wanted if reviewer_id not in existing]
    if missing:
        # Rows per INSERT: a dozen columns each stays far below PostgreSQL's 32,767 parameters.
        for start in range(0, len(missing), _INSERT_CHUNK):
            await session.execute(
                insert(Channel)
                .values(
                    [
                        _new_channel_row(reviewer_id, *wanted[reviewer_id], box=box)
                        for reviewer_id in missing[start : start + _INSERT_CHUNK]
                    ]
                )
                .on_conflict_do_nothing()
            )
        created = await session.scalars(
            select(Channel)
            .where(Channel.reviewer_id == any_(_ids(missing)))
            .execution_options(populate_existing=True)
        )
        existing.update({channel.reviewer_id: channel for channel in created})
    channels: dict[str, Channel] = {}
    for reviewer_id, (address, hint, language) in wanted.items():
        channel = existing.get(reviewer_id)
        if channel is None:
            # The name is taken by a channel of another reviewer (an id hashed alike): rare
            # enough to log and skip rather than fail every recipient of the event.
            logger.warning(
                "personal channel could not be created", extra={"reviewer_id": reviewer_id}
            )
            continue
        if _stored_address(box, channel) != address or channel.language != language:
            # Fernet ciphertexts differ each time: compare the plaintext, write when changed.
            channel.target_encrypted = box.encrypt(address)
            channel.target_hint = hint
            channel.language = language
        channels[reviewer_id] = channel
    await session.flush()
    return channels


def _ids(reviewer_ids: Collection[str]) -> ColumnElement[list[str]]:
    # One array parameter, however many recipients (IN would bind one parameter each).
    return literal(sorted(set(reviewer_ids)), ARRAY(String()))


def _new_channel_row(
    reviewer_id: str, address: str, hint: str, language: str, *, box: SecretBox
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "name": personal_channel_name(reviewer_id),
        "kind": "email",
        "target_encrypted": box.encrypt(address),
        "target_hint": hint,
        "secret_encrypted": None,
        "language": language,
        "events": [],
        "markets": None,
        "queues": None,
        "enabled": True,
        "reviewer_id": reviewer_id,
    }


def _stored_address(box: SecretBox, channel: Channel) -> str | None:
    try:
        return box.decrypt(channel.target_encrypted)
    except RuntimeError:
        # Encrypted under an earlier key: the profile's address replaces it.
        return None
