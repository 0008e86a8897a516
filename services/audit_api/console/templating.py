"""Rendering console pages: one Jinja2 environment per language (gettext catalogs from
``locales/<lang>.po``), Babel for dates and numbers, and the headers every page carries."""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.audit_api.console.navigation import navigation_for
from services.audit_api.console.session import LANGUAGE_COOKIE, ConsoleContext
from shared.analytics.formatting import (
    format_date,
    format_datetime,
    format_number,
    format_percent,
)

CONSOLE_DIR = Path(__file__).parent
TEMPLATES_DIR = CONSOLE_DIR / "templates"
STATIC_DIR = CONSOLE_DIR / "static"
LOCALES_DIR = CONSOLE_DIR / "locales"
CONSOLE_LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"

# Scripts and styles only from this site, no inline script or style, no framing, forms post
# only here. Chart.js sizes its canvases through the CSSOM, which style-src does not govern.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _translations(language: str) -> NullTranslations:
    """The language's catalog: every ``locales/<language>/*.po`` (one per console area)."""
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    merged = Catalog(locale=language)
    for path in sorted((LOCALES_DIR / language).glob("*.po")):
        with path.open("rb") as po_file:
            for message in read_po(po_file, locale=language):
                if message.id and message.string:
                    merged[message.id] = message
    buffer = io.BytesIO()
    write_mo(buffer, merged)
    buffer.seek(0)
    return Translations(fp=buffer)


@functools.cache
def environment(language: str) -> Environment:
    """The template environment of one console language (built once)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(_translations(language), newstyle=True)  # type: ignore[attr-defined]
    lang: Any = language
    env.filters["number"] = lambda value, digits=None: format_number(value, lang, digits=digits)
    env.filters["percent"] = lambda value, digits=1: format_percent(value, lang, digits=digits)
    env.filters["day"] = lambda value: format_date(value, lang) if isinstance(value, date) else ""
    env.filters["moment"] = lambda value, time_zone="UTC": (
        format_datetime(value, lang, time_zone=time_zone) if isinstance(value, datetime) else ""
    )
    env.globals["language"] = language
    env.globals["languages"] = CONSOLE_LANGUAGES
    return env


def negotiated_language(request: Request) -> str:
    """Before sign-in: the language cookie, else the browser's Accept-Language."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in CONSOLE_LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in CONSOLE_LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def render(
    request: Request,
    template: str,
    *,
    context: ConsoleContext | None,
    language: str | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A console page (or, for an HTMX request, a fragment): in the signed-in person's
    language (else ``language``, else the browser's), with their menu and CSRF token."""
    language = language or (context.language if context else negotiated_language(request))
    env = environment(language if language in CONSOLE_LANGUAGES else DEFAULT_LANGUAGE)
    body = env.get_template(template).render(
        request=request,
        context=context,
        navigation=navigation_for(context.role) if context else [],
        htmx=request.headers.get("hx-request") == "true",
        **values,
    )
    return HTMLResponse(body, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})
