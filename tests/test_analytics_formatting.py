"""Numbers, percentages, dates and periods for people, in English and German (Babel, CLDR).

The expected strings are CLDR's conventions: German groups thousands with a dot, writes a
decimal comma and a non-breaking space (U+00A0) before the percent sign, and dates as
day.month.year; English the other way round.
"""

from __future__ import annotations

from datetime import date

import pytest

from shared.analytics.formatting import (
    format_date,
    format_number,
    format_percent,
    format_period,
)

pytestmark = pytest.mark.no_db

NBSP = "\u00a0"
THIN = "\u2009"
DASH = "\u2013"  # en dash


def test_percent_uses_the_languages_decimal_sign_and_spacing() -> None:
    assert format_percent(0.953, "en") == "95.3%"
    assert format_percent(0.953, "de") == f"95,3{NBSP}%"
    assert format_percent(0.953, "de").replace(NBSP, " ") == "95,3 %"


def test_percent_digits_are_fixed_and_rounded() -> None:
    assert format_percent(1, "en") == "100.0%"
    assert format_percent(0.9, "de", digits=2) == f"90,00{NBSP}%"
    assert format_percent(0.12345, "en", digits=0) == "12%"
    assert format_percent(-0.021, "de") == f"-2,1{NBSP}%"
    with pytest.raises(ValueError, match="digits"):
        format_percent(0.5, "en", digits=-1)


def test_numbers_group_thousands_and_use_the_decimal_sign() -> None:
    assert format_number(1234567.891, "en", digits=2) == "1,234,567.89"
    assert format_number(1234567.891, "de", digits=2) == "1.234.567,89"
    assert format_number(1234, "de") == "1.234"
    assert format_number(0.5, "de") == "0,5"
    assert format_number(2, "en", digits=1) == "2.0"


def test_dates_follow_the_language() -> None:
    assert format_date(date(2026, 3, 2), "en") == "Mar 2, 2026"
    assert format_date(date(2026, 3, 2), "de") == "02.03.2026"


@pytest.mark.parametrize(
    ("interval", "lang", "expected"),
    [
        ("day", "en", "Mar 2, 2026"),
        ("day", "de", "02.03.2026"),
        ("week", "en", f"Mar 2{THIN}{DASH}{THIN}8, 2026"),
        ("week", "de", f"2.{DASH}8. März 2026"),
        ("month", "en", "March 2026"),
        ("month", "de", "März 2026"),
    ],
)
def test_periods_name_their_days(interval: str, lang: str, expected: str) -> None:
    assert format_period(date(2026, 3, 2), interval, lang) == expected  # type: ignore[arg-type]  # the Literal is what is tested


def test_a_week_across_two_months_names_both() -> None:
    assert (
        format_period(date(2026, 3, 30), "week", "de") == f"30. März{THIN}{DASH}{THIN}5. Apr. 2026"
    )


def test_unknown_language_or_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        format_percent(0.5, "fr")  # type: ignore[arg-type]  # refused at run time too
    with pytest.raises(ValueError, match="interval"):
        format_period(date(2026, 3, 2), "year", "en")  # type: ignore[arg-type]  # likewise
