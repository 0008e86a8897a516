"""Channel adapters: one per channel kind, each rendering and sending its messages.

``ADAPTER_CLASSES`` is the one list of the kinds the notifier delivers (a kind is added
there, with its adapter module and its template).
"""

from __future__ import annotations

import httpx

from services.notifier.channels.base import (
    ChannelAdapter,
    ChannelAdapterBase,
    HttpChannelAdapter,
    OutgoingMessage,
    RenderedMessage,
    parse_retry_after,
)
from services.notifier.channels.email import EmailAdapter
from services.notifier.channels.lark import LarkAdapter
from services.notifier.channels.slack import SlackAdapter
from services.notifier.channels.teams import TeamsAdapter
from services.notifier.channels.webhook import WebhookAdapter
from services.notifier.templates.messages import phrases
from services.notifier.templates.parts import CHANNEL_TEST_EVENT, MessageLink, MessageParts
from shared.core.settings import Settings
from shared.deliveries.lifecycle import SendResult
from shared.models import Event

ADAPTER_CLASSES: tuple[type[ChannelAdapterBase], ...] = (
    WebhookAdapter,
    SlackAdapter,
    TeamsAdapter,
    LarkAdapter,
    EmailAdapter,
)
_BY_KIND = {adapter.kind: adapter for adapter in ADAPTER_CLASSES}
SUPPORTED_KINDS = frozenset(_BY_KIND)


def build_adapters(
    http: httpx.AsyncBaseTransport, *, settings: Settings
) -> dict[str, ChannelAdapter]:
    """Every adapter, by channel kind, sharing one HTTP transport (one connection pool)."""
    return {kind: adapter(http, settings=settings) for kind, adapter in _BY_KIND.items()}


def render_message(
    kind: str,
    event: Event,
    *,
    language: str,
    public_url: str | None = None,
    time_zone: str = "UTC",
    personal_link: MessageLink | None = None,
) -> RenderedMessage:
    """What a channel of ``kind`` receives for ``event`` in ``language``, rendered by its
    adapter: links below ``public_url``, dates and times in ``time_zone`` (the channel's),
    ``personal_link`` as a second action for a message to one person (the signed
    acknowledgement link of a policy update e-mail). A digest is an event of type
    ``shared.events.DIGEST_EVENT_TYPE``. KeyError for a kind without an adapter."""
    return _BY_KIND[kind].render(
        event,
        language=language,
        public_url=public_url,
        time_zone=time_zone,
        personal_link=personal_link,
    )


def acknowledgement_link(url: str, *, language: str) -> MessageLink:
    """The action of a personal policy-update message: ``url`` (the recipient's signed
    acknowledgement link) under the templates' label in ``language``."""
    return MessageLink(label=phrases(language).acknowledge, url=url)


def render_parts(kind: str, parts: MessageParts) -> RenderedMessage:
    """What a channel of ``kind`` receives for ``parts`` (the chat and e-mail kinds)."""
    return _BY_KIND[kind].render_parts(parts)


__all__ = [
    "ADAPTER_CLASSES",
    "CHANNEL_TEST_EVENT",
    "SUPPORTED_KINDS",
    "ChannelAdapter",
    "ChannelAdapterBase",
    "HttpChannelAdapter",
    "MessageLink",
    "OutgoingMessage",
    "RenderedMessage",
    "SendResult",
    "acknowledgement_link",
    "build_adapters",
    "parse_retry_after",
    "render_message",
    "render_parts",
]
