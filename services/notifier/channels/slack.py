"""Slack incoming webhooks: ``POST`` the Block Kit body to the webhook URL.

The URL is the credential (no signature). Slack answers 200 ``ok``; a 429 carries
``Retry-After``, which the lifecycle honours; 4xx answers such as ``invalid_payload`` or
``no_service`` are permanent.
"""

from __future__ import annotations

from typing import ClassVar

from services.notifier.channels.base import HttpChannelAdapter, OutgoingMessage, RenderedMessage
from services.notifier.templates.parts import MessageParts
from services.notifier.templates.slack import SLACK_CONTENT_TYPE, render_slack
from shared.deliveries.lifecycle import SendResult


class SlackAdapter(HttpChannelAdapter):
    """The ``slack`` channel kind."""

    kind: ClassVar[str] = "slack"

    @classmethod
    def render_parts(cls, parts: MessageParts) -> RenderedMessage:
        return RenderedMessage(body=render_slack(parts), content_type=SLACK_CONTENT_TYPE)

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the stored body as is."""
        answer = await self.post(
            message.target, body=message.body, headers={"Content-Type": message.content_type}
        )
        if isinstance(answer, SendResult):
            return answer
        return self.result_of(answer)
