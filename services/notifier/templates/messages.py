"""One template per event type and language: the title, text and fields of a message.

Each template is a Jinja2 file, ``messages/<language>/<event type>.j2``, with the blocks

- ``title``: one line (a chat header, an e-mail subject);
- ``text``: the message itself, plain text (each kind escapes for its own markup);
- ``fields``: ``{{ field("Label", value) }}`` lines, the labelled values shown beside the
  text (a field whose value is missing or empty is left out);
- ``summary`` (optional): one line for a digest; the text's first line when absent.

A language is added as a folder of these files (and in ``shared.channels.languages``); an
event type as its file in every folder (and its payload model in ``shared.events``). The
digest (``digest.j2``) and the channel test (``channel.test.j2``) are templates like any
other.

Values come from the event's JSON data as they are; filters show them for people in the
channel's language and time zone through Babel (``shared.analytics.formatting``):
``datetime``, ``date``, ``number``, ``percent``, ``pvalue``, ``label`` (codes by their name
in the language), ``language_name``, ``oneline``, ``shorten``. A field the event lacks (or
holds null) shows as "?" in the text rather than failing the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

import jinja2

from shared.analytics.formatting import (
    format_date,
    format_datetime,
    format_local_date,
    format_number,
    format_p_value,
    format_percent,
    language_name,
)
from shared.schemas.reports import ReportLanguage

DEFAULT_LANGUAGE = "en"
TEMPLATE_DIRECTORY = Path(__file__).parent / "messages"
TEMPLATE_SUFFIX = ".j2"
BLOCKS = ("title", "text", "fields", "summary")
PHRASES_FILE = "_phrases.j2"
MAX_TITLE_CHARS = 200
MAX_FIELD_CHARS = 500
MAX_SUMMARY_CHARS = 200

# A field travels out of its block between these (private-use characters, which no shown
# value keeps; not control characters, which Python counts as whitespace and strips).
_FIELD_START, _FIELD_SEPARATOR, _FIELD_END = "\ue000", "\ue001", "\ue002"
_PRIVATE = re.compile("[\ue000-\ue002]")
_FIELD = re.compile(
    f"{_FIELD_START}([^{_FIELD_SEPARATOR}]*){_FIELD_SEPARATOR}([^{_FIELD_END}]*){_FIELD_END}"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n{3,}")
_BREAKING_SPACE = re.compile(r"[ \t\n\r\f\v]+")

# Codes shown to people by their name in the language (a code without one shows as is).
VALUE_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "missed_violation": "missed violation",
        "over_enforcement": "over-enforcement",
        "wrong_policy": "wrong policy",
        "wrong_action": "wrong action",
        "read_policy": "read a policy",
        "pass_quiz": "pass a quiz",
        "shadow_audits": "shadow audits",
        "onboarding": "onboarding",
        "remedial": "remedial",
        "error_rate": "error rate",
        "critical_error_rate": "critical error rate",
        "market": "market",
        "queue": "queue",
        "policy_code": "policy",
        "moderator_id": "moderator",
        "content_type": "content type",
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
        "read_policy": "Richtlinie lesen",
        "pass_quiz": "Quiz bestehen",
        "shadow_audits": "Schatten-Audits",
        "onboarding": "Einarbeitung",
        "remedial": "Nachschulung",
        "accuracy": "Genauigkeit",
        "error_rate": "Fehlerquote",
        "critical_error_rate": "Quote kritischer Fehler",
        "market": "Markt",
        "queue": "Queue",
        "policy_code": "Richtlinie",
        "moderator_id": "Moderator",
        "content_type": "Inhaltstyp",
        "accuracy_by_moderator": "Genauigkeit nach Moderator",
        "briefing": "Briefing",
        "trend": "Trend",
        "comparison": "Vergleich",
    },
}


class Missing(jinja2.ChainableUndefined):
    """A value the event lacks (or holds null): "?" in a text, left out as a field (and its
    attributes missing too, so ``texts.en.title`` of an event without texts is "?")."""

    def __str__(self) -> str:
        return "?"


@dataclass(frozen=True, slots=True)
class RenderedTemplate:
    """What an event type's template gives in one language."""

    language: str
    title: str
    text: str
    fields: tuple[tuple[str, str], ...]
    summary: str


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIRECTORY),
        # Plain text: each kind escapes for its own markup (the e-mail HTML template too).
        autoescape=False,  # noqa: S701
        undefined=Missing,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    environment.filters.update(
        {
            "datetime": _datetime,
            "date": _date,
            "number": _number,
            "percent": _percent,
            "pvalue": _p_value,
            "label": _label,
            "language_name": _language_name,
            "dimensions": _dimensions,
            "oneline": _oneline,
            "shorten": _shorten_filter,
        }
    )
    environment.globals.update({"field": _field, "text_of": _text_of, "has_text": _has_text})
    return environment


