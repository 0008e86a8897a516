"""Channel adapters: one per channel kind, each rendering and sending its messages.

Only ``webhook`` has an adapter so far; ``ADAPTER_CLASSES`` is the one list of the kinds
the notifier delivers (a kind is added there, with its adapter module and templates).
"""

from __future__ import annotations

import httpx

from services.notifier.channels.base import (
    ChannelAdapter,
    HttpChannelAdapter,
    RenderedMessage,
    parse_retry_after,
)
from services.notifier.channels.webhook import WebhookAdapter
from shared.deliveries.lifecycle import SendResult
from shared.models import Event

ADAPTER_CLASSES: tuple[type[HttpChannelAdapter], ...] = (WebhookAdapter,)
_BY_KIND = {adapter.kind: adapter for adapter in ADAPTER_CLASSES}
SUPPORTED_KINDS = frozenset(_BY_KIND)


def build_adapters(http: httpx.AsyncClient, *, timeout_seconds: float) -> dict[str, ChannelAdapter]:
    """Every adapter, by channel kind, sharing one HTTP client (one connection pool)."""
    return {
        kind: adapter(http, timeout_seconds=timeout_seconds) for kind, adapter in _BY_KIND.items()
    }


def render_message(kind: str, event: Event, *, language: str) -> RenderedMessage:
    """What a channel of ``kind`` receives for ``event`` in ``language``, rendered by its
    adapter. KeyError for a kind without an adapter."""
    return _BY_KIND[kind].render(event, language=language)


__all__ = [
    "ADAPTER_CLASSES",
    "SUPPORTED_KINDS",
    "ChannelAdapter",
    "HttpChannelAdapter",
    "RenderedMessage",
    "SendResult",
    "WebhookAdapter",
    "build_adapters",
    "parse_retry_after",
    "render_message",
]
