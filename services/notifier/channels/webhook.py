"""Signed generic webhooks: ``POST`` the rendered JSON body to the channel's URL.

Signed like incoming webhooks: ``X-Plumbline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
"<t>.<body>">`` keyed by the channel secret, computed at each attempt (the body never
changes; the timestamp does). Redirects are not followed: a redirect would resend the
signed body to a host nobody configured, so a 3xx is reported as a failure.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import ClassVar

import httpx

from services.notifier.channels.base import HttpChannelAdapter, RenderedMessage, parse_retry_after
from services.notifier.templates.webhook import WEBHOOK_CONTENT_TYPE, render_webhook_body
from shared.core.signing import SIGNATURE_HEADER, sign_payload
from shared.deliveries.lifecycle import SendResult
from shared.models import Event

EVENT_ID_HEADER = "X-Plumbline-Event-Id"
ATTEMPT_HEADER = "X-Plumbline-Delivery-Attempt"
USER_AGENT = "Plumbline-Webhooks/1"
# Enough of an error response to tell people what the receiver said, no more.
ERROR_SNIPPET_BYTES = 256


class WebhookAdapter(HttpChannelAdapter):
    """The ``webhook`` channel kind: a signed JSON ``POST``."""

    kind: ClassVar[str] = "webhook"

    @classmethod
    def render(cls, event: Event, *, language: str) -> RenderedMessage:
        """The event envelope ``{"id", "type", "occurred_at", "data"}``, the same in every
        language (receivers are machines)."""
        return RenderedMessage(body=render_webhook_body(event), content_type=WEBHOOK_CONTENT_TYPE)

    async def send(
        self,
        *,
        target: str,
        secret: str | None,
        body: bytes,
        content_type: str,
        event_id: uuid.UUID,
        attempt: int,
    ) -> SendResult:
        """POST ``body`` signed with ``secret``; at most ``timeout_seconds`` all told."""
        if secret is None:
            raise ValueError("a webhook channel needs a signing secret")
        headers = {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign_payload(secret, body, int(time.time())),
            EVENT_ID_HEADER: str(event_id),
            ATTEMPT_HEADER: str(attempt),
        }
        started = time.perf_counter()
        try:
            # httpx's timeout applies per phase (connect, write, each read); this bounds the
            # whole exchange, so a slow-dripping receiver cannot hold the worker.
            async with asyncio.timeout(self._timeout):
                async with self._http.stream(
                    "POST", target, content=body, headers=headers, follow_redirects=False
                ) as response:
                    snippet = b"" if response.is_success else await _read_some(response)
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(
                status_code=None,
                error=f"no response within {self._timeout:g} s",
                duration_ms=_elapsed_ms(started),
            )
        except httpx.HTTPError as exc:
            return SendResult(
                status_code=None,
                error=f"{type(exc).__name__}: {exc}"[:500],
                duration_ms=_elapsed_ms(started),
            )
        duration_ms = _elapsed_ms(started)
        if response.is_success:
            return SendResult(status_code=response.status_code, error=None, duration_ms=duration_ms)
        return SendResult(
            status_code=response.status_code,
            error=_describe_failure(response, snippet),
            duration_ms=duration_ms,
            retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
        )


async def _read_some(response: httpx.Response) -> bytes:
    """The start of an error response's body; what we have when reading it fails."""
    collected = b""
    try:
        async for chunk in response.aiter_bytes():
            collected += chunk
            if len(collected) >= ERROR_SNIPPET_BYTES:
                break
    except httpx.HTTPError:
        pass
    return collected[:ERROR_SNIPPET_BYTES]


def _describe_failure(response: httpx.Response, snippet: bytes) -> str:
    if response.is_redirect:
        return f"HTTP {response.status_code}: redirects are not followed"
    text = snippet.decode("utf-8", errors="replace").strip()
    return f"HTTP {response.status_code}: {text}" if text else f"HTTP {response.status_code}"


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
