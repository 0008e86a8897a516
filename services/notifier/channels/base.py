"""The one interface every channel adapter implements, and what a send attempt returns.

An adapter owns its channel kind end to end: ``render`` turns an event into the bytes the
target receives (pure, from ``services.notifier.templates``; done once, at fan-out, and
stored with the delivery), ``send`` delivers them. Adding a kind is a subclass of
``HttpChannelAdapter`` in this package, registered in ``ADAPTER_CLASSES``, and its
templates; fan-out and delivery do not change.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar, Protocol

import httpx

from shared.deliveries.lifecycle import SendResult
from shared.models import Event

# A server asking us to wait longer than this is waited for this long only (a typo or a
# hostile value must not park a delivery for years, nor overflow a datetime).
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """What a channel's target receives for one event: stored, then sent as is."""

    body: bytes
    content_type: str


class ChannelAdapter(Protocol):
    """Sends one rendered message to one channel target. Never raises for a failed send:
    timeouts, connection errors and error statuses come back as a ``SendResult``."""

    kind: ClassVar[str]

    async def send(
        self,
        *,
        target: str,
        secret: str | None,
        body: bytes,
        content_type: str,
        event_id: uuid.UUID,
        attempt: int,
    ) -> SendResult: ...


class HttpChannelAdapter(ABC):
    """An adapter sending over the notifier's shared HTTP client: renders and sends."""

    kind: ClassVar[str]

    def __init__(self, http: httpx.AsyncClient, *, timeout_seconds: float) -> None:
        self._http = http
        self._timeout = timeout_seconds

    @classmethod
    @abstractmethod
    def render(cls, event: Event, *, language: str) -> RenderedMessage:
        """The message for ``event`` in ``language``. No I/O."""

    @abstractmethod
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
        """Deliver a rendered message (see ``ChannelAdapter.send``)."""


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
