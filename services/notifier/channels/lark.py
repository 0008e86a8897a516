"""Lark/Feishu custom bots: the interactive card, signed in its body.

Each attempt adds ``timestamp`` (Unix seconds) and ``sign`` to the stored card: ``sign`` is
the base64 of HMAC-SHA256 keyed by ``"<timestamp>\\n<secret>"`` over an empty message (Lark's
documented scheme; the bot refuses a timestamp more than an hour off). The bot answers HTTP
200 whatever happened; its JSON ``code`` says what: 0 delivered, 19021 a bad signature
(permanent: dead at once), 11232 throttled (retried), any other non-zero code a refusal of
this message or of this bot's configuration (permanent, like another 4xx).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from typing import Any, ClassVar

import orjson

from services.notifier.channels.base import (
    HttpChannelAdapter,
    OutgoingMessage,
    RenderedMessage,
)
from services.notifier.templates.lark import LARK_CONTENT_TYPE, render_lark
from services.notifier.templates.parts import MessageParts
from shared.deliveries.lifecycle import SendResult

LARK_OK = 0
LARK_BAD_SIGNATURE = 19021
LARK_THROTTLED = 11232
# Lark asks senders that are throttled to slow down; no Retry-After comes with the answer.
THROTTLED_RETRY_SECONDS = 1.0


def lark_sign(secret: str, timestamp: int) -> str:
    """Lark's ``sign`` for ``timestamp``: base64(HMAC-SHA256(key="<timestamp>\\n<secret>",
    msg=b""))."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class LarkAdapter(HttpChannelAdapter):
    """The ``lark`` channel kind."""

    kind: ClassVar[str] = "lark"

    @classmethod
    def render_parts(cls, parts: MessageParts) -> RenderedMessage:
        return RenderedMessage(body=render_lark(parts), content_type=LARK_CONTENT_TYPE)

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the card with a fresh ``timestamp`` and ``sign``; read the answer's code."""
        secret = message.credentials.secret
        if secret is None:
            raise ValueError("a lark channel needs its bot's signing secret")
        timestamp = int(time.time())
        card: dict[str, Any] = orjson.loads(message.body)
        signed = {"timestamp": str(timestamp), "sign": lark_sign(secret, timestamp), **card}
        answer = await self.post(
            message.target,
            body=orjson.dumps(signed),
            headers={"Content-Type": message.content_type},
        )
        if isinstance(answer, SendResult):
            return answer
        result = self.result_of(answer)
        if not result.succeeded:
            return result
        return _read_code(result, answer.body)


def _read_code(result: SendResult, body: bytes) -> SendResult:
    """A 2xx answer judged by its JSON ``code`` (``StatusCode`` in older bots)."""
    try:
        verdict = orjson.loads(body)
    except orjson.JSONDecodeError:
        verdict = None
    if not isinstance(verdict, dict):
        return dataclasses.replace(
            result, refused="retryable", error="the bot's answer is not the JSON it documents"
        )
    code = verdict.get("code", verdict.get("StatusCode"))
    if code == LARK_OK:
        return result
    text = verdict.get("msg") or verdict.get("StatusMessage") or ""
    error = f"Lark code {code}: {text}".strip().rstrip(":")[:500]
    if code == LARK_THROTTLED:
        return dataclasses.replace(
            result, refused="retryable", error=error, retry_after_seconds=THROTTLED_RETRY_SECONDS
        )
    return dataclasses.replace(result, refused="permanent", error=error)
