"""Message templates: pure functions from an event to the bytes or text a channel receives."""

from services.notifier.templates.messages import render_template, render_text
from services.notifier.templates.webhook import WEBHOOK_CONTENT_TYPE, render_webhook_body

__all__ = ["WEBHOOK_CONTENT_TYPE", "render_template", "render_text", "render_webhook_body"]
