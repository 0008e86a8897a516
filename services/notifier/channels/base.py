"""The one interface every channel adapter implements, and what a send attempt needs.

An adapter owns its channel kind end to end: ``render`` turns an event into the bytes the
target receives (pure, from ``services.notifier.templates``; done once, at fan-out, and
stored with the delivery), ``send`` delivers them. Chat and e-mail kinds render through
``render_parts``: the event's ``MessageParts`` (title, text, fields, link) laid out by the
kind's template function. Adding a kind is a subclass of ``ChannelAdapterBase`` in this
package, registered in ``ADAPTER_CLASSES``, and its template; fan-out and delivery do not
change.

``HttpChannelAdapter.post`` is the one HTTP exchange of every HTTP kind: a bounded time in
all, no redirects followed (a redirect would resend a signed body to a host nobody
configured, so a 3xx is a failure), the start of the answer kept for people to read. It goes
straight to the notifier's one connection pool (an httpx transport), not through an httpx
client: a client's redirect, auth, cookie and header merging is none of what a delivery
needs (no cookie should pass from one channel's answer to another's request), and cost a
third of the CPU of every message sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar, Protocol

import httpx

from services.notifier.templates.parts import MessageLink, MessageParts, message_parts
from shared.channels.credentials import ChannelCredentials
from shared.core.settings import Settings
from shared.deliveries.lifecycle import SendResult
from shared.models import Event

# A server asking us to wait longer than this is waited for this long only (a typo or a
# hostile value must not park a delivery for years, nor overflow a datetime).
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
# Enough of an answer to tell people what the receiver said, no more.
EXCERPT_CHARS = 256
# What is read of an answer at most: enough for a token endpoint's JSON (Entra ID tokens
# run to a few kilobytes); a chat service's verdict is far shorter.
MAX_ANSWER_BYTES = 16_384
USER_AGENT = "Plumbline-Notifier/1"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """What a channel's target receives for one event: stored, then sent as is."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One attempt at one message: where it goes, with what, and which message it is."""

    delivery_id: uuid.UUID
    """Stable across attempts and redrives (an e-mail's Message-ID, a webhook-id)."""
    event_id: uuid.UUID
    attempt: int
    target: str
    credentials: ChannelCredentials
    body: bytes
    content_type: str


class ChannelAdapter(Protocol):
    """Sends one rendered message to one channel target. Never raises for a failed send:
    timeouts, connection errors and error answers come back as a ``SendResult``."""

    kind: ClassVar[str]

    async def send(self, message: OutgoingMessage) -> SendResult: ...


class ChannelAdapterBase(ABC):
    """An adapter: renders (class methods, no I/O) and sends (with the notifier's settings
    and its one HTTP transport, one connection pool for every kind)."""

    kind: ClassVar[str]

    def __init__(self, http: httpx.AsyncBaseTransport, *, settings: Settings) -> None:
        self._http = http
        self._settings = settings
        self._timeout = settings.delivery_timeout_seconds
        # httpx's per-phase timeouts (connect, write, each read, waiting for the pool).
        self._phase_timeouts = httpx.Timeout(self._timeout).as_dict()

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
        """The message for ``event`` in ``language``, linking below ``public_url``, its
        dates and times in ``time_zone`` (an IANA name), with ``personal_link`` as a second
        action when the message goes to one person. No I/O."""
        return cls.render_parts(
            message_parts(
                event,
                language=language,
                public_url=public_url,
                time_zone=time_zone,
                personal_link=personal_link,
            )
        )

    @classmethod
    def render_parts(cls, parts: MessageParts) -> RenderedMessage:
        """The message for ``parts``, laid out by this kind's template. No I/O."""
        raise NotImplementedError(f"channel kind '{cls.kind}' does not render message parts")

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver a rendered message (see ``ChannelAdapter.send``)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What an HTTP target answered: status, headers, and the start of the body."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    duration_ms: int
    is_redirect: bool = field(default=False)


class HttpChannelAdapter(ChannelAdapterBase):
    """An adapter that POSTs its message over HTTP."""

    async def post(
        self, url: str, *, body: bytes, headers: Mapping[str, str]
    ) -> HttpAnswer | SendResult:
        """POST ``body``: the answer, or the failed ``SendResult`` when none came back in
        time (at most ``timeout_seconds`` all told) or the connection failed."""
        started = time.perf_counter()
        request = httpx.Request(
            "POST",
            url,
            content=body,
            headers={"Accept": "*/*", "User-Agent": USER_AGENT, **headers},
            extensions={"timeout": self._phase_timeouts},
        )
        try:
            # httpx's timeout applies per phase (connect, write, each read); this bounds the
            # whole exchange, so a slow-dripping receiver cannot hold the worker. A transport
            # never follows a redirect.
            async with asyncio.timeout(self._timeout):
                response = await self._http.handle_async_request(request)
                try:
                    answer = await _read_some(response, MAX_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(
                status_code=None,
                error=f"no response within {self._timeout:g} s",
                duration_ms=elapsed_ms(started),
            )
        except httpx.HTTPError as exc:
            return SendResult(
                status_code=None,
                error=f"{type(exc).__name__}: {exc}"[:500],
                duration_ms=elapsed_ms(started),
            )
        return HttpAnswer(
            status_code=response.status_code,
            headers=response.headers,
            body=answer,
            duration_ms=elapsed_ms(started),
            is_redirect=response.is_redirect,
        )

    @staticmethod
    def result_of(answer: HttpAnswer) -> SendResult:
        """The plain HTTP reading of an answer: 2xx delivered, anything else failed (with
        ``Retry-After`` when the target sent one)."""
        excerpt = excerpt_of(answer.body)
        if 200 <= answer.status_code < 300:
            return SendResult(
                status_code=answer.status_code,
                error=None,
                duration_ms=answer.duration_ms,
                response_excerpt=excerpt,
            )
        if answer.is_redirect:
            error = f"HTTP {answer.status_code}: redirects are not followed"
        elif excerpt:
            error = f"HTTP {answer.status_code}: {excerpt}"
        else:
            error = f"HTTP {answer.status_code}"
        return SendResult(
            status_code=answer.status_code,
            error=error,
            duration_ms=answer.duration_ms,
            retry_after_seconds=parse_retry_after(answer.headers.get("retry-after")),
            response_excerpt=excerpt,
        )


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """The start of a response's body; what we have when reading it fails."""
    collected = b""
    try:
        async for chunk in response.aiter_bytes():
            collected += chunk
            if len(collected) >= limit:
                break
    except httpx.HTTPError:
        pass
    return collected[:limit]


def excerpt_of(body: bytes) -> str | None:
    """The start of an answer as text, for people; None when it is empty."""
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace").strip()
    return text[:EXCERPT_CHARS] or None


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return int((time.perf_counter() - started) * 1000)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date).

    None when the header is missing or unreadable; a date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
