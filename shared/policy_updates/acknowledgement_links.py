"""Signed acknowledgement links: a reviewer acknowledges a policy update from an e-mail, no key.

A token names one policy update, one reviewer and an expiry, and carries an HMAC-SHA256 of
the three under a key derived from the encryption key for this purpose only; it holds no
secret. It acknowledges that update for that reviewer until it expires, and does nothing
else: it is not an API key and cannot be turned into one.

Token bytes: ``"<update id>\\n<expiry, unix seconds>\\n<reviewer id>"`` in UTF-8 followed by
the 32-byte MAC, the whole in URL-safe base64 without padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from shared.core.encryption import derived_key
from shared.core.errors import Forbidden
from shared.core.settings import Settings

# The purpose label of the derived key: a MAC made for another purpose never verifies here.
ACKNOWLEDGEMENT_KEY_PURPOSE = "policy-update-acknowledgement"
_MAC_LENGTH = hashlib.sha256().digest_size
# Longer tokens are refused before any decoding work (a reviewer id is at most 128 chars).
_MAX_TOKEN_LENGTH = 1024


def _mac(settings: Settings, message: bytes) -> bytes:
    key = derived_key(settings, purpose=ACKNOWLEDGEMENT_KEY_PURPOSE)
    return hmac.new(key, message, hashlib.sha256).digest()


def _message(policy_update_id: uuid.UUID, reviewer_id: str, expires_at: int) -> bytes:
    # The reviewer id goes last, so it may hold any character (the split stops before it).
    return f"{policy_update_id}\n{expires_at}\n{reviewer_id}".encode()


def acknowledgement_token(
    settings: Settings, *, policy_update_id: uuid.UUID, reviewer_id: str, expires_at: datetime
) -> str:
    """A token acknowledging ``policy_update_id`` for ``reviewer_id`` until ``expires_at``."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must carry a time zone")
    message = _message(policy_update_id, reviewer_id, int(expires_at.timestamp()))
    raw = message + _mac(settings, message)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def acknowledgement_url(
    settings: Settings, *, policy_update_id: uuid.UUID, reviewer_id: str, now: datetime
) -> str:
    """The link a message gives ``reviewer_id``: it works for ``acknowledgement_link_ttl_hours``.

    ``<public_url>/v1/policy-updates/<id>/acknowledge?token=<token>``; opening it shows a
    confirm page, and only the confirmation (a POST) acknowledges.
    """
    expires_at = now + timedelta(hours=settings.acknowledgement_link_ttl_hours)
    token = acknowledgement_token(
        settings,
        policy_update_id=policy_update_id,
        reviewer_id=reviewer_id,
        expires_at=expires_at,
    )
    base = settings.public_url.rstrip("/")
    return f"{base}/v1/policy-updates/{policy_update_id}/acknowledge?token={quote(token, safe='')}"


def verify_acknowledgement_token(
    settings: Settings, *, policy_update_id: uuid.UUID, token: str, now: datetime
) -> str:
    """The reviewer id a valid token for ``policy_update_id`` names.

    Raises ``Forbidden`` (403) for a malformed or forged token, a token made for another
    update, and an expired one. The MAC is checked (in constant time) before anything the
    token says is believed.
    """
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise Forbidden("the acknowledgement link is not valid")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise Forbidden("the acknowledgement link is not valid") from None
    if len(raw) <= _MAC_LENGTH:
        raise Forbidden("the acknowledgement link is not valid")
    message, mac = raw[:-_MAC_LENGTH], raw[-_MAC_LENGTH:]
    if not hmac.compare_digest(mac, _mac(settings, message)):
        raise Forbidden("the acknowledgement link is not valid")
    try:
        update_part, expiry_part, reviewer_id = message.decode().split("\n", 2)
        token_update_id = uuid.UUID(update_part)
        expires_at = datetime.fromtimestamp(int(expiry_part), UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        # Signed by us yet unreadable: only a change of format could do this.
        raise Forbidden("the acknowledgement link is not valid") from None
    if token_update_id != policy_update_id:
        raise Forbidden("the acknowledgement link is for another policy update")
    if now >= expires_at:
        raise Forbidden("the acknowledgement link has expired")
    return reviewer_id
