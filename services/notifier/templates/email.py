"""An e-mail channel's stored message: subject, plain text, HTML and attachments as JSON.

The MIME message itself is built by the adapter at each attempt (its ``Date`` is the
attempt's; its ``Message-ID`` comes from the delivery id, so a retry carries the same one).
Attachments travel in the stored body, base64-encoded: a ``report.ready`` event's files
arrive in its message parts and go out with every attempt unchanged.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import orjson
from pydantic import BaseModel, ConfigDict

from services.notifier.templates.limits import shorten
from services.notifier.templates.parts import MAX_DIGEST_LINES, MessageParts

EMAIL_CONTENT_TYPE = "application/vnd.plumbline.email+json"
MAX_SUBJECT_CHARS = 200
# Mail has no hard limit, but a message of megabytes helps nobody: a longer text is cut with
# a link to the whole (a digest lists at most parts.MAX_DIGEST_LINES of its events).
MAX_TEXT_CHARS = 100_000
MORE = {"en": "More in Plumbline", "de": "Mehr in Plumbline"}


class EmailAttachment(BaseModel):
    model_config = ConfigDict(frozen=True)

    filename: str
    content_type: str
    content_base64: str


class EmailMessage(BaseModel):
    """What an e-mail delivery stores (and its adapter reads back)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    text: str
    html: str
    attachments: list[EmailAttachment] = []


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_email(parts: MessageParts) -> bytes:
    """The stored JSON for ``parts``. No I/O (the template file is read once)."""
    return orjson.dumps(email_message(parts).model_dump())


def email_message(parts: MessageParts) -> EmailMessage:
    """Subject, text and HTML (escaped) for ``parts``, with its attachments.

    A text over ``MAX_TEXT_CHARS`` (a policy update's body) is cut with a link to the full
    object; a digest lists its lines after the text (``MAX_DIGEST_LINES`` of them at most,
    then "and K more").
    """
    more_label = parts.more_label or MORE.get(parts.language, MORE["en"])
    suffix = f" ({more_label}: {parts.link.url})" if parts.link is not None else ""
    text = shorten(parts.text, MAX_TEXT_CHARS, suffix=suffix)
    shown_lines = parts.lines[:MAX_DIGEST_LINES]
    omitted = len(parts.lines) - len(shown_lines) + parts.hidden_lines
    digest = [
        f"• {line.title}: {line.summary}" + (f"\n  {line.url}" if line.url else "")
        for line in shown_lines
    ]
    and_more = parts.and_more_text(omitted) if omitted else ""
    lines = [parts.title, "", text]
    if digest:
        lines += ["", *digest]
    if and_more:
        lines += [and_more]
    if parts.fields:
        lines += ["", *(f"{field.label}: {field.value}" for field in parts.fields)]
    links = [link for link in (parts.link, parts.personal_link) if link is not None]
    if links:
        lines += ["", *(f"{link.label}: {link.url}" for link in links)]
    if parts.context:
        lines += ["", "-- ", parts.context]
    html = (
        _environment()
        .get_template("email.html.j2")
        .render(parts=parts, text=text, digest=shown_lines, and_more=and_more)
    )
    return EmailMessage(
        subject=" ".join(parts.title.split())[:MAX_SUBJECT_CHARS],
        text="\n".join(lines) + "\n",
        html=html,
        attachments=[
            EmailAttachment(
                filename=item.filename,
                content_type=item.content_type,
                content_base64=base64.b64encode(item.content).decode("ascii"),
            )
            for item in parts.attachments
        ],
    )


def read_email(body: bytes) -> EmailMessage:
    """The stored message back from its JSON."""
    loaded: dict[str, Any] = orjson.loads(body)
    return EmailMessage.model_validate(loaded)
