"""The parts of a message for people (title, text, fields, context, links, attachments, a
digest's lines), in one language: what every chat and e-mail template takes.

``message_parts`` builds them from an event through its type's template in the channel's
language (``messages``); each kind's template (``slack``, ``teams``, ``lark``, ``email``)
lays them out for its target within its limits and nothing else.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jinja2

from services.notifier.templates.messages import (
    DEFAULT_LANGUAGE,
    RenderedTemplate,
    phrases,
    render_template,
)
from shared.analytics.formatting import format_datetime, format_number
from shared.events import DIGEST_EVENT_TYPE
from shared.models import Event
from shared.schemas.reports import ReportLanguage

CHANNEL_TEST_EVENT = "channel.test"
# A digest renders at most this many of its items (no kind shows more; e-mail's budget is
# about this many lines); the rest are counted in its "and K more".
MAX_DIGEST_LINES = 500


@dataclass(frozen=True, slots=True)
class MessageField:
    """A labelled value shown beside the text (a market, a queue, a deadline)."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class MessageLink:
    """Where the message's object is opened (or an action one recipient takes)."""

    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with the message (e-mail only; chat kinds link to it instead)."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One event of a digest: its title, a one-line summary and its link."""

    title: str
    summary: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class MessageParts:
    """One message for people, in one language, before a kind lays it out."""

    event_type: str
    language: str
    title: str
    text: str
    fields: tuple[MessageField, ...] = ()
    context: str = ""
    link: MessageLink | None = None
    attachments: tuple[Attachment, ...] = field(default=())
    personal_link: MessageLink | None = None
    """An action for this one recipient (the signed "Acknowledge" link of a policy update
    e-mail), shown beside ``link``; None in messages shared by a channel."""
    more_label: str | None = None
    """The language's "more in Plumbline" after a cut text (None: the kind's own)."""
    lines: tuple[DigestLine, ...] = ()
    """A digest's events, after ``text``; a kind shows as many as fit."""
    hidden_lines: int = 0
    """A digest's events beyond ``lines`` (counted in its "and K more", never rendered)."""
    and_more: str = "… and {count} more"

    def and_more_text(self, count: int) -> str:
        """ "and {count} more" in the message's language, the count formatted by Babel."""
        shown = format_number(count, _babel_language(self.language))
        return self.and_more.replace("{count}", shown)


# Where each event type's object is opened, below the public URL ({key} from the event data).
LINK_PATHS: dict[str, str] = {
    "source.rejected_batch": "/v1/sources",
    "source.secret_rotated": "/v1/sources",
    "policy_update.published": "/v1/policy-updates/{id}",
    "policy_update.reminder": "/v1/policy-updates/{id}",
    "policy_question.asked": "/v1/policy-questions/{id}",
    "policy_question.answered": "/v1/policy-questions/{id}",
    "policy_question.overdue": "/v1/policy-questions/{id}",
    "escalation.opened": "/v1/escalations/{id}",
    "escalation.action_overdue": "/v1/escalations/{id}",
    "disagreement.opened": "/v1/disagreements/{id}",
    "dispute.awaiting_arbitration": "/v1/disagreements/{id}",
    "decision.corrected": "/v1/decisions/{decision_id}",
    "calibration.opened": "/v1/calibrations/{id}",
    "calibration.closed": "/v1/calibrations/{id}",
    "quiz.assigned": "/v1/quizzes/{id}",
    "report.ready": "/v1/report-snapshots/{id}",
    "training.item_overdue": "/v1/training-plans/{plan_id}",
    "auditor.accuracy_dropped": "/v1/auditor-quality?auditor_id={auditor_id}",
    CHANNEL_TEST_EVENT: "/v1/channels/{id}",
    DIGEST_EVENT_TYPE: "/v1/channels/{channel_id}",
}


