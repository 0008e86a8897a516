"""The parts of a message for people (title, text, fields, context, a link, attachments), in
one language: what every chat and e-mail template takes.

``message_parts`` builds them from an event; each kind's template (``slack``, ``teams``,
``lark``, ``email``) lays them out for its target and nothing else, so a richer template
per event type and language replaces this module's text without touching a kind.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import quote

from services.notifier.templates.text import DEFAULT_LANGUAGE, render_text
from shared.models import Event

CHANNEL_TEST_EVENT = "channel.test"


@dataclass(frozen=True, slots=True)
class MessageField:
    """A labelled value shown beside the text (a market, a queue, a deadline)."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class MessageLink:
    """Where the message's object is opened."""

    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with the message (e-mail only; chat kinds link to it instead)."""

    filename: str
    content_type: str
    content: bytes


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


TITLES: dict[str, dict[str, str]] = {
    "source.rejected_batch": {"en": "Intake request rejected", "de": "Anfrage abgelehnt"},
    "source.secret_rotated": {"en": "Source secret rotated", "de": "Quellgeheimnis erneuert"},
    "policy_update.published": {"en": "Policy update", "de": "Richtlinien-Update"},
    "disagreement.opened": {"en": "Audit disagreement", "de": "Audit-Abweichung"},
    "dispute.awaiting_arbitration": {
        "en": "Dispute awaiting arbitration",
        "de": "Einspruch wartet auf Entscheidung",
    },
    "decision.corrected": {"en": "Decision corrected", "de": "Entscheidung korrigiert"},
    "calibration.opened": {"en": "Calibration open", "de": "Kalibrierung offen"},
    "calibration.closed": {"en": "Calibration closed", "de": "Kalibrierung abgeschlossen"},
    "training.item_overdue": {"en": "Training overdue", "de": "Schulung überfällig"},
    "auditor.accuracy_dropped": {
        "en": "Auditor accuracy dropped",
        "de": "Auditor-Genauigkeit gesunken",
    },
    CHANNEL_TEST_EVENT: {"en": "Plumbline test message", "de": "Plumbline-Testnachricht"},
}

# Where each event type's object is opened, below the public URL ({key} from the event data).
LINK_PATHS: dict[str, str] = {
    "source.rejected_batch": "/v1/sources",
    "source.secret_rotated": "/v1/sources",
    "policy_update.published": "/v1/policy-updates/{id}",
    "disagreement.opened": "/v1/disagreements/{id}",
    "dispute.awaiting_arbitration": "/v1/disagreements/{id}",
    "decision.corrected": "/v1/decisions/{decision_id}",
    "calibration.opened": "/v1/calibrations/{id}",
    "calibration.closed": "/v1/calibrations/{id}",
    "training.item_overdue": "/v1/training-plans/{plan_id}",
    "auditor.accuracy_dropped": "/v1/auditor-quality?auditor_id={auditor_id}",
    CHANNEL_TEST_EVENT: "/v1/channels/{id}",
}

# The data keys shown as fields, in this order, when an event has them.
FIELD_KEYS = ("market", "queue", "source", "severity", "deadline", "due_at", "effective_at")
FIELD_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "market": "Market",
        "queue": "Queue",
        "source": "Source",
        "severity": "Severity",
        "deadline": "Deadline",
        "due_at": "Due",
        "effective_at": "Effective",
    },
    "de": {
        "market": "Markt",
        "queue": "Queue",
        "source": "Quelle",
        "severity": "Schweregrad",
        "deadline": "Frist",
        "due_at": "Fällig",
        "effective_at": "Gültig ab",
    },
}
LINK_LABELS = {"en": "Open in Plumbline", "de": "In Plumbline öffnen"}


def message_parts(
    event: Event,
    *,
    language: str,
    public_url: str | None,
    time_zone: str = "UTC",
    personal_link: MessageLink | None = None,
) -> MessageParts:
    """The parts of ``event``'s message in ``language`` (English when it has none). No I/O.

    The link is left out only when there is no ``public_url`` to build it on. Files to
    attach come from ``data["attachments"]`` (``[{"filename", "content_type",
    "content_base64"}]``), the shape a ``report.ready`` event carries its report files in.
    """
    data: Mapping[str, Any] = event.data or {}
    labels = FIELD_LABELS.get(language, FIELD_LABELS[DEFAULT_LANGUAGE])
    fields = tuple(
        MessageField(labels[key], _show(data[key]))
        for key in FIELD_KEYS
        if data.get(key) not in (None, "", [])
    )
    occurred = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return MessageParts(
        event_type=event.type,
        language=language,
        title=_pick(TITLES.get(event.type), language) or event.type,
        text=_text(event.type, language, data),
        fields=fields,
        context=f"Plumbline · {event.type} · {occurred}",
        link=_link(event.type, data, language=language, public_url=public_url),
        attachments=tuple(_attachments(data)),
        personal_link=personal_link,
    )


# For an event type whose texts have not landed yet: a message without them, never none.
GENERIC_TEXTS = {
    "en": "Plumbline event {event_type}: open it for the details.",
    "de": "Plumbline-Ereignis {event_type}: Details über den Link.",
}


def _text(event_type: str, language: str, data: Mapping[str, Any]) -> str:
    try:
        return render_text(event_type, language, data)
    except LookupError:
        generic = GENERIC_TEXTS.get(language, GENERIC_TEXTS[DEFAULT_LANGUAGE])
        return generic.format(event_type=event_type)


def _pick(texts: Mapping[str, str] | None, language: str) -> str | None:
    if texts is None:
        return None
    return texts.get(language) or texts.get(DEFAULT_LANGUAGE)


def _link(
    event_type: str, data: Mapping[str, Any], *, language: str, public_url: str | None
) -> MessageLink | None:
    path = LINK_PATHS.get(event_type)
    if public_url is None or path is None:
        return None
    values = {key: quote(str(value), safe="") for key, value in data.items()}
    try:
        resolved = path.format_map(values)
    except KeyError:
        resolved = path.split("{", 1)[0].rstrip("/?")
    label = LINK_LABELS.get(language, LINK_LABELS[DEFAULT_LANGUAGE])
    return MessageLink(label=label, url=public_url.rstrip("/") + resolved)


def _attachments(data: Mapping[str, Any]) -> list[Attachment]:
    files = data.get("attachments")
    if not isinstance(files, list):
        return []
    return [
        Attachment(
            filename=str(item["filename"]),
            content_type=str(item.get("content_type") or "application/octet-stream"),
            content=base64.b64decode(item["content_base64"]),
        )
        for item in files
        if isinstance(item, dict) and "filename" in item and "content_base64" in item
    ]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
