"""Signed generic webhooks: ``POST`` the rendered JSON body to the channel's URL.

Signed like incoming webhooks: ``X-Plumbline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
"<t>.<body>">`` keyed by the channel secret, computed at each attempt (the body never
changes; the timestamp does). A channel with ``standard_webhooks`` also carries the
Standard Webhooks headers (https://www.standardwebhooks.com): ``webhook-id`` (the delivery
id, the same on every attempt), ``webhook-timestamp`` and ``webhook-signature: v1,<base64
HMAC-SHA256 of "<id>.<timestamp>.<body>">``, so receivers can verify with that standard's
libraries. A ``whsec_<base64>`` secret (the form generated ones have) is the standard's own
and is keyed by its decoded bytes, as its libraries do; any other by its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import ClassVar

from services.notifier.channels.base import (
    HttpChannelAdapter,
    OutgoingMessage,
    RenderedMessage,
)
from services.notifier.templates.parts import MessageLink
from services.notifier.templates.webhook import WEBHOOK_CONTENT_TYPE, render_webhook_body
from shared.core.signing import SIGNATURE_HEADER, sign_payload
from shared.deliveries.lifecycle import SendResult
from shared.models import Event

EVENT_ID_HEADER = "X-Plumbline-Event-Id"
ATTEMPT_HEADER = "X-Plumbline-Delivery-Attempt"
STANDARD_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


class WebhookAdapter(HttpChannelAdapter):
    """The ``webhook`` channel kind: a signed JSON ``POST``."""

    kind: ClassVar[str] = "webhook"

    @classmethod
    def render(
        cls,
        event: Event,
        *,
        language: str,
        public_url: str | None,
        time_zone: str = "UTC",
        personal_link: MessageLink | None = None,
    ) -> RenderedMessage:
        """The event envelope ``{"id", "type", "occurred_at", "data"}``, the same in every
        language and time zone (receivers are machines)."""
        return RenderedMessage(body=render_webhook_body(event), content_type=WEBHOOK_CONTENT_TYPE)

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the body signed with the channel's secret (and the standard's headers)."""
        secret = message.credentials.secret
        if secret is None:
            raise ValueError("a webhook channel needs a signing secret")
        timestamp = int(time.time())
        headers = {
            "Content-Type": message.content_type,
            SIGNATURE_HEADER: sign_payload(secret, message.body, timestamp),
            EVENT_ID_HEADER: str(message.event_id),
            ATTEMPT_HEADER: str(message.attempt),
        }
        if message.credentials.standard_webhooks:
            headers |= standard_webhook_headers(
                secret, message_id=str(message.delivery_id), timestamp=timestamp, body=message.body
            )
        answer = await self.post(message.target, body=message.body, headers=headers)
        if isinstance(answer, SendResult):
            return answer
        return self.result_of(answer)


def standard_webhook_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` under the Standard Webhooks rules: the decoded bytes of a
    ``whsec_<base64>`` secret, the UTF-8 bytes of any other."""
    if secret.startswith(STANDARD_SECRET_PREFIX):
        # Decoded exactly as the standard's reference library does (padding added, other
        # characters skipped), so a receiver handing it the secret string gets this key.
        try:
            key = base64.b64decode(secret[len(STANDARD_SECRET_PREFIX) :] + "==")
        except (binascii.Error, ValueError):
            key = b""
        if key:
            return key
    return secret.encode()


def standard_webhook_headers(
    secret: str, *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_webhook_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
    }
