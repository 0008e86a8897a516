"""The Microsoft Teams Workflows body: a message envelope around an Adaptive Card 1.4.

Title, text, a fact set of the fields, a context line, and an ``Action.OpenUrl`` to the
object. Workflows refuse posts over about 28 KB and Teams cards over 20 KB: the body is kept
under ``MAX_BYTES`` by cutting the text (with a link to the full object), never refused; a
digest's events are a list of links after its text, as many as fit, then "and K more".
"""

from __future__ import annotations

from typing import Any

from services.notifier.templates.limits import fit_json, markdown_text, shorten
from services.notifier.templates.parts import MessageParts

TEAMS_CONTENT_TYPE = "application/json"
ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
MAX_BYTES = 20_000
MAX_FACT_CHARS = 1000


def render_teams(parts: MessageParts) -> bytes:
    """The JSON body for ``parts``, at most ``MAX_BYTES``. No I/O."""
    return fit_json(lambda limit: teams_payload(parts, text_limit=limit), max_bytes=MAX_BYTES)


def teams_payload(parts: MessageParts, *, text_limit: int | None = None) -> dict[str, Any]:
    """The message envelope with its card; the text cut to ``text_limit`` characters."""
    text = markdown_text(parts, text_limit)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": parts.title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "TextBlock", "text": text, "wrap": True},
    ]
    if parts.fields:
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": field.label, "value": shorten(field.value, MAX_FACT_CHARS)}
                    for field in parts.fields
                ],
            }
        )
    if parts.context:
        body.append(
            {
                "type": "TextBlock",
                "text": parts.context,
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            }
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    actions = [
        {"type": "Action.OpenUrl", "title": link.label, "url": link.url}
        for link in (parts.link, parts.personal_link)
        if link is not None
    ]
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
        ],
    }
