"""The trend report: accuracy per day, week or month, each period tested against the one before.

``GET /v1/reports/trend`` and the briefing call ``trend_report``. Every number is a sum of
``quality_rollups`` rows (DESIGN.md "Analytics reports"): per period the audited and correct
verdicts, the accuracy with its Wilson 95 % interval, and against the previous period the
change in accuracy and the pooled two-sided two-proportion z-test (DESIGN.md "Statistics";
``shared.stats.intervals.two_proportion_z_test``), ``significant`` when p < ``alpha``.

Every period of the window is a row, an empty one included (audited 0, nulls and a note), so
a chart has no silent gaps. Weeks start on Monday (ISO 8601), months on the 1st; a period the
window cuts (its first or last week or month) counts only the window's days, and its note
says which.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.exports import TableSheet, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.formatting import format_percent
from shared.analytics.queries import sum_quality_rollups
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import TrendInterval, TrendQuery, TrendReport, TrendRow
from shared.analytics.slices import about_rows, chart_context, join_notes, rate
from shared.reports.service import Viewer
from shared.schemas.reports import ReportLanguage
from shared.stats.intervals import two_proportion_z_test

NO_AUDITS_NOTE = "no audits in this period"
FIRST_PERIOD_NOTE = "first period: nothing before it to compare with"
PREVIOUS_EMPTY_NOTE = "no audits in the previous period: nothing to compare with"

_SHEET_TITLES: Mapping[ReportLanguage, str] = {"en": "Trend", "de": "Verlauf"}
_INTERVAL_NAMES: Mapping[ReportLanguage, Mapping[TrendInterval, str]] = {
    "en": {"day": "day", "week": "week (Monday to Sunday)", "month": "calendar month"},
    "de": {"day": "Tag", "week": "Woche (Montag bis Sonntag)", "month": "Kalendermonat"},
}
_METHOD_LABELS: Mapping[ReportLanguage, tuple[str, str, str]] = {
    "en": ("Period", "Significance level", "Test"),
    "de": ("Periode", "Signifikanzniveau", "Test"),
}
_METHOD: Mapping[ReportLanguage, str] = {
    "en": (
        "Accuracy = correct / audited (verdicts overturned on dispute count as correct, golden "
        "audits never count). Each period is compared with the one before by the pooled "
        "two-sided two-proportion z-test, z = (p1 - p0) / sqrt(p(1 - p)(1/n1 + 1/n0)); "
        "'Significant' means p < the significance level. A period the window cuts counts only "
        "the window's days (see its note)."
    ),
    "de": (
        "Genauigkeit = korrekt / geprüft (im Streitfall aufgehobene Urteile zählen als korrekt, "
        "Golden-Audits nie). Jede Periode wird mit der vorigen durch den gepoolten zweiseitigen "
        "Zwei-Stichproben-z-Test für Anteile verglichen, z = (p1 - p0) / "
        "sqrt(p(1 - p)(1/n1 + 1/n0)); 'Signifikant' heißt p < Signifikanzniveau. Eine vom "
        "Zeitraum angeschnittene Periode zählt nur dessen Tage (siehe ihren Hinweis)."
    ),
}


def period_start(day: date, interval: TrendInterval) -> date:
    """The first day of the period ``day`` falls in: itself, its ISO week's Monday, or the 1st
    of its month (what ``date_trunc`` gives in ``shared.analytics.queries``)."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def next_period_start(start: date, interval: TrendInterval) -> date:
    """The first day of the period after the one starting on ``start``."""
    if interval == "week":
        return start + timedelta(days=7)
    if interval == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def periods(day_from: date, day_to: date, interval: TrendInterval) -> Iterator[date]:
    """The start of every period that overlaps ``day_from``..``day_to``, in order."""
    start = period_start(day_from, interval)
    while start <= day_to:
        yield start
        start = next_period_start(start, interval)


def _cut_note(start: date, interval: TrendInterval, scope: AnalyticsScope) -> str | None:
    end = next_period_start(start, interval) - timedelta(days=1)
    first, last = max(start, scope.day_from), min(end, scope.day_to)
    if (first, last) == (start, end):
        return None
    return f"partial {interval}: counts {first.isoformat()} to {last.isoformat()} only"


