"""The accuracy report as files, through the writers every report uses
(``shared.analytics.exports``): CSV whose header is the JSON row keys, and an XLSX workbook
with the rows under headers in ``lang``, a column chart of the accuracy per key beside them,
and an About sheet saying what was counted."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date

from shared.analytics.exports import (
    TableSheet,
    XlsxFormats,
    attachment_filename,
    new_workbook,
    rows_csv,
    write_about_sheet,
    write_table_sheet,
)
from shared.analytics.formatting import format_date
from shared.reports.rows import ROW_FIELDS, WILSON_Z, column_headers
from shared.schemas.reports import AccuracyGroup, AccuracyRow, ReportLanguage

_SHEET_TITLES: Mapping[ReportLanguage, str] = {"en": "Accuracy", "de": "Genauigkeit"}
_ABOUT: Mapping[ReportLanguage, tuple[str, str, str, str]] = {
    "en": ("Grouped by", "From (inclusive)", "To (inclusive)", "Method"),
    "de": ("Gruppiert nach", "Von (einschließlich)", "Bis (einschließlich)", "Methode"),
}
_METHOD: Mapping[ReportLanguage, str] = {
    "en": (
        "Accuracy = correct / audited; verdicts overturned on dispute count as correct, golden "
        f"audits never count. Interval: Wilson score, 95 % (z = {WILSON_Z}). Days are counted "
        "in each market's time zone."
    ),
    "de": (
        "Genauigkeit = korrekt / geprüft; im Streitfall aufgehobene Urteile zählen als korrekt, "
        f"Golden-Audits zählen nie. Intervall: Wilson-Score, 95 % (z = {WILSON_Z}). Tage "
        "werden in der Zeitzone des jeweiligen Markts gezählt."
    ),
}
_ACCURACY_COLUMN = ROW_FIELDS.index("accuracy")


def export_filename(group_by: AccuracyGroup, day_from: date, day_to: date, extension: str) -> str:
    """``accuracy-by-queue-2026-11-01-to-2026-11-30.csv``: what, and over which days."""
    return attachment_filename(f"accuracy-by-{group_by}", day_from, day_to, extension)


def accuracy_csv(rows: list[AccuracyRow]) -> bytes:
    """The rows as RFC 4180 CSV: header = the JSON row keys, values as in JSON except that
    text a spreadsheet would run as a formula is neutralised."""
    return rows_csv(rows, AccuracyRow)


def accuracy_xlsx(
    rows: list[AccuracyRow],
    *,
    group_by: AccuracyGroup,
    day_from: date,
    day_to: date,
    lang: ReportLanguage,
) -> bytes:
    """A workbook: the rows on the first sheet under ``lang`` headers (the key column named
    after the grouping), a native column chart of the accuracy per key beside them, and the
    About sheet."""
    buffer = io.BytesIO()
    workbook = new_workbook(buffer)
    formats = XlsxFormats.of(workbook)
    title = _SHEET_TITLES[lang]
    key_header = column_headers(group_by, lang)[0]
    sheet = write_table_sheet(
        workbook,
        TableSheet(
            title=title,
            rows=rows,
            row_type=AccuracyRow,
            widths={"key": 28, "ci_low": 22, "ci_high": 22},
            headers={"key": key_header},
        ),
        lang=lang,
        formats=formats,
    )
    if rows:
        chart = workbook.add_chart({"type": "column"})
        chart.add_series(
            {
                "name": [title, 0, _ACCURACY_COLUMN],
                "categories": [title, 1, 0, len(rows), 0],
                "values": [title, 1, _ACCURACY_COLUMN, len(rows), _ACCURACY_COLUMN],
            }
        )
        chart.set_title({"name": title})
        chart.set_y_axis({"min": 0, "max": 1, "num_format": "0%"})
        chart.set_legend({"none": True})
        chart.set_size({"width": max(600, min(2200, 45 * len(rows))), "height": 320})
        sheet.insert_chart("H2", chart)
    grouped_by, first, last, method = _ABOUT[lang]
    write_about_sheet(
        workbook,
        [
            (grouped_by, key_header),
            (first, format_date(day_from, lang)),
            (last, format_date(day_to, lang)),
            (method, _METHOD[lang]),
        ],
        lang=lang,
        formats=formats,
    )
    workbook.close()
    return buffer.getvalue()
