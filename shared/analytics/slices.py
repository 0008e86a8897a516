"""From rollup sums to report rows: slice keys, rates with their Wilson intervals, notes,
and the About sheet of a report file.

Pure functions, no I/O. A rate over an empty denominator is null (and the row says why in
its ``note``), never a division by zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from shared.analytics.formatting import format_date, format_number
from shared.analytics.queries import KeyPart
from shared.analytics.schemas import ALL_KEY, AnalyticsFilters, AnalyticsReport
from shared.schemas.reports import ReportLanguage
from shared.stats.intervals import wilson_interval


@dataclass(frozen=True, slots=True)
class Rate:
    """``successes / trials`` with its Wilson 95 % interval; all None when undefined."""

    value: float | None
    ci_low: float | None
    ci_high: float | None

    def fields(self, name: str) -> dict[str, float | None]:
        """The row fields ``name``, ``name_ci_low`` and ``name_ci_high``."""
        return {name: self.value, f"{name}_ci_low": self.ci_low, f"{name}_ci_high": self.ci_high}


NO_RATE = Rate(None, None, None)


def rate(successes: int, trials: int) -> Rate:
    """The proportion ``successes / trials`` with its Wilson 95 % interval.

    Undefined (all None) without trials, and also when the counts are impossible
    (``successes > trials``, which counts of different origins could give while one of them
    lags): a report shows nothing rather than a number outside [0, 1].
    """
    if trials <= 0 or not 0 <= successes <= trials:
        return NO_RATE
    low, high = wilson_interval(successes, trials)
    return Rate(successes / trials, low, high)


def slice_key(parts: tuple[KeyPart, ...]) -> str:
    """The row key of a rollup group: its one key part (a day as ISO 8601), or ``(all)``."""
    if not parts:
        return ALL_KEY
    return "/".join(part.isoformat() if isinstance(part, date) else part for part in parts)


def mean(total: int, count: int, *, scale: float = 1.0) -> float | None:
    """``total / count / scale``, None without anything counted."""
    if count <= 0:
        return None
    return total / count / scale


def join_notes(notes: Iterable[str]) -> str | None:
    """The reasons a row has nulls, in one sentence list; None when there are none."""
    given = [note for note in notes if note]
    return "; ".join(given) if given else None


_ABOUT_LABELS: Mapping[ReportLanguage, Mapping[str, str]] = {
    "en": {
        "period": "Period (market-local days)",
        "market": "Market",
        "queue": "Queue",
        "moderator_id": "Moderator",
        "policy": "Policy",
        "min_audits": "Minimum audits per slice",
        "all": "all",
        "to": "to",
        "intervals": "Intervals",
        "wilson": "Wilson score interval at 95 % (z = 1.959964) for every rate",
    },
    "de": {
        "period": "Zeitraum (Markttage)",
        "market": "Markt",
        "queue": "Warteschlange",
        "moderator_id": "Moderator",
        "policy": "Richtlinie",
        "min_audits": "Mindestzahl Prüfungen je Ausschnitt",
        "all": "alle",
        "to": "bis",
        "intervals": "Intervalle",
        "wilson": "Wilson-Score-Intervall zu 95 % (z = 1,959964) für jede Quote",
    },
}


def about_rows(
    query: AnalyticsFilters,
    report: AnalyticsReport,
    *,
    method: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The About sheet of a report file, in ``query.lang``: the days and filters counted,
    then ``method`` (label, text pairs the report adds), then how intervals are computed."""
    lang = query.lang
    labels = _ABOUT_LABELS[lang]
    period = (
        f"{format_date(report.day_from, lang)} {labels['to']} {format_date(report.day_to, lang)}"
    )
    rows = [(labels["period"], period)]
    for name in ("market", "queue", "moderator_id", "policy"):
        value = getattr(query, name)
        rows.append((labels[name], labels["all"] if value is None else str(value)))
    rows.append((labels["min_audits"], format_number(query.min_audits, lang)))
    rows.extend(method)
    rows.append((labels["intervals"], labels["wilson"]))
    return rows


def chart_context(query: AnalyticsFilters, report: AnalyticsReport) -> str:
    """A chart's subtitle in ``query.lang``: the days counted and the filters that narrow
    them ("Nov 1, 2026 to Nov 30, 2026 · Market: DE"); filters not given are left out."""
    lang = query.lang
    labels = _ABOUT_LABELS[lang]
    parts = [
        f"{format_date(report.day_from, lang)} {labels['to']} {format_date(report.day_to, lang)}"
    ]
    for name in ("market", "queue", "moderator_id", "policy"):
        value = getattr(query, name)
        if value is not None:
            parts.append(f"{labels[name]}: {value}")
    return " · ".join(parts)
