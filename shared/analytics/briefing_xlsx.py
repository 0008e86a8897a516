"""The management briefing as a workbook (XlsxWriter): a sheet per section, native charts.

The tables are written by ``shared.analytics.exports.write_table_sheet``, the writer of every
report's XLSX, so a section's sheet has the columns and headers of the report it comes from
(headers in the asked language, frozen, widths set, rates as percentages). Beside them:
the weekly trend as a line chart and the comparison as columns with the target as a line,
both with the Wilson 95 % intervals as custom error bars, and the error breakdown as stacked
columns. Number formats are Excel's, which the application shows in its reader's locale
(German decimal commas in a German Excel); the text the workbook writes itself (title,
period, notes) is formatted by ``shared.analytics.formatting`` in the asked language.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import xlsxwriter
from xlsxwriter.utility import xl_range_abs

from shared.analytics.briefing_pptx import ERROR_TYPES, TEXTS, text
from shared.analytics.exports import (
    TableSheet,
    XlsxFormats,
    column_label,
    new_workbook,
    write_about_sheet,
    write_table_sheet,
)
from shared.analytics.formatting import format_date, format_number, format_percent
from shared.analytics.schemas import (
    Briefing,
    CalibrationAgreementRow,
    ComparisonRow,
    ErrorsRow,
    EscalationRow,
    QuizCompletionRow,
    TrainingCompletionRow,
    TrendRow,
)
from shared.schemas.reports import ReportLanguage

NAVY = "#1F3A5F"
BLUE = "#2E6DA4"
LIGHT_BLUE = "#9DBCDB"
AMBER = "#E09F3E"
RED = "#C0392B"
GRID = "#D5DAE1"
ERROR_COLOURS = (NAVY, BLUE, LIGHT_BLUE, AMBER)

SHEETS: Mapping[str, Mapping[ReportLanguage, str]] = {
    "overview": {"en": "Overview", "de": "Überblick"},
    "trend": {"en": "Trend", "de": "Verlauf"},
    "comparison": {"en": "Comparison", "de": "Vergleich"},
    "errors": {"en": "Errors", "de": "Fehler"},
    "calibration": {"en": "Calibration", "de": "Kalibrierung"},
    "escalations": {"en": "Escalations", "de": "Eskalationen"},
    "quizzes": {"en": "Quizzes", "de": "Quiz"},
    "training": {"en": "Training", "de": "Schulung"},
}
_WORDS: Mapping[str, Mapping[ReportLanguage, str]] = {
    "metric": {"en": "Metric", "de": "Kennzahl"},
    "value": {"en": "Value", "de": "Wert"},
    "ci_low": {"en": "95 % CI low", "de": "95-%-KI untere Grenze"},
    "ci_high": {"en": "95 % CI high", "de": "95-%-KI obere Grenze"},
    "correct": {"en": "Correct", "de": "Korrekt"},
    "target": {"en": "Target", "de": "Ziel"},
    "ci_plus": {"en": "CI above (chart)", "de": "KI darüber (Diagramm)"},
    "ci_minus": {"en": "CI below (chart)", "de": "KI darunter (Diagramm)"},
    "chart_data": {"en": "Chart data", "de": "Diagrammdaten"},
    "errors_axis": {"en": "Incorrect verdicts", "de": "Fehlerurteile"},
    "period": {"en": "Period", "de": "Zeitraum"},
    "market": {"en": "Market", "de": "Markt"},
    "method": {"en": "Method", "de": "Methode"},
    "method_text": {
        "en": (
            "Every section is computed from the quality rollups by the report of the same "
            "name (trend, comparison, errors, population accuracy, rates). Intervals are "
            "Wilson 95 % intervals; the population accuracy is post-stratified by moderator "
            "and market-local day. Slices with fewer audits than the threshold are shown "
            "but never ranked."
        ),
        "de": (
            "Jeder Abschnitt wird aus den Qualitäts-Rollups vom gleichnamigen Bericht "
            "berechnet (Verlauf, Vergleich, Fehler, Genauigkeit der Grundgesamtheit, "
            "Quoten). Intervalle sind Wilson-95-%-Intervalle; die Genauigkeit der "
            "Grundgesamtheit ist nach Moderator und marktlokalem Tag nachgeschichtet. "
            "Ausschnitte mit weniger Prüfungen als der Schwelle werden gezeigt, aber nicht "
            "gereiht."
        ),
    },
}

_PERCENT_ROWS = (
    ("accuracy", "accuracy", "ci_low", "ci_high"),
    ("population_accuracy", "population_accuracy", "population_ci_low", "population_ci_high"),
    ("quality_score", "quality_score", None, None),
    ("coverage", "coverage", None, None),
    ("dispute_rate", "dispute_rate", "dispute_rate_ci_low", "dispute_rate_ci_high"),
    ("overturn_rate", "overturn_rate", "overturn_rate_ci_low", "overturn_rate_ci_high"),
)


def _word(key: str, lang: ReportLanguage) -> str:
    return _WORDS[key][lang]


def _period(briefing: Briefing, lang: ReportLanguage) -> str:
    return text(
        "period",
        lang,
        start=format_date(briefing.day_from, lang),
        end=format_date(briefing.day_to, lang),
    )


def _print_setup(sheet: Any) -> None:
    """Landscape, one page wide: a sheet prints (and converts to PDF) as a page a reader
    can take in, its chart beside its table."""
    sheet.set_landscape()
    sheet.set_paper(9)  # A4
    sheet.fit_to_pages(1, 0)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.5)


def _overview_sheet(
    workbook: xlsxwriter.Workbook, briefing: Briefing, lang: ReportLanguage, formats: XlsxFormats
) -> Any:
    """The headline numbers (the section charts are added beside them once their sheets
    exist: the overview reads as a one-page dashboard)."""
    sheet = workbook.add_worksheet(SHEETS["overview"][lang])
    title = workbook.add_format({"bold": True, "font_size": 16, "font_color": NAVY})
    subtitle = workbook.add_format({"font_size": 11, "font_color": "#6B7280"})
    header = workbook.add_format(
        {"bold": True, "font_color": "#FFFFFF", "bg_color": NAVY, "valign": "vcenter"}
    )
    label = workbook.add_format({"bold": True})
    scope = (
        text("all_markets", lang)
        if briefing.market is None
        else text("market", lang, market=briefing.market)
    )
    sheet.write_string(0, 0, text("deck_title", lang), title)
    sheet.write_string(1, 0, f"{scope} · {_period(briefing, lang)}", subtitle)
    first = 3
    for column, key in enumerate(("metric", "value", "ci_low", "ci_high")):
        sheet.write_string(first, column, _word(key, lang), header)
    head = briefing.headline.model_dump()
    row = first + 1
    for key in ("decisions", "audited"):
        sheet.write_string(row, 0, text(key, lang), label)
        sheet.write_number(row, 1, head[key], formats.number)
        row += 1
    sheet.write_string(row, 0, _word("correct", lang), label)
    sheet.write_number(row, 1, head["correct"], formats.number)
    row += 1
    for text_key, value_key, low_key, high_key in _PERCENT_ROWS:
        sheet.write_string(row, 0, text(text_key, lang), label)
        for column, field in enumerate((value_key, low_key, high_key), start=1):
            value = head[field] if field is not None else None
            if value is None:
                sheet.write_blank(row, column, None)
            else:
                sheet.write_number(row, column, value, formats.percent)
        row += 1
    if briefing.headline.note:
        sheet.write_string(row + 1, 0, briefing.headline.note, subtitle)
    sheet.set_column(0, 0, 34)
    sheet.set_column(1, 3, 20)
    sheet.freeze_panes(first + 1, 0)
    _print_setup(sheet)
    sheet.fit_to_pages(1, 1)
    return sheet


@dataclass(frozen=True, slots=True)
class _ChartData:
    """Where a section's chart finds its cells: the table's rows 1..last, its category and
    value columns, and the chart-data columns beside the table (the target, and the
    interval's distance above and below each value, which the error bars read)."""

    sheet: str
    last: int
    category: int
    value: int
    target: int

    @property
    def plus(self) -> int:
        return self.target + 1

    @property
    def minus(self) -> int:
        return self.target + 2

    def cells(self, column: int) -> list[Any]:
        return [self.sheet, 1, column, self.last, column]

    def reference(self, column: int) -> str:
        return f"='{self.sheet}'!{xl_range_abs(1, column, self.last, column)}"


def _chart_columns(
    sheet: Any,
    data: _ChartData,
    *,
    target: float,
    values: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    lang: ReportLanguage,
    formats: XlsxFormats,
) -> None:
    """The chart-data columns beside a table (XlsxWriter charts read cells; LibreOffice
    draws error bars only from cells): the target, and the Wilson interval's distance above
    and below each value (0 where there is none)."""
    headings = (_word("target", lang), _word("ci_plus", lang), _word("ci_minus", lang))
    for column, heading in zip((data.target, data.plus, data.minus), headings, strict=True):
        sheet.write_string(0, column, heading, formats.header)
        sheet.set_column(column, column, 14)
    for row, (value, low, high) in enumerate(zip(values, lows, highs, strict=True), start=1):
        sheet.write_number(row, data.target, target, formats.percent)
        plus = 0.0 if value is None or high is None else high - value
        minus = 0.0 if value is None or low is None else value - low
        sheet.write_number(row, data.plus, plus, formats.percent)
        sheet.write_number(row, data.minus, minus, formats.percent)


def _error_bars(data: _ChartData) -> dict[str, Any]:
    """The Wilson interval around each point as custom error bars."""
    return {
        "type": "custom",
        "plus_values": data.reference(data.plus),
        "minus_values": data.reference(data.minus),
        "end_style": 1,
        "line": {"color": "#1F2937", "width": 1.25},
    }


def _axis_bounds(values: Sequence[float], target: float) -> tuple[float, float]:
    lowest = min([*values, target]) if values else 0.0
    step = 0.01 if lowest >= 0.94 else 0.02 if lowest >= 0.88 else 0.05
    return max(0.0, (int(lowest / step) - 1) * step), 1.0


def _percent_axis(lang: ReportLanguage, low: float, high: float) -> dict[str, Any]:
    return {
        "min": low,
        "max": high,
        "num_format": "0%" if lang == "en" else "0\u00a0%",
        "major_gridlines": {"visible": True, "line": {"color": GRID}},
        "line": {"none": True},
    }


def _chart_title(title: str) -> dict[str, Any]:
    return {"name": title, "name_font": {"size": 13, "bold": True, "color": NAVY}}


def _trend_chart(
    workbook: xlsxwriter.Workbook, briefing: Briefing, data: _ChartData, lang: ReportLanguage
) -> Any:
    rows = briefing.trend.rows
    chart = workbook.add_chart({"type": "line"})
    chart.add_series(
        {
            "name": column_label("accuracy", lang),
            "categories": data.cells(data.category),
            "values": data.cells(data.value),
            "line": {"color": BLUE, "width": 2.75},
            "marker": {
                "type": "circle",
                "size": 7,
                "fill": {"color": BLUE},
                "border": {"color": "#FFFFFF"},
            },
            "data_labels": {"value": True, "position": "right", "num_format": "0.0%"},
            "y_error_bars": _error_bars(data),
        }
    )
    chart.add_series(
        {
            "name": _word("target", lang),
            "categories": data.cells(data.category),
            "values": data.cells(data.target),
            "line": {"color": RED, "width": 2, "dash_type": "dash"},
            "marker": {"type": "none"},
        }
    )
    low, high = _axis_bounds(
        [row.ci_low for row in rows if row.ci_low is not None], briefing.comparison.target
    )
    chart.set_title(_chart_title(text(f"trend_{briefing.trend.interval}_title", lang)))
    chart.set_y_axis(_percent_axis(lang, low, high))
    chart.set_x_axis(
        {"num_format": "yyyy-mm-dd" if lang == "en" else "dd.mm.yyyy", "text_axis": True}
    )
    chart.set_legend({"position": "bottom"})
    return chart


def _accuracy_table(
    workbook: xlsxwriter.Workbook,
    briefing: Briefing,
    *,
    section: str,
    rows: Sequence[TrendRow] | Sequence[ComparisonRow],
    row_type: type[TrendRow] | type[ComparisonRow],
    category: str,
    lang: ReportLanguage,
    formats: XlsxFormats,
) -> tuple[Any, _ChartData]:
    """A section's table sheet with the cells its accuracy chart reads: the accuracy, its
    Wilson interval as error bars and the target, beside the table."""
    name = SHEETS[section][lang]
    sheet = write_table_sheet(
        workbook,
        TableSheet(title=name, rows=rows, row_type=row_type, widths={"note": 40}),
        lang=lang,
        formats=formats,
    )
    _print_setup(sheet)
    fields = list(row_type.model_fields)
    data = _ChartData(
        sheet=name,
        last=len(rows),
        category=fields.index(category),
        value=fields.index("accuracy"),
        target=len(fields) + 1,
    )
    _chart_columns(
        sheet,
        data,
        target=briefing.comparison.target,
        values=[row.accuracy for row in rows],
        lows=[row.ci_low for row in rows],
        highs=[row.ci_high for row in rows],
        lang=lang,
        formats=formats,
    )
    return sheet, data


def _trend_sheet(
    workbook: xlsxwriter.Workbook, briefing: Briefing, lang: ReportLanguage, formats: XlsxFormats
) -> _ChartData | None:
    rows = briefing.trend.rows
    sheet, data = _accuracy_table(
        workbook,
        briefing,
        section="trend",
        rows=rows,
        row_type=TrendRow,
        category="period_start",
        lang=lang,
        formats=formats,
    )
    if not any(row.audited for row in rows):
        return None
    chart = _trend_chart(workbook, briefing, data, lang)
    chart.set_size({"width": 860, "height": 380})
    sheet.insert_chart(len(rows) + 3, 0, chart)
    return data


def _comparison_chart(
    workbook: xlsxwriter.Workbook, briefing: Briefing, data: _ChartData, lang: ReportLanguage
) -> Any:
    comparison = briefing.comparison
    rows = comparison.rows
    bars = workbook.add_chart({"type": "column"})
    bars.add_series(
        {
            "name": column_label("accuracy", lang),
            "categories": data.cells(data.category),
            "values": data.cells(data.value),
            "fill": {"color": BLUE},
            "gap": 60,
            "points": [
                {"fill": {"color": LIGHT_BLUE if row.small_sample else AMBER}}
                if row.small_sample or row.below_target
                else None
                for row in rows
            ],
            "data_labels": {
                "value": True,
                "position": "inside_base",
                "num_format": "0.0%",
                "font": {"color": "#FFFFFF", "bold": True},
            },
            "y_error_bars": _error_bars(data),
        }
    )
    target = workbook.add_chart({"type": "line"})
    target.add_series(
        {
            "name": _word("target", lang),
            "categories": data.cells(data.category),
            "values": data.cells(data.target),
            "line": {"color": RED, "width": 2, "dash_type": "dash"},
            "marker": {"type": "none"},
        }
    )
    bars.combine(target)
    # The axis follows the ranked slices' intervals (a small sample's would squash the rest).
    low, high = _axis_bounds(
        [
            (row.accuracy if row.small_sample else row.ci_low) or 0.0
            for row in rows
            if row.accuracy is not None
        ],
        comparison.target,
    )
    bars.set_title(_chart_title(text(f"comparison_title_{comparison.dimension}", lang)))
    bars.set_y_axis(_percent_axis(lang, low, high))
    bars.set_legend({"position": "bottom"})
    return bars


def _comparison_sheet(
    workbook: xlsxwriter.Workbook,
    briefing: Briefing,
    lang: ReportLanguage,
    formats: XlsxFormats,
    min_audits: int,
) -> _ChartData | None:
    rows = briefing.comparison.rows
    sheet, data = _accuracy_table(
        workbook,
        briefing,
        section="comparison",
        rows=rows,
        row_type=ComparisonRow,
        category="key",
        lang=lang,
        formats=formats,
    )
    if not any(row.accuracy is not None for row in rows):
        return None
    if any(row.small_sample for row in rows):
        footnote = text("small_footnote", lang, n=format_number(min_audits, lang))
        sheet.write_string(len(rows) + 2, 0, footnote.removeprefix("* "))
    chart = _comparison_chart(workbook, briefing, data, lang)
    chart.set_size({"width": 860, "height": 400})
    sheet.insert_chart(len(rows) + 4, 0, chart)
    return data


def _errors_chart(
    workbook: xlsxwriter.Workbook, data: _ChartData, fields: Sequence[str], lang: ReportLanguage
) -> Any:
    chart = workbook.add_chart({"type": "column", "subtype": "stacked"})
    for error_type, colour in zip(ERROR_TYPES, ERROR_COLOURS, strict=True):
        column = fields.index(error_type)
        chart.add_series(
            {
                "name": [data.sheet, 0, column],
                "categories": data.cells(data.category),
                "values": data.cells(column),
                "fill": {"color": colour},
                "gap": 60,
                "overlap": 100,
            }
        )
    chart.set_title(_chart_title(text("errors_title", lang)))
    chart.set_y_axis(
        {
            "name": _word("errors_axis", lang),
            "num_format": "#,##0",
            "major_gridlines": {"visible": True, "line": {"color": GRID}},
            "line": {"none": True},
        }
    )
    chart.set_legend({"position": "bottom"})
    return chart


def _errors_sheet(
    workbook: xlsxwriter.Workbook, briefing: Briefing, lang: ReportLanguage, formats: XlsxFormats
) -> _ChartData | None:
    rows = briefing.errors.rows
    name = SHEETS["errors"][lang]
    sheet = write_table_sheet(
        workbook,
        TableSheet(title=name, rows=rows, row_type=ErrorsRow, widths={"note": 40}),
        lang=lang,
        formats=formats,
    )
    _print_setup(sheet)
    if not any(row.audited for row in rows):
        return None
    fields = list(ErrorsRow.model_fields)
    data = _ChartData(
        sheet=name,
        last=len(rows),
        category=fields.index("key"),
        value=fields.index("incorrect"),
        target=len(fields) + 1,
    )
    chart = _errors_chart(workbook, data, fields, lang)
    chart.set_size({"width": 860, "height": 400})
    sheet.insert_chart(len(rows) + 3, 0, chart)
    return data


def _table_sheet(
    workbook: xlsxwriter.Workbook,
    title: str,
    rows: Sequence[Any],
    row_type: type[Any],
    *,
    lang: ReportLanguage,
    formats: XlsxFormats,
    widths: Mapping[str, float],
    empty: str,
) -> None:
    sheet = write_table_sheet(
        workbook,
        TableSheet(title=title, rows=rows, row_type=row_type, widths=widths),
        lang=lang,
        formats=formats,
    )
    _print_setup(sheet)
    if not rows:
        sheet.write_string(2, 0, empty)


def briefing_xlsx(briefing: Briefing, *, lang: ReportLanguage, min_audits: int = 30) -> bytes:
    """The briefing as a workbook: Overview (the headline numbers), Trend, Comparison and
    Errors (each its report's rows and a native chart), Calibration, Escalations, Quizzes,
    Training, then About. CPU work: call it off the event loop."""
    buffer = io.BytesIO()
    workbook = new_workbook(buffer)
    workbook.set_properties(
        {"title": f"{text('deck_title', lang)}: {_period(briefing, lang)}", "author": "Plumbline"}
    )
    formats = XlsxFormats.of(workbook)
    overview = _overview_sheet(workbook, briefing, lang, formats)
    trend = _trend_sheet(workbook, briefing, lang, formats)
    comparison = _comparison_sheet(workbook, briefing, lang, formats, min_audits)
    errors = _errors_sheet(workbook, briefing, lang, formats)
    # The overview's charts read the section sheets' cells: one set of numbers.
    if trend is not None:
        chart = _trend_chart(workbook, briefing, trend, lang)
        chart.set_size({"width": 720, "height": 400})
        overview.insert_chart(0, 5, chart)
    if comparison is not None:
        chart = _comparison_chart(workbook, briefing, comparison, lang)
        chart.set_size({"width": 700, "height": 420})
        overview.insert_chart(21, 0, chart)
    if errors is not None:
        chart = _errors_chart(workbook, errors, list(ErrorsRow.model_fields), lang)
        chart.set_size({"width": 720, "height": 420})
        overview.insert_chart(21, 5, chart)
    _table_sheet(
        workbook,
        SHEETS["calibration"][lang],
        briefing.calibrations,
        CalibrationAgreementRow,
        lang=lang,
        formats=formats,
        widths={"id": 38, "title": 40},
        empty=TEXTS["no_calibrations"][lang],
    )
    _table_sheet(
        workbook,
        SHEETS["escalations"][lang],
        briefing.escalations.rows,
        EscalationRow,
        lang=lang,
        formats=formats,
        widths={"id": 38, "slice": 30},
        empty=TEXTS["no_escalations"][lang],
    )
    _table_sheet(
        workbook,
        SHEETS["quizzes"][lang],
        briefing.quizzes,
        QuizCompletionRow,
        lang=lang,
        formats=formats,
        widths={"quiz_id": 38, "title": 40},
        empty=TEXTS["no_quizzes"][lang],
    )
    _table_sheet(
        workbook,
        SHEETS["training"][lang],
        briefing.training,
        TrainingCompletionRow,
        lang=lang,
        formats=formats,
        widths={"plan_id": 38, "title": 40},
        empty=TEXTS["no_training"][lang],
    )
    target = format_percent(briefing.comparison.target, lang, digits=0)
    write_about_sheet(
        workbook,
        [
            (_word("period", lang), _period(briefing, lang)),
            (_word("market", lang), briefing.market or text("all_markets", lang)),
            (_word("target", lang), target),
            (_word("method", lang), _word("method_text", lang)),
        ],
        lang=lang,
        formats=formats,
    )
    workbook.close()
    return buffer.getvalue()