@cache
def template_languages() -> frozenset[str]:
    """Every language with a template folder."""
    return frozenset(folder.name for folder in TEMPLATE_DIRECTORY.iterdir() if folder.is_dir())


@cache
def template_types(language: str) -> frozenset[str]:
    """The event types (and ``digest``, ``channel.test``) ``language`` has templates for."""
    folder = TEMPLATE_DIRECTORY / language
    if not folder.is_dir():
        return frozenset()
    return frozenset(
        path.name.removesuffix(TEMPLATE_SUFFIX)
        for path in folder.iterdir()
        if path.name.endswith(TEMPLATE_SUFFIX) and not path.name.startswith("_")
    )


def template_language(event_type: str, language: str) -> str:
    """The language ``event_type`` is rendered in for a channel in ``language``: its own
    when it has the template, else English. LookupError for a type without templates."""
    if event_type in template_types(language):
        return language
    if event_type in template_types(DEFAULT_LANGUAGE):
        return DEFAULT_LANGUAGE
    raise LookupError(f"no message template for event type '{event_type}'")


def render_template(
    event_type: str,
    language: str,
    data: Mapping[str, Any],
    *,
    time_zone: str = "UTC",
    extra: Mapping[str, Any] | None = None,
) -> RenderedTemplate:
    """The title, text, fields and digest line of ``event_type`` for ``data``, in
    ``language`` (English when it has no template) with moments in ``time_zone``. No I/O
    beyond reading each template file once.

    ``extra`` adds values the template reads beside the data (the digest's lines). Raises
    LookupError for a type without templates; a template error (a value of a type the
    template cannot show) raises ``jinja2.TemplateError``, ``TypeError`` or ``ValueError``.
    """
    chosen = template_language(event_type, language)
    template = _environment().get_template(f"{chosen}/{event_type}{TEMPLATE_SUFFIX}")
    values = {key: value for key, value in data.items() if value is not None}
    values |= dict(extra or {})
    values |= {"_language": chosen, "_time_zone": time_zone}
    context = template.new_context(values)
    blocks = {name: _block(template, name, context) for name in BLOCKS}
    title = _oneline(blocks["title"])[:MAX_TITLE_CHARS] or event_type
    text = _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in blocks["text"].split("\n")))
    summary = _oneline(blocks["summary"]) or _oneline(text.strip().split("\n", 1)[0])
    return RenderedTemplate(
        language=chosen,
        title=title,
        text=text.strip(),
        fields=tuple((label, value) for label, value in _FIELD.findall(blocks["fields"]) if value),
        summary=_shorten(summary, MAX_SUMMARY_CHARS),
    )


@dataclass(frozen=True, slots=True)
class Phrases:
    """What every message of a language says around its template's text."""

    open_link: str
    more: str
    and_more: str
    generic: str
    acknowledge: str
    """The label of a policy update's personal acknowledgement link."""


@cache
def phrases(language: str) -> Phrases:
    """The phrases of ``language`` (``messages/<language>/_phrases.j2``; English's when it
    has none): the link's label, "more in Plumbline", a digest's "and {count} more", the
    text of an event type without a template ({event_type}) and the label of a policy
    update's acknowledgement link."""
    chosen = language if (TEMPLATE_DIRECTORY / language / PHRASES_FILE).is_file() else "en"
    template = _environment().get_template(f"{chosen}/{PHRASES_FILE}")
    context = template.new_context({"_language": chosen})
    return Phrases(
        open_link=_oneline(_block(template, "open_link", context)),
        more=_oneline(_block(template, "more", context)),
        and_more=_oneline(_block(template, "and_more", context)),
        generic=_oneline(_block(template, "generic", context)),
        acknowledge=_oneline(_block(template, "acknowledge", context)),
    )


def render_text(
    event_type: str, language: str, data: Mapping[str, Any], *, time_zone: str = "UTC"
) -> str:
    """Only the text of ``event_type``'s message (see ``render_template``)."""
    return render_template(event_type, language, data, time_zone=time_zone).text


def _block(template: jinja2.Template, name: str, context: jinja2.runtime.Context) -> str:
    render = template.blocks.get(name)
    if render is None:
        return ""
    return "".join(render(context)).strip()


# Filters. Each shows a JSON value for people in the rendering's language and time zone, and
# passes a missing one (Missing, None) on as missing.


