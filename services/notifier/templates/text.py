"""Short per-language texts of every event type: the text part of chat and e-mail messages.

Jinja2 files, one per event type and language, under ``text/<language>/``; fields arrive
shown for people (codes by their label in the language, lists comma-separated, long values
cut). The template set per event type and language with Babel formatting replaces these.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

DEFAULT_LANGUAGE = "en"
MAX_FIELD_CHARS = 300

# One Jinja2 file per event type and language: text/<language>/<event type>.txt.j2. A
# language is added as a folder of these files.
TEXT_DIRECTORY = Path(__file__).parent / "text"
TEMPLATE_SUFFIX = ".txt.j2"


# Fields holding codes, and the codes shown to people in their language (a code without a
# label shows as is).
LABELLED_FIELDS = frozenset(
    {"error_type", "severity", "expected_action", "original_action", "corrected_action"}
)
VALUE_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "missed_violation": "missed violation",
        "over_enforcement": "over-enforcement",
        "wrong_policy": "wrong policy",
        "wrong_action": "wrong action",
    },
    "de": {
        "missed_violation": "übersehener Verstoß",
        "over_enforcement": "übermäßige Durchsetzung",
        "wrong_policy": "falsche Richtlinie",
        "wrong_action": "falsche Maßnahme",
        "critical": "kritisch",
        "major": "schwer",
        "minor": "leicht",
        "approve": "freigeben",
        "remove": "entfernen",
        "restrict": "einschränken",
        "escalate": "eskalieren",
    },
}


class _Missing(jinja2.Undefined):
    """A field the event lacks (or holds null) shows as "?" rather than failing the message."""

    def __str__(self) -> str:
        return "?"


@cache
def _environment() -> jinja2.Environment:
    # Plain text: nothing to escape (each kind escapes for its own markup when it lays out).
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEXT_DIRECTORY),
        autoescape=False,  # noqa: S701 (plain text; the HTML e-mail template escapes)
        undefined=_Missing,
        keep_trailing_newline=False,
    )


@cache
def text_languages(event_type: str) -> frozenset[str]:
    """The languages ``event_type`` has a text template in."""
    return frozenset(
        folder.name
        for folder in TEXT_DIRECTORY.iterdir()
        if (folder / f"{event_type}{TEMPLATE_SUFFIX}").is_file()
    )


def render_text(event_type: str, language: str, data: Mapping[str, Any]) -> str:
    """The message for ``event_type`` in ``language`` (English when there is none). No I/O
    beyond reading each template file once.

    Raises LookupError for an event type without a text template.
    """
    languages = text_languages(event_type)
    if DEFAULT_LANGUAGE not in languages:
        raise LookupError(f"no text template for event type '{event_type}'")
    chosen = language if language in languages else DEFAULT_LANGUAGE
    labels = VALUE_LABELS.get(chosen, VALUE_LABELS[DEFAULT_LANGUAGE])
    fields = {
        key: _shorten(_show(value, labels if key in LABELLED_FIELDS else {}))
        for key, value in data.items()
        if value is not None
    }
    template = _environment().get_template(f"{chosen}/{event_type}{TEMPLATE_SUFFIX}")
    return template.render(fields)


def _show(value: Any, labels: Mapping[str, str]) -> str:
    """A field as people read it: codes by their label, lists comma-separated."""
    if isinstance(value, list):
        return ", ".join(_show(item, labels) for item in value)
    text = str(value)
    return labels.get(text, text)


def _shorten(value: str) -> str:
    if len(value) <= MAX_FIELD_CHARS:
        return value
    return value[: MAX_FIELD_CHARS - 1] + "…"
