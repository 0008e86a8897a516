"""The error report: what went wrong, how badly, and the severity-weighted quality score.

``GET /v1/reports/errors`` and anything else that needs the numbers (escalation rules, the
briefing) call ``errors_rows`` with a scope, or ``errors_report`` with a viewer's query. Every
number is a sum of ``quality_rollups`` rows (DESIGN.md "Analytics reports"):

- ``incorrect`` = audited - correct: verdicts still incorrect (an overturned one is correct);
  ``error_rate`` = incorrect / audited with its Wilson 95 % interval;
- the still-incorrect verdicts by error type and by severity (every incorrect verdict has one
  of each, so each group adds up to ``incorrect``);
- ``quality_score`` = 1 - sum(weight * errors) / (max weight * audited), weights from
  ``Settings.severity_weights`` (default critical 5, major 3, minor 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.exports import TableSheet, column_label, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.formatting import format_number
from shared.analytics.queries import Dimension, sum_quality_rollups
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import (
    ALL_KEY,
    ErrorsQuery,
    ErrorsReport,
    ErrorsRow,
    SliceGroup,
)
from shared.analytics.slices import about_rows, join_notes, rate, slice_key
from shared.reports.service import Viewer
from shared.schemas.reports import ReportLanguage
from shared.stats.scores import SEVERITIES, check_severity_weights, quality_score

ERROR_TYPES: tuple[str, ...] = (
    "missed_violation",
    "over_enforcement",
    "wrong_policy",
    "wrong_action",
)
ERRORS_COUNTERS: tuple[str, ...] = ("audited", "correct", *ERROR_TYPES, *SEVERITIES)

NO_AUDITS_NOTE = "no audits in this slice"


def errors_row(
    key: str, counts: Mapping[str, int], *, min_audits: int, severity_weights: Mapping[str, float]
) -> ErrorsRow:
    """One slice's row from its summed counters (``ERRORS_COUNTERS``)."""
    audited = counts["audited"]
    incorrect = max(0, audited - counts["correct"])
    severities = {severity: counts[severity] for severity in SEVERITIES}
    return ErrorsRow(
        key=key,
        audited=audited,
        incorrect=incorrect,
        **rate(incorrect, audited).fields("error_rate"),
        **{error_type: counts[error_type] for error_type in ERROR_TYPES},
        **severities,
        quality_score=quality_score(audited=audited, weights=severity_weights, **severities),
        small_sample=audited < min_audits,
        note=join_notes([NO_AUDITS_NOTE if audited == 0 else ""]),
    )


async def errors_rows(
    session: AsyncSession,
    *,
    scope: AnalyticsScope,
    group_by: SliceGroup | None,
    min_audits: int,
    severity_weights: Mapping[str, float],
) -> list[ErrorsRow]:
    """The error rows of ``scope``: one per slice of ``group_by`` that has rollup rows (by
    key), or one ``(all)`` row (also when nothing was counted: zeros, nulls and a note)."""
    dimensions: tuple[Dimension, ...] = (group_by,) if group_by is not None else ()
    sums = await sum_quality_rollups(
        session, scope=scope, group_by=dimensions, counters=ERRORS_COUNTERS
    )
    return [
        errors_row(
            slice_key(group.key),
            group.counts,
            min_audits=min_audits,
            severity_weights=severity_weights,
        )
        for group in sums
    ]


async def errors_report(
    session: AsyncSession,
    *,
    query: ErrorsQuery,
    viewer: Viewer,
    max_days: int,
    today: date,
    severity_weights: Mapping[str, float],
) -> ErrorsReport:
    """The error report ``viewer`` asked for, within its reach (403 beyond, 422 for a bad
    window), counting every verdict committed before it was asked."""
    weights = check_severity_weights(severity_weights)
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    await refresh_rollups(session)
    rows = await errors_rows(
        session,
        scope=scope,
        group_by=query.group_by,
        min_audits=query.min_audits,
        severity_weights=weights,
    )
    return ErrorsReport(
        rows=rows, severity_weights=weights, day_from=scope.day_from, day_to=scope.day_to
    )


_SHEET_TITLE: Mapping[ReportLanguage, str] = {"en": "Errors", "de": "Fehler"}
_METHOD: Mapping[ReportLanguage, tuple[str, str, str]] = {
    "en": (
        "Quality score",
        "1 - sum(weight x errors) / (max weight x audited); weights: critical {critical}, "
        "major {major}, minor {minor}",
        "Errors are verdicts still incorrect (overturned ones count as correct)",
    ),
    "de": (
        "Qualitätswert",
        "1 - Summe(Gewicht x Fehler) / (größtes Gewicht x geprüft); Gewichte: kritisch "
        "{critical}, schwer {major}, leicht {minor}",
        "Fehler sind Urteile, die fehlerhaft bleiben (aufgehobene zählen als korrekt)",
    ),
}
_GROUPED_BY: Mapping[ReportLanguage, str] = {"en": "Grouped by", "de": "Gruppiert nach"}


def errors_csv(report: ErrorsReport) -> bytes:
    """The rows as CSV (header = the JSON row keys)."""
    return rows_csv(report.rows, ErrorsRow)


def errors_xlsx(report: ErrorsReport, query: ErrorsQuery) -> bytes:
    """The rows as a workbook in ``query.lang``, then the About sheet (filters, method)."""
    lang = query.lang
    score_label, score_method, errors_method = _METHOD[lang]
    weights = {
        severity: format_number(weight, lang)
        for severity, weight in report.severity_weights.items()
    }
    method = [
        (_GROUPED_BY[lang], query.group_by or ALL_KEY),
        (score_label, score_method.format(**weights)),
        (column_label("incorrect", lang), errors_method),
    ]
    return rows_xlsx(
        [TableSheet(title=_SHEET_TITLE[lang], rows=report.rows, row_type=ErrorsRow)],
        about=about_rows(query, report, method=method),
        lang=lang,
    )
