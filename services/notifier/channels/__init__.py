"""Channel adapters: one per channel kind, one interface (``ChannelAdapter``).

Only ``webhook`` has an adapter so far. Channels of other kinds are accepted by the API but
get no deliveries until their adapter (and renderer) exists; see ``SUPPORTED_KINDS``.
"""

from __future__ import annotations

import httpx

from services.notifier.channels.base import ChannelAdapter, SendResult, parse_retry_after
from services.notifier.channels.webhook import WebhookAdapter

SUPPORTED_KINDS = frozenset({WebhookAdapter.kind})


def build_adapters(http: httpx.AsyncClient, *, timeout_seconds: float) -> dict[str, ChannelAdapter]:
    """Every adapter, by channel kind, sharing one HTTP client (one connection pool)."""
    return {WebhookAdapter.kind: WebhookAdapter(http, timeout_seconds=timeout_seconds)}


__all__ = [
    "SUPPORTED_KINDS",
    "ChannelAdapter",
    "SendResult",
    "WebhookAdapter",
    "build_adapters",
    "parse_retry_after",
]
