"""The rates report: disputes, overturns, appeal reversals, audit coverage and timings.

``GET /v1/reports/rates`` and anything else that needs these numbers (escalation rules on
``dispute_rate`` / ``overturn_rate``) call ``rates_rows`` with a scope, or ``rates_report``
with a viewer's query; no HTTP involved. Every number is a sum of ``quality_rollups`` rows:

- ``audit_coverage`` = audited / decisions (non-golden verdicts over decisions received);
- ``dispute_rate`` = disputed / judged_incorrect (the verdicts that opened a disagreement);
- ``overturn_rate`` = overturned / disputed;
- ``appeal_overturn_rate`` = appeal_reversed / appealed (appeal outcomes of the platform);
- each with its Wilson 95 % interval; null with a ``note`` when its denominator is 0;
- ``mean_hours_to_audit`` = audit_delay_seconds_sum / audited / 3600;
- ``mean_handling_seconds`` = handling_time_ms_sum / handling_time_count / 1000.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.exports import TableSheet, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.queries import Dimension, sum_quality_rollups
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import ALL_KEY, RatesQuery, RatesReport, RatesRow, SliceGroup
from shared.analytics.slices import about_rows, join_notes, mean, rate, slice_key
from shared.reports.service import Viewer
from shared.schemas.reports import ReportLanguage

RATES_COUNTERS: tuple[str, ...] = (
    "decisions",
    "audited",
    "judged_incorrect",
    "disputed",
    "overturned",
    "appealed",
    "appeal_reversed",
    "audit_delay_seconds_sum",
    "handling_time_ms_sum",
    "handling_time_count",
)


def rates_row(key: str, counts: Mapping[str, int], *, min_audits: int) -> RatesRow:
    """One slice's row from its summed counters (``RATES_COUNTERS``)."""
    decisions, audited = counts["decisions"], counts["audited"]
    judged_incorrect, disputed = counts["judged_incorrect"], counts["disputed"]
    appealed = counts["appealed"]
    coverage = rate(audited, decisions)
    notes: list[str] = []
    if decisions == 0:
        notes.append("no decisions received: no audit coverage")
    elif coverage.value is None:
        # Under a policy a verdict also counts where the auditor expected the policy on a
        # decision that did not carry it, so there may be more audits than decisions.
        notes.append("more audits than decisions counted: no audit coverage")
    if audited == 0:
        notes.append("no audits: no dispute, overturn rate or time to audit")
    elif judged_incorrect == 0:
        notes.append("no verdict judged incorrect: no dispute or overturn rate")
    elif disputed == 0:
        notes.append("nothing disputed: no overturn rate")
    if appealed == 0:
        notes.append("no appeal outcomes: no appeal overturn rate")
    if counts["handling_time_count"] == 0:
        notes.append("no handling times reported")
    return RatesRow(
        key=key,
        decisions=decisions,
        audited=audited,
        **coverage.fields("audit_coverage"),
        judged_incorrect=judged_incorrect,
        disputed=disputed,
        **rate(disputed, judged_incorrect).fields("dispute_rate"),
        overturned=counts["overturned"],
        **rate(counts["overturned"], disputed).fields("overturn_rate"),
        appealed=appealed,
        appeal_reversed=counts["appeal_reversed"],
        **rate(counts["appeal_reversed"], appealed).fields("appeal_overturn_rate"),
        mean_hours_to_audit=mean(counts["audit_delay_seconds_sum"], audited, scale=3600.0),
        mean_handling_seconds=mean(
            counts["handling_time_ms_sum"], counts["handling_time_count"], scale=1000.0
        ),
        small_sample=audited < min_audits,
        note=join_notes(notes),
    )


async def rates_rows(
    session: AsyncSession,
    *,
    scope: AnalyticsScope,
    group_by: SliceGroup | None,
    min_audits: int,
) -> list[RatesRow]:
    """The rate rows of ``scope``: one per slice of ``group_by`` that has rollup rows (by
    key), or one ``(all)`` row (also when nothing was counted: zeros, nulls and a note)."""
    dimensions: tuple[Dimension, ...] = (group_by,) if group_by is not None else ()
    sums = await sum_quality_rollups(
        session, scope=scope, group_by=dimensions, counters=RATES_COUNTERS
    )
    return [rates_row(slice_key(group.key), group.counts, min_audits=min_audits) for group in sums]


async def rates_report(
    session: AsyncSession,
    *,
    query: RatesQuery,
    viewer: Viewer,
    max_days: int,
    today: date,
) -> RatesReport:
    """The rates report ``viewer`` asked for, within its reach (403 beyond, 422 for a bad
    window), counting every verdict and appeal committed before it was asked."""
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    await refresh_rollups(session)
    rows = await rates_rows(
        session, scope=scope, group_by=query.group_by, min_audits=query.min_audits
    )
    return RatesReport(rows=rows, day_from=scope.day_from, day_to=scope.day_to)


_SHEET_TITLE: Mapping[ReportLanguage, str] = {"en": "Rates", "de": "Quoten"}
_METHOD: Mapping[ReportLanguage, tuple[tuple[str, str], ...]] = {
    "en": (
        ("Grouped by", "{group_by}"),
        (
            "Rates",
            "audit coverage = audited / decisions; dispute rate = disputed / judged incorrect; "
            "overturn rate = overturned / disputed; appeal overturn rate = reversed on appeal "
            "/ appealed",
        ),
        (
            "Times",
            "hours from the decision to its verdict, averaged over the audits; handling time "
            "as the platform reported it, averaged over the decisions that reported one",
        ),
    ),
    "de": (
        ("Gruppiert nach", "{group_by}"),
        (
            "Quoten",
            "Prüfabdeckung = geprüft / Entscheidungen; Anfechtungsquote = angefochten / als "
            "fehlerhaft bewertet; Aufhebungsquote = aufgehoben / angefochten; "
            "Beschwerde-Änderungsquote = auf Beschwerde geändert / Beschwerden",
        ),
        (
            "Zeiten",
            "Stunden von der Entscheidung bis zum Urteil, gemittelt über die Prüfungen; "
            "Bearbeitungszeit wie von der Plattform gemeldet, gemittelt über die "
            "Entscheidungen, die eine meldeten",
        ),
    ),
}


def rates_csv(report: RatesReport) -> bytes:
    """The rows as CSV (header = the JSON row keys)."""
    return rows_csv(report.rows, RatesRow)


def rates_xlsx(report: RatesReport, query: RatesQuery) -> bytes:
    """The rows as a workbook in ``query.lang``, then the About sheet (filters, method)."""
    lang = query.lang
    method = [
        (label, text.format(group_by=query.group_by or ALL_KEY)) for label, text in _METHOD[lang]
    ]
    return rows_xlsx(
        [TableSheet(title=_SHEET_TITLE[lang], rows=report.rows, row_type=RatesRow)],
        about=about_rows(query, report, method=method),
        lang=lang,
    )