def message_parts(
    event: Event,
    *,
    language: str,
    public_url: str | None,
    time_zone: str = "UTC",
    personal_link: MessageLink | None = None,
) -> MessageParts:
    """The parts of ``event``'s message in ``language`` (English when it has no template),
    dates and times in ``time_zone``, ``personal_link`` as a second action. No I/O.

    Never fails for the event's data: a type without templates, or data its template cannot
    show, gives a generic text with the link. The link is left out only when there is no
    ``public_url`` to build it on. Files to attach come from ``data["attachments"]``
    (``[{"filename", "content_type", "content_base64"}]``, a ``report.ready`` event's). A
    digest (type ``shared.events.DIGEST_EVENT_TYPE``) lists its items (see ``DigestLine``).
    """
    data: Mapping[str, Any] = event.data if isinstance(event.data, Mapping) else {}
    extra: dict[str, Any] = {}
    lines: tuple[DigestLine, ...] = ()
    hidden = 0
    if event.type == DIGEST_EVENT_TYPE:
        lines, hidden = _digest_lines(
            data, language=language, public_url=public_url, time_zone=time_zone
        )
        extra = {"count": len(lines) + hidden}
    rendered = _rendered(event.type, language, data, time_zone=time_zone, extra=extra)
    chosen = rendered.language
    words = phrases(chosen)
    occurred = format_datetime(event.occurred_at, _babel_language(chosen), time_zone=time_zone)
    return MessageParts(
        event_type=event.type,
        language=chosen,
        title=rendered.title,
        text=rendered.text,
        fields=tuple(MessageField(label, value) for label, value in rendered.fields),
        context=f"Plumbline · {event.type} · {occurred}",
        link=_link(event.type, data, label=words.open_link, public_url=public_url),
        attachments=tuple(_attachments(data)),
        personal_link=personal_link,
        more_label=words.more,
        lines=lines,
        hidden_lines=hidden,
        and_more=words.and_more,
    )


def _rendered(
    event_type: str,
    language: str,
    data: Mapping[str, Any],
    *,
    time_zone: str,
    extra: Mapping[str, Any],
) -> RenderedTemplate:
    try:
        return render_template(event_type, language, data, time_zone=time_zone, extra=extra)
    except (LookupError, jinja2.TemplateError, TypeError, ValueError, AttributeError):
        # A new type whose templates have not landed, or data its template cannot show: a
        # message without its text, never none.
        chosen = language if language in ("en", "de") else DEFAULT_LANGUAGE
        return RenderedTemplate(
            language=chosen,
            title=event_type,
            text=phrases(chosen).generic.replace("{event_type}", event_type),
            fields=(),
            summary=event_type,
        )


def _digest_lines(
    data: Mapping[str, Any], *, language: str, public_url: str | None, time_zone: str
) -> tuple[tuple[DigestLine, ...], int]:
    """A digest's items as lines (at most ``MAX_DIGEST_LINES``) and how many more it has."""
    items = data.get("items")
    if not isinstance(items, list):
        return (), 0
    lines = []
    for item in items[:MAX_DIGEST_LINES]:
        if not isinstance(item, Mapping):
            continue
        item_type = str(item.get("type") or "")
        item_data = item.get("data") if isinstance(item.get("data"), Mapping) else {}
        assert isinstance(item_data, Mapping)
        rendered = _rendered(item_type, language, item_data, time_zone=time_zone, extra={})
        link = _link(item_type, item_data, label="", public_url=public_url)
        lines.append(
            DigestLine(
                title=rendered.title,
                summary=rendered.summary,
                url=link.url if link is not None else None,
            )
        )
    return tuple(lines), max(len(items) - MAX_DIGEST_LINES, 0)


def _babel_language(language: str) -> ReportLanguage:
    return "de" if language == "de" else "en"


def _link(
    event_type: str, data: Mapping[str, Any], *, label: str, public_url: str | None
) -> MessageLink | None:
    path = LINK_PATHS.get(event_type)
    if public_url is None or path is None:
        return None
    values = {key: quote(str(value), safe="") for key, value in data.items()}
    try:
        resolved = path.format_map(values)
    except (KeyError, ValueError, IndexError):
        resolved = path.split("{", 1)[0].rstrip("/?")
    return MessageLink(label=label, url=public_url.rstrip("/") + resolved)


def _attachments(data: Mapping[str, Any]) -> list[Attachment]:
    files = data.get("attachments")
    if not isinstance(files, list):
        return []
    attachments = []
    for item in files:
        if not (isinstance(item, dict) and "filename" in item and "content_base64" in item):
            continue
        try:
            content = base64.b64decode(item["content_base64"])
        except (ValueError, TypeError):
            continue
        attachments.append(
            Attachment(
                filename=str(item["filename"]),
                content_type=str(item.get("content_type") or "application/octet-stream"),
                content=content,
            )
        )
    return attachments
