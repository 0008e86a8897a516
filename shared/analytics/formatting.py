"""Numbers, percentages, dates and report periods as people read them, in English or German.

Everything a person reads in a report file (XLSX text cells, PPTX slides, PNG chart labels)
or a notifier message (chat, e-mail) goes through these functions, so that German gets
decimal commas, its own date order and month names. CSV, JSON and webhook bodies stay
machine-readable and never use them. Messages show moments in their channel's time zone
(`format_datetime`).

Babel does the formatting from the CLDR data of each language: German writes 95,3 % with a
non-breaking space (U+00A0) between number and sign, as CLDR prescribes (no line break
between them), English 95.3%. Pure functions, safe to call from any thread.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.dates import format_interval, format_skeleton, format_time
from babel.numbers import NumberPattern, parse_pattern

from shared.schemas.reports import ReportLanguage

PeriodInterval = Literal["day", "week", "month"]
PERIOD_INTERVALS: tuple[PeriodInterval, ...] = get_args(PeriodInterval)
LANGUAGES: tuple[ReportLanguage, ...] = get_args(ReportLanguage)


@cache
def _locale(lang: ReportLanguage) -> Locale:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    return Locale.parse(lang)


@lru_cache(maxsize=64)
def _pattern(
    lang: ReportLanguage, kind: Literal["decimal", "percent"], digits: int
) -> NumberPattern:
    """The language's own decimal or percent pattern with exactly ``digits`` decimals.

    A fresh parse, changed before it is shared and never afterwards (so the cached object is
    safe to use from several threads).
    """
    locale = _locale(lang)
    formats = locale.decimal_formats if kind == "decimal" else locale.percent_formats
    pattern = parse_pattern(formats[None].pattern)
    pattern.frac_prec = (digits, digits)
    return pattern


def _check_digits(digits: int) -> None:
    if not 0 <= digits <= 10:
        raise ValueError("digits must be between 0 and 10")


def format_number(value: float, lang: ReportLanguage, *, digits: int | None = None) -> str:
    """``value`` with the language's grouping and decimal signs: 1,234.5 (en), 1.234,5 (de).

    ``digits`` fixes the number of decimals (rounded half to even, like Babel); None keeps
    whole numbers whole and shows a fraction with up to three decimals.
    """
    if digits is None:
        return str(_locale(lang).decimal_formats[None].apply(value, _locale(lang)))
    _check_digits(digits)
    return str(_pattern(lang, "decimal", digits).apply(value, _locale(lang)))


def format_percent(value: float, lang: ReportLanguage, *, digits: int = 1) -> str:
    """A share (0.953) as a percentage with ``digits`` decimals: 95.3% (en), 95,3 % (de).

    The German space is a non-breaking one (U+00A0), from CLDR.
    """
    _check_digits(digits)
    return str(_pattern(lang, "percent", digits).apply(value, _locale(lang)))


def format_date(day: date, lang: ReportLanguage) -> str:
    """A day in the language's medium form: Mar 2, 2026 (en), 02.03.2026 (de)."""
    return babel_format_date(day, format="medium", locale=_locale(lang))


def format_period(start: date, interval: PeriodInterval, lang: ReportLanguage) -> str:
    """The report period that begins on ``start``, named for people.

    day: the day (see `format_date`); week: its seven days as a range with an en dash,
    "Mar 2 - 8, 2026" (en), "2.-8. März 2026" (de), whichever weekday it starts on; month:
    March 2026 (en), März 2026 (de).
    """
    locale = _locale(lang)
    if interval == "day":
        return format_date(start, lang)
    if interval == "week":
        return format_interval(start, start + timedelta(days=6), "yMMMd", locale=locale)
    if interval == "month":
        return format_skeleton("yMMMM", start, locale=locale)
    raise ValueError(
        f"unknown interval {interval!r}; expected one of {', '.join(PERIOD_INTERVALS)}"
    )


# Below this, a p-value is written as a bound ("p < 0.001"): more digits claim a precision
# the tests behind it do not have.
SMALLEST_P_VALUE_SHOWN = 0.001


def format_p_value(p: float, lang: ReportLanguage) -> str:
    """A test's p-value for people: p = 0.034 (en), p = 0,034 (de); p < 0.001 below that."""
    if p < SMALLEST_P_VALUE_SHOWN:
        return f"p < {format_number(SMALLEST_P_VALUE_SHOWN, lang, digits=3)}"
    return f"p = {format_number(p, lang, digits=3)}"


@cache
def time_zone_of(name: str) -> tzinfo:
    """The IANA time zone ``name`` (Europe/Berlin); UTC for a name that is not one.

    Lenient on purpose: a message is never lost over its channel's time zone (channels
    validate it when they are written).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_datetime(moment: datetime, lang: ReportLanguage, *, time_zone: str = "UTC") -> str:
    """A moment in ``time_zone``, to the minute, with the zone: Nov 27, 2026, 11:00 AM UTC
    (en), 27.11.2026, 11:00 MEZ (de).

    The zone is its short name where the language has one (UTC, EST, MEZ), else its offset
    from GMT (GMT+01:00). A naive ``moment`` is taken as UTC.
    """
    locale = _locale(lang)
    zone = time_zone_of(time_zone)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    day = babel_format_date(local, format="medium", locale=locale)
    time = format_time(local, format="short", tzinfo=zone, locale=locale)
    name = format_time(local, format="z", tzinfo=zone, locale=locale)
    if not name.isalpha():
        name = format_time(local, format="ZZZZ", tzinfo=zone, locale=locale)
    glue = str(locale.datetime_formats["medium"])
    return glue.replace("{1}", day).replace("{0}", f"{time} {name}")


def format_local_date(moment: datetime, lang: ReportLanguage, *, time_zone: str = "UTC") -> str:
    """The day ``moment`` falls on in ``time_zone``, in the language's medium form."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_date(moment.astimezone(time_zone_of(time_zone)).date(), lang)


def language_name(code: str, lang: ReportLanguage) -> str:
    """The name of the language ``code`` in ``lang``: Englisch (de), German (en); the code
    itself when CLDR does not know it."""
    try:
        name = Locale.parse(code).get_display_name(_locale(lang))
    except (ValueError, TypeError, LookupError):
        return code
    return name or code