def trend_rows(
    counts: Mapping[date, tuple[int, int]],
    *,
    scope: AnalyticsScope,
    interval: TrendInterval,
    alpha: float,
    min_audits: int,
) -> list[TrendRow]:
    """One row per period of ``scope``'s window from (audited, correct) per period start
    (a period missing from ``counts`` had no audits). Pure."""
    rows: list[TrendRow] = []
    previous: tuple[int, int] | None = None
    for start in periods(scope.day_from, scope.day_to, interval):
        audited, correct = counts.get(start, (0, 0))
        accuracy = rate(correct, audited)
        change = p_value = None
        notes = [_cut_note(start, interval, scope) or ""]
        if audited == 0:
            notes.append(NO_AUDITS_NOTE)
        elif previous is None:
            notes.append(FIRST_PERIOD_NOTE)
        elif previous[0] == 0:
            notes.append(PREVIOUS_EMPTY_NOTE)
        elif accuracy.value is not None:
            previous_audited, previous_correct = previous
            change = accuracy.value - previous_correct / previous_audited
            _, p_value = two_proportion_z_test(correct, audited, previous_correct, previous_audited)
        rows.append(
            TrendRow(
                period_start=start,
                audited=audited,
                correct=correct,
                accuracy=accuracy.value,
                ci_low=accuracy.ci_low,
                ci_high=accuracy.ci_high,
                change=change,
                p_value=p_value,
                significant=p_value is not None and p_value < alpha,
                small_sample=audited < min_audits,
                note=join_notes(notes),
            )
        )
        previous = (audited, correct)
    return rows


async def trend_report(
    session: AsyncSession,
    *,
    query: TrendQuery,
    viewer: Viewer,
    max_days: int,
    today: date,
) -> TrendReport:
    """The trend ``viewer`` asked for, within its reach (403 beyond, 422 for a bad window),
    counting every verdict committed before it was asked."""
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    await refresh_rollups(session)
    sums = await sum_quality_rollups(
        session, scope=scope, group_by=[query.interval], counters=["audited", "correct"]
    )
    counts: dict[date, tuple[int, int]] = {}
    for group in sums:
        start = group.key[0]
        assert isinstance(start, date)  # grouped by a period: the key is its first day
        counts[start] = (group["audited"], group["correct"])
    return TrendReport(
        day_from=scope.day_from,
        day_to=scope.day_to,
        rows=trend_rows(
            counts,
            scope=scope,
            interval=query.interval,
            alpha=query.alpha,
            min_audits=query.min_audits,
        ),
        interval=query.interval,
        alpha=query.alpha,
    )


def trend_csv(report: TrendReport) -> bytes:
    """The rows as CSV (header = the JSON row keys)."""
    return rows_csv(report.rows, TrendRow)


def trend_xlsx(report: TrendReport, *, query: TrendQuery) -> bytes:
    """The rows on a first sheet (headers in ``query.lang``), then the About sheet: the days
    and filters counted, the period, the significance level and the test."""
    lang = query.lang
    period_label, alpha_label, test_label = _METHOD_LABELS[lang]
    method = [
        (period_label, _INTERVAL_NAMES[lang][report.interval]),
        (alpha_label, format_percent(report.alpha, lang, digits=1)),
        (test_label, _METHOD[lang]),
    ]
    return rows_xlsx(
        [TableSheet(title=_SHEET_TITLES[lang], rows=report.rows, row_type=TrendRow)],
        about=about_rows(query, report, method=method),
        lang=lang,
    )


def trend_chart(report: TrendReport, *, query: TrendQuery) -> bytes:
    """The trend as a PNG chart, labelled in ``query.lang``."""
    # matplotlib takes seconds to import: only a PNG request pays for it, not every
    # process that imports the reports (the API, the workers) at start-up.
    from shared.analytics.charts import trend_png

    return trend_png(
        report.rows,
        lang=query.lang,
        title_context=chart_context(query, report),
        interval=report.interval,
    )
