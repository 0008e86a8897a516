"""Short per-language texts for chat channels (Slack, Teams, Lark) and email subjects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_LANGUAGE = "en"
MAX_FIELD_CHARS = 300

TEXT_TEMPLATES: dict[str, dict[str, str]] = {
    "source.rejected_batch": {
        "en": (
            "Source {source}: a signed request was rejected with HTTP {status}: {reason}. "
            "Nothing of it was stored; please fix the sender."
        ),
        "de": (
            "Quelle {source}: Eine signierte Anfrage wurde mit HTTP {status} abgelehnt: "
            "{reason}. Nichts davon wurde gespeichert; bitte den Absender korrigieren."
        ),
    },
}


class _Fields(dict[str, str]):
    """Template fields: a missing one shows as "?" rather than failing the message."""

    def __missing__(self, key: str) -> str:
        return "?"


def render_text(event_type: str, language: str, data: Mapping[str, Any]) -> str:
    """The message for ``event_type`` in ``language`` (English when there is none). No I/O.

    Raises LookupError for an event type without a text template.
    """
    templates = TEXT_TEMPLATES.get(event_type)
    if templates is None:
        raise LookupError(f"no text template for event type '{event_type}'")
    template = templates.get(language) or templates[DEFAULT_LANGUAGE]
    fields = _Fields({key: _shorten(str(value)) for key, value in data.items()})
    return template.format_map(fields)


def _shorten(value: str) -> str:
    if len(value) <= MAX_FIELD_CHARS:
        return value
    return value[: MAX_FIELD_CHARS - 1] + "…"
