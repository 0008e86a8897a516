"""The Lark/Feishu custom-bot body: ``{"msg_type": "interactive", "card": {...}}``.

A header, the text, the fields (short, two per row), a button to the object and a note.
``timestamp`` and ``sign`` are not part of the stored body: they change with each attempt,
so the adapter adds them when it sends. Custom bots take at most 20 KB a request: the text
is cut (with a link to the full object) to stay under ``MAX_BYTES``, never refused; a
digest's events are a list of links after its text, as many as fit, then "and K more".
"""

from __future__ import annotations

from typing import Any

from services.notifier.templates.limits import fit_json, markdown_text, shorten
from services.notifier.templates.parts import MessageParts

LARK_CONTENT_TYPE = "application/json"
# Room left for "timestamp" and "sign", added at send time.
MAX_BYTES = 19_800
MAX_FIELD_CHARS = 1000


def render_lark(parts: MessageParts) -> bytes:
    """The JSON body for ``parts`` (without ``timestamp`` and ``sign``). No I/O."""
    return fit_json(lambda limit: lark_payload(parts, text_limit=limit), max_bytes=MAX_BYTES)


def lark_payload(parts: MessageParts, *, text_limit: int | None = None) -> dict[str, Any]:
    """The interactive card message; the text cut to ``text_limit`` characters."""
    text = markdown_text(parts, text_limit)
    elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "lark_md", "content": text}}]
    if parts.fields:
        elements.append(
            {
                "tag": "div",
                "fields": [
                    {
                        "is_short": True,
                        "text": {
                            "tag": "lark_md",
                            "content": shorten(
                                f"**{field.label}**\n{field.value}", MAX_FIELD_CHARS
                            ),
                        },
                    }
                    for field in parts.fields
                ],
            }
        )
    buttons = [
        {
            "tag": "button",
            "text": {"tag": "plain_text", "content": link.label},
            "url": link.url,
            "type": style,
        }
        for link, style in ((parts.link, "primary"), (parts.personal_link, "default"))
        if link is not None
    ]
    if buttons:
        elements.append({"tag": "action", "actions": buttons})
    if parts.context:
        elements.append(
            {"tag": "note", "elements": [{"tag": "plain_text", "content": parts.context}]}
        )
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": parts.title},
                "template": "blue",
            },
            "elements": elements,
        },
    }
