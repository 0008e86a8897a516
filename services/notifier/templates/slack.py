"""The Slack incoming-webhook body: ``{"text", "blocks"}`` in Block Kit.

A header, the text as a section, the fields (up to ten per section), a button to the
object, and a context line. Within Slack's limits: at most 50 blocks, 3,000 characters of
section text, 2,000 per field, 150 for the header, and about 12,000 characters of text in
all blocks together; anything longer is cut with a link to the full object, never refused.
A digest's events follow its text, one linked line each, as many as fit, then "and K more".
"""

from __future__ import annotations

from typing import Any

import orjson

from services.notifier.templates.limits import MAX_DIGEST_LINE_CHARS, fit_lines, shorten
from services.notifier.templates.parts import DigestLine, MessageParts

SLACK_CONTENT_TYPE = "application/json"
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_FIELD_CHARS = 2000
MAX_FIELDS_PER_SECTION = 10
MAX_HEADER_CHARS = 150
MAX_BUTTON_CHARS = 75
MAX_CONTEXT_CHARS = 2000
MAX_BLOCK_TEXT_CHARS = 12_000
MAX_FALLBACK_CHARS = 3000
# When the parts bring no "more" of their own (the template language's).
MORE = {"en": "more in Plumbline", "de": "mehr in Plumbline"}


def render_slack(parts: MessageParts) -> bytes:
    """The JSON body for ``parts``. No I/O."""
    return orjson.dumps(slack_payload(parts))


def slack_payload(parts: MessageParts) -> dict[str, Any]:
    """``{"text", "blocks"}`` for ``parts``, inside Slack's limits."""
    more_label = parts.more_label or MORE.get(parts.language, MORE["en"])
    more = f" <{parts.link.url}|{_escape(more_label)}>" if parts.link else ""
    header = shorten(parts.title, MAX_HEADER_CHARS)
    context = shorten(_escape(parts.context), MAX_CONTEXT_CHARS)
    fields = [
        shorten(f"*{_escape(field.label)}*\n{_escape(field.value)}", MAX_FIELD_CHARS)
        for field in parts.fields
    ]
    button = "".join(
        shorten(link.label, MAX_BUTTON_CHARS)
        for link in (parts.link, parts.personal_link)
        if link is not None
    )
    # What the text may use of the total, after everything else (fields first lose their
    # place when even they do not fit).
    budget = MAX_BLOCK_TEXT_CHARS - len(header) - len(context) - len(button)
    kept_fields: list[str] = []
    for text in fields:
        if budget - len(text) < MAX_SECTION_CHARS // 3:
            break
        kept_fields.append(text)
        budget -= len(text)
    text_limit = min(MAX_SECTION_CHARS, budget)
    if parts.lines or parts.hidden_lines:
        text = fit_lines(
            _escape(parts.text),
            [_digest_line(line) for line in parts.lines],
            text_limit,
            more=lambda count: _escape(parts.and_more_text(count)),
            hidden=parts.hidden_lines,
        )
    else:
        text = shorten(_escape(parts.text), text_limit, suffix=more)

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
    ]
    for start in range(0, len(kept_fields), MAX_FIELDS_PER_SECTION):
        chunk = kept_fields[start : start + MAX_FIELDS_PER_SECTION]
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": item} for item in chunk]}
        )
    buttons = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": shorten(link.label, MAX_BUTTON_CHARS)},
            "url": link.url,
        }
        for link in (parts.link, parts.personal_link)
        if link is not None
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {
        # The notification text is mrkdwn too: escaped like the blocks.
        "text": shorten(_escape(f"{parts.title}: {parts.text}"), MAX_FALLBACK_CHARS),
        "blocks": blocks[:MAX_BLOCKS],
    }


def _digest_line(line: DigestLine) -> str:
    """One event of a digest: its title linked to it, and its summary."""
    title = _escape(line.title).replace("|", "¦")
    shown = f"<{line.url}|{title}>" if line.url else f"*{title}*"
    return shorten(f"• {shown}: {_escape(line.summary)}", MAX_DIGEST_LINE_CHARS)


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as its documentation asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
