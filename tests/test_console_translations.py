"""The console speaks German completely: every message the templates and the menu use has a
German translation in ``locales/de/*.po`` (one catalog per console area), no message is
translated two different ways by two areas, a translation keeps the placeholders of its
message (``%(name)s``: a missing one would fail the page at render time), and no template
shows English text outside ``_()`` (which no catalog could translate).

Messages are extracted the way Babel's tooling does (``babel.messages.extract`` with
Jinja2's ``babel_extract``), so what is checked is exactly what ``pybabel extract`` sees.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import jinja2.ext
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po

from services.audit_api.console.navigation import NAVIGATION
from services.audit_api.console.templating import LOCALES_DIR, TEMPLATES_DIR
from shared.core.auth import Role

pytestmark = pytest.mark.no_db

_JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")


def used_messages() -> dict[str, list[str]]:
    """Every msgid the console shows, with where it is used (template:line, or the menu)."""
    used: dict[str, list[str]] = defaultdict(list)
    for template in sorted(TEMPLATES_DIR.rglob("*.html")):
        with template.open("rb") as source:
            for line, message, _, _ in extract(
                jinja2.ext.babel_extract,  # type: ignore[arg-type]
                source,
                options=_JINJA_OPTIONS,
            ):
                where = f"{template.relative_to(TEMPLATES_DIR)}:{line}"
                for msgid in message if isinstance(message, tuple) else (message,):
                    if msgid:
                        used[msgid].append(where)
    for item in NAVIGATION:
        used[item.label].append(f"navigation.py ({item.path})")
    # base.html shows the signed-in person's role through _(context.role.value).
    for role in Role:
        used[role.value].append("base.html (role name)")
    return used


def german_catalogs() -> dict[Path, Catalog]:
    catalogs = {}
    for path in sorted((LOCALES_DIR / "de").glob("*.po")):
        with path.open("rb") as po_file:
            catalogs[path] = read_po(po_file, locale="de")
    return catalogs


def _strings(value: object) -> list[str]:
    if isinstance(value, (tuple, list)):
        return [str(part) for part in value]
    return [str(value or "")]


def test_every_message_the_console_shows_has_a_german_translation() -> None:
    translated: dict[str, list[str]] = {}
    for catalog in german_catalogs().values():
        for message in catalog:
            if not message.id:
                continue
            for msgid in _strings(message.id):
                strings = _strings(message.string)
                if all(s.strip() for s in strings):
                    translated[msgid] = strings
    used = used_messages()
    assert len(used) > 50, "the extraction found almost nothing: is it reading the templates?"
    missing = [
        f"{msgid!r} (used in {', '.join(sorted(set(places))[:3])})"
        for msgid, places in sorted(used.items())
        if msgid not in translated
    ]
    assert missing == [], f"{len(missing)} messages have no German translation:\n" + "\n".join(
        missing
    )


def po_entries(text: str) -> list[tuple[str, str]]:
    """``(msgid, msgstr)`` of every entry of a .po file's text, duplicates kept (Babel's
    reader keeps only one of two entries with the same msgid)."""
    entries: list[dict[str, str]] = []
    field: str | None = None
    for line in text.splitlines():
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgid", "msgid_plural", "msgstr") or keyword.startswith("msgstr["):
            if keyword == "msgid":
                entries.append({})
            field = keyword
            entries[-1][field] = ast.literal_eval(rest)
        elif line.startswith('"') and field is not None:
            entries[-1][field] += ast.literal_eval(line)
        else:
            field = None
    return [
        (entry["msgid"], entry.get("msgstr", entry.get("msgstr[0]", "")))
        for entry in entries
        if entry.get("msgid")
    ]


def test_no_message_is_translated_two_ways() -> None:
    seen: dict[str, tuple[str, str]] = {}
    conflicts = []
    for path in sorted((LOCALES_DIR / "de").glob("*.po")):
        for msgid, string in po_entries(path.read_text(encoding="utf-8")):
            if not string:
                continue
            if msgid in seen and seen[msgid][0] != string:
                conflicts.append(
                    f"{msgid!r}: {seen[msgid][0]!r} in {seen[msgid][1]}, {string!r} in {path.name}"
                )
            seen.setdefault(msgid, (string, path.name))
    assert conflicts == [], "\n".join(conflicts)


def test_the_duplicate_check_reads_every_entry() -> None:
    text = (
        'msgid ""\nmsgstr "x"\n\n'
        'msgid "Save"\nmsgstr "Speichern"\n\n'
        'msgid "Save"\nmsgstr ""\n"Sichern"\n'
    )
    assert po_entries(text) == [("Save", "Speichern"), ("Save", "Sichern")]


def test_a_translation_keeps_its_messages_placeholders() -> None:
    wrong = []
    for path, catalog in german_catalogs().items():
        for message in catalog:
            if not message.id or not message.string:
                continue
            wanted = set(_PLACEHOLDER.findall(" ".join(_strings(message.id))))
            for string in _strings(message.string):
                if string and set(_PLACEHOLDER.findall(string)) != wanted:
                    wrong.append(f"{path.name}: {message.id!r} -> {string!r}")
    assert wrong == [], "\n".join(wrong)


def test_the_catalogs_are_valid_po_files_in_german() -> None:
    catalogs = german_catalogs()
    assert {path.name for path in catalogs} >= {"console.po", "oidc.po"}
    for path, catalog in catalogs.items():
        assert str(catalog.locale) == "de", path
        assert len(catalog) > 0, f"{path.name} holds no message"


# Words a template may show as they are, in every language: the product's name, the names of
# the languages in the language menu, and units.
_UNTRANSLATED_WORDS = {"Plumbline", "English", "Deutsch", "ms", "UTC"}
# Attributes whose text a person sees or hears (a screen reader reads aria-label).
_VISIBLE_ATTRIBUTES = {"aria-label", "placeholder", "title", "alt"}
_JINJA_OUTPUT = re.compile(r"\{\{.*?\}\}", re.S)
_JINJA_STATEMENT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)
# Text a macro writes into a tag (attributes), not shown.
_ATTRIBUTE_TEXT = re.compile(r"^\s*([\w-]+=\"[^\"]*\"\s*)+$")


class _VisibleText(HTMLParser):
    """The text of a template (Jinja removed) a person would see, outside code samples."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code", "kbd", "samp"):
            self.hidden += 1
        values = dict(attrs)
        for name, value in attrs:
            shown = name in _VISIBLE_ATTRIBUTES or (
                name == "value" and tag == "input" and values.get("type") in ("submit", "button")
            )
            if shown and value:
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code", "kbd", "samp"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden and not _ATTRIBUTE_TEXT.match(data):
            self.found.append(" ".join(data.split()))