def _language_of(context: jinja2.runtime.Context) -> ReportLanguage:
    language = context.get("_language")
    return cast(ReportLanguage, language if language in ("en", "de") else DEFAULT_LANGUAGE)


def _is_missing(value: Any) -> bool:
    return value is None or isinstance(value, jinja2.Undefined)


@jinja2.pass_context
def _datetime(context: jinja2.runtime.Context, value: Any) -> Any:
    moment = _moment(value)
    if moment is None:
        return value if not _is_missing(value) else Missing()
    return format_datetime(
        moment, _language_of(context), time_zone=str(context.get("_time_zone") or "UTC")
    )


@jinja2.pass_context
def _date(context: jinja2.runtime.Context, value: Any) -> Any:
    """A day: a moment's day in the time zone; a calendar day (2026-11-01) as it is."""
    if isinstance(value, str) and len(value) == len("2026-11-01"):
        try:
            return format_date(date.fromisoformat(value), _language_of(context))
        except ValueError:
            return value
    moment = _moment(value)
    if moment is None:
        return value if not _is_missing(value) else Missing()
    return format_local_date(
        moment, _language_of(context), time_zone=str(context.get("_time_zone") or "UTC")
    )


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


@jinja2.pass_context
def _number(context: jinja2.runtime.Context, value: Any, digits: int | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Missing() if _is_missing(value) else value
    return format_number(value, _language_of(context), digits=digits)


@jinja2.pass_context
def _percent(context: jinja2.runtime.Context, value: Any, digits: int = 1) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Missing() if _is_missing(value) else value
    return format_percent(value, _language_of(context), digits=digits)


@jinja2.pass_context
def _p_value(context: jinja2.runtime.Context, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Missing() if _is_missing(value) else value
    return format_p_value(value, _language_of(context))


@jinja2.pass_context
def _label(context: jinja2.runtime.Context, value: Any) -> Any:
    """A code (or a list of codes) by its name in the language."""
    if _is_missing(value):
        return Missing()
    labels = VALUE_LABELS.get(_language_of(context), {})
    if isinstance(value, list):
        return ", ".join(labels.get(str(item), str(item)) for item in value)
    return labels.get(str(value), str(value))


@jinja2.pass_context
def _dimensions(context: jinja2.runtime.Context, value: Any) -> Any:
    """A slice's dimensions ({"market": "DE", "queue": "q"}) as "market DE, queue q"."""
    if not isinstance(value, Mapping):
        return Missing() if _is_missing(value) else value
    labels = VALUE_LABELS.get(_language_of(context), {})
    return ", ".join(f"{labels.get(str(key), str(key))} {item}" for key, item in value.items())


@jinja2.pass_context
def _language_name(context: jinja2.runtime.Context, value: Any) -> Any:
    if _is_missing(value):
        return Missing()
    return language_name(str(value), _language_of(context))


def _oneline(value: Any) -> str:
    """Runs of spaces and line breaks as single spaces (no-break spaces stay: CLDR puts them
    between a number and its % sign or AM/PM)."""
    return _BREAKING_SPACE.sub(" ", str(value)).strip(" ")


def _shorten(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: limit - 1].rstrip() + "…"


def _shorten_filter(value: Any, limit: int = 300) -> Any:
    if _is_missing(value):
        return Missing()
    return _shorten(str(value), limit)


def _field(label: str, value: Any) -> str:
    """A labelled value for the ``fields`` block; nothing when the value is missing or empty."""
    if _is_missing(value) or value in ("", []):
        return ""
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    shown = _shorten(_clean(_oneline(value)), MAX_FIELD_CHARS)
    return f"{_FIELD_START}{_clean(label)}{_FIELD_SEPARATOR}{shown}{_FIELD_END}\n"


def _clean(value: str) -> str:
    return _PRIVATE.sub("", _CONTROL.sub(" ", value))


@jinja2.pass_context
def _has_text(context: jinja2.runtime.Context, texts: Any) -> bool:
    """Whether a policy update's ``texts`` has one in the rendering's language."""
    return isinstance(texts, Mapping) and isinstance(texts.get(context.get("_language")), Mapping)


@jinja2.pass_context
def _text_of(context: jinja2.runtime.Context, texts: Any, original: Any) -> Any:
    """A policy update's text in the rendering's language, else in its ``original``
    language, else any it has (a mapping of title, summary and body; Missing if none)."""
    if not isinstance(texts, Mapping) or not texts:
        return Missing()
    for language in (context.get("_language"), original, *texts):
        chosen = texts.get(language) if isinstance(language, str) else None
        if isinstance(chosen, Mapping):
            return chosen
    return Missing()
