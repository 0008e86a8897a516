"""Accuracy report rows from counts: pure functions, no I/O.

Whoever produces the counts (the verdicts table today, a scheduled rollup later) turns them
into rows here, so the answers cannot drift apart.
"""

from __future__ import annotations

from datetime import date, timedelta

from shared.schemas.reports import AccuracyGroup, AccuracyRow, ReportLanguage
from shared.stats.intervals import Z_95, wilson_interval

# DESIGN.md: every accuracy is shown with its Wilson score interval at 95 %.
WILSON_Z = Z_95
DEFAULT_WINDOW_DAYS = 30
# The key under which group_by=policy counts a decision that carries no policy label.
NO_POLICY_KEY = "(none)"

ROW_FIELDS: tuple[str, ...] = tuple(AccuracyRow.model_fields)

_KEY_HEADERS: dict[ReportLanguage, dict[AccuracyGroup, str]] = {
    "en": {
        "moderator": "Moderator",
        "queue": "Queue",
        "market": "Market",
        "policy": "Policy",
        "day": "Day",
    },
    "de": {
        "moderator": "Moderator",
        "queue": "Warteschlange",
        "market": "Markt",
        "policy": "Richtlinie",
        "day": "Tag",
    },
}
_VALUE_HEADERS: dict[ReportLanguage, tuple[str, ...]] = {
    "en": ("Audited", "Correct", "Accuracy", "95 % CI low", "95 % CI high"),
    "de": ("Geprüft", "Korrekt", "Genauigkeit", "95-%-KI untere Grenze", "95-%-KI obere Grenze"),
}


def accuracy_row(key: str, *, audited: int, correct: int) -> AccuracyRow:
    """A report row from a slice's counts: accuracy and its Wilson 95 % interval.

    ValueError for an empty slice (no verdicts) or impossible counts.
    """
    low, high = wilson_interval(correct, audited, z=WILSON_Z)
    return AccuracyRow(
        key=key,
        audited=audited,
        correct=correct,
        accuracy=correct / audited,
        ci_low=low,
        ci_high=high,
    )


def report_window(day_from: date | None, day_to: date | None, *, today: date) -> tuple[date, date]:
    """The inclusive days a report counts: by default the 30 days ending today.

    ``to`` defaults to ``today`` and ``from`` to ``to`` minus 29 days, so giving only ``to``
    still means 30 days. ValueError when ``from`` ends up after ``to``.
    """
    last = day_to if day_to is not None else today
    first = day_from if day_from is not None else last - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    if first > last:
        raise ValueError(f"'from' ({first}) is after 'to' ({last})")
    return first, last


def column_headers(group_by: AccuracyGroup, lang: ReportLanguage) -> tuple[str, ...]:
    """Human headers for the columns of ``ROW_FIELDS``, in that order, in ``lang``."""
    return (_KEY_HEADERS[lang][group_by], *_VALUE_HEADERS[lang])