def untranslated_text(template: str) -> list[str]:
    """Text of ``template`` outside ``_()`` with words that would need translating (market
    and language codes in capitals, numbers and the words above excepted)."""
    parser = _VisibleText()
    parser.feed(_JINJA_OUTPUT.sub("9", _JINJA_STATEMENT.sub("", template)))
    return [
        text
        for text in parser.found
        if any(
            word not in _UNTRANSLATED_WORDS and not word.isupper()
            for word in re.findall(r"[^\W\d_]{2,}", text)
        )
    ]


def test_no_template_shows_english_outside_gettext() -> None:
    problems = [
        f"{template.relative_to(TEMPLATES_DIR)}: {text!r}"
        for template in sorted(TEMPLATES_DIR.rglob("*.html"))
        for text in untranslated_text(template.read_text(encoding="utf-8"))
    ]
    assert problems == [], "\n".join(problems)


def test_the_sweep_finds_text_outside_gettext() -> None:
    template = """
        <h1>{{ _("Audits") }}</h1><p>Claim the next one</p>
        <input type="search" placeholder="Search" aria-label="{{ _('Search') }}">
        <button type="submit">{{ _("Go") }}</button> <code>read-1, read_policy</code>
        <p>{{ n }} ms · Plumbline · DE</p>{% if x %}<p>Only sometimes</p>{% endif %}
    """
    assert untranslated_text(template) == ["Claim the next one", "Search", "Only sometimes"]
