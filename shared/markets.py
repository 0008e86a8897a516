"""Defaults for a market seen for the first time: its language and its time zone."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

# The main language a QA team of that market works in; "en" where we have no better answer.
_LANGUAGES = {
    "AT": "de", "BE": "nl", "BG": "bg", "BR": "pt", "CH": "de", "CZ": "cs", "DE": "de",
    "DK": "da", "EE": "et", "ES": "es", "FI": "fi", "FR": "fr", "GR": "el", "HR": "hr",
    "HU": "hu", "IT": "it", "JP": "ja", "KR": "ko", "LI": "de", "LT": "lt", "LU": "fr",
    "LV": "lv", "MX": "es", "NL": "nl", "NO": "no", "PL": "pl", "PT": "pt", "RO": "ro",
    "RU": "ru", "SE": "sv", "SI": "sl", "SK": "sk", "TR": "tr", "UA": "uk", "CN": "zh",
    "TW": "zh", "AR": "es", "CL": "es", "CO": "es",
}  # fmt: skip


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """The first (principal) zone listed for each country in the IANA zone.tab."""
    zones: dict[str, str] = {}
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        country, _coordinates, zone, *_ = line.split("\t")
        zones.setdefault(country, zone)
    return zones


def default_time_zone(market: str) -> str:
    """The market's principal IANA time zone (``Europe/Berlin`` for DE); UTC if unknown."""
    return _country_zones().get(market.upper(), "UTC")


def default_language(market: str) -> str:
    """The market's default working language (``de`` for DE, AT and CH)."""
    return _LANGUAGES.get(market.upper(), "en")
