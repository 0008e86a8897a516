"""The accuracy report as files: CSV (machine-readable) and XLSX (for people, with a chart)."""

from __future__ import annotations

import csv
import io
from datetime import date

from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING
from openpyxl.chart import BarChart, Reference
from openpyxl.utils import get_column_letter

from shared.reports.rows import ROW_FIELDS, WILSON_Z, column_headers
from shared.schemas.reports import AccuracyGroup, AccuracyRow, ReportLanguage

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_SHEET_TITLES: dict[ReportLanguage, tuple[str, str]] = {
    "en": ("Accuracy", "About"),
    "de": ("Genauigkeit", "Info"),
}
_CHART_TITLES: dict[ReportLanguage, str] = {"en": "Accuracy", "de": "Genauigkeit"}
_ABOUT: dict[ReportLanguage, tuple[str, ...]] = {
    "en": ("Grouped by", "From (inclusive)", "To (inclusive)", "Method"),
    "de": ("Gruppiert nach", "Von (einschließlich)", "Bis (einschließlich)", "Methode"),
}
_METHOD: dict[ReportLanguage, str] = {
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


def export_filename(group_by: AccuracyGroup, day_from: date, day_to: date, extension: str) -> str:
    """``accuracy-by-queue-2026-11-01-to-2026-11-30.csv``: what, and over which days."""
    return f"accuracy-by-{group_by}-{day_from.isoformat()}-to-{day_to.isoformat()}.{extension}"


# A spreadsheet reads a cell starting with one of these as a formula (or strips the blank
# before one): OWASP's CSV injection list.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that a spreadsheet shows and never computes (OWASP CSV injection guidance).

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    single quote, which spreadsheets read as "this is text". Only text is touched: numbers
    are ours (counts, rates, interval bounds) and stay numbers, a negative one included,
    while every text cell may come from outside (a moderator id is whatever a platform sent).
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def accuracy_csv(rows: list[AccuracyRow]) -> bytes:
    """The rows as RFC 4180 CSV: header = the JSON row keys, values as in JSON except that
    text a spreadsheet would run as a formula is neutralised (``spreadsheet_safe``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ROW_FIELDS)
    for row in rows:
        values = row.model_dump()
        writer.writerow([spreadsheet_safe(values[field]) for field in ROW_FIELDS])
    return buffer.getvalue().encode()


def accuracy_xlsx(
    rows: list[AccuracyRow],
    *,
    group_by: AccuracyGroup,
    day_from: date,
    day_to: date,
    lang: ReportLanguage,
) -> bytes:
    """A workbook: the rows on the first sheet under ``lang`` headers, a bar chart of the
    accuracy per key beside them, and a second sheet saying what was counted."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new Workbook always has its first sheet
    data_title, about_title = _SHEET_TITLES[lang]
    sheet.title = data_title
    sheet.append(column_headers(group_by, lang))
    for row in rows:
        sheet.append([row.key, row.audited, row.correct, row.accuracy, row.ci_low, row.ci_high])
    for number in range(2, len(rows) + 2):
        key_cell = sheet.cell(row=number, column=1)
        # openpyxl would store a key starting with "=" (a moderator id is any text) as a
        # formula: force text so a cell never computes anything.
        key_cell.data_type = TYPE_STRING
        for column in (4, 5, 6):
            sheet.cell(row=number, column=column).number_format = "0.0%"
    sheet.freeze_panes = "A2"
    for column, width in zip(range(1, 7), (28, 10, 10, 12, 22, 22), strict=True):
        sheet.column_dimensions[get_column_letter(column)].width = width

    if rows:
        chart = BarChart()
        chart.type = "col"
        chart.title = _CHART_TITLES[lang]
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 1
        chart.y_axis.number_format = "0%"
        chart.legend = None
        values = Reference(sheet, min_col=4, min_row=1, max_row=len(rows) + 1)
        keys = Reference(sheet, min_col=1, min_row=2, max_row=len(rows) + 1)
        chart.add_data(values, titles_from_data=True)
        chart.set_categories(keys)
        chart.width = max(16.0, min(60.0, 1.2 * len(rows)))
        sheet.add_chart(chart, "H2")

    about = workbook.create_sheet(about_title)
    labels = _ABOUT[lang]
    for label, value in zip(
        labels,
        (
            column_headers(group_by, lang)[0],
            day_from.isoformat(),
            day_to.isoformat(),
            _METHOD[lang],
        ),
        strict=True,
    ):
        about.append([label, value])
    about.column_dimensions["A"].width = 24
    about.column_dimensions["B"].width = 100

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
