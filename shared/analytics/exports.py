"""Report rows as files: CSV for machines, XLSX for people.

Every report (the accuracy report included) writes its files here, so each has the same
shape: the CSV's header is the JSON row keys and its values are the JSON values (text a
spreadsheet would run as a formula is neutralised); the XLSX's first sheet holds the same
columns in the same order under headers in the asked language, rates as percentages, a
frozen header row and set widths, then an "About" sheet saying what was counted and how.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import xlsxwriter
from pydantic import BaseModel

from shared.schemas.reports import ReportLanguage

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PNG_MEDIA_TYPE = "image/png"

# A spreadsheet reads a cell starting with one of these as a formula (or strips the blank
# before one): OWASP's CSV injection list.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that a spreadsheet shows and never computes (OWASP CSV injection guidance).

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    single quote, which spreadsheets read as "this is text". Only text is touched: numbers
    are ours (counts, rates, interval bounds) and stay numbers, a negative one included,
    while every text cell may come from outside (a moderator id is whatever a platform sent).
    XLSX files need no such guard: their writer stores text as text (``new_workbook``).
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


# Column headers per row field, in every offered language. A field without a label here is
# a bug that tests/test_analytics_exports.py catches for every report row.
FIELD_LABELS: Mapping[str, Mapping[ReportLanguage, str]] = {
    "key": {"en": "Slice", "de": "Ausschnitt"},
    "period_start": {"en": "Period start", "de": "Periodenbeginn"},
    "rank": {"en": "Rank", "de": "Rang"},
    "policy": {"en": "Policy", "de": "Richtlinie"},
    "action": {"en": "Moderator action", "de": "Aktion des Moderators"},
    "expected_action": {"en": "Expected action", "de": "Erwartete Aktion"},
    "decisions": {"en": "Decisions", "de": "Entscheidungen"},
    "audited": {"en": "Audited", "de": "Geprüft"},
    "correct": {"en": "Correct", "de": "Korrekt"},
    "incorrect": {"en": "Incorrect", "de": "Fehlerhaft"},
    "verdicts": {"en": "Verdicts", "de": "Urteile"},
    "share": {"en": "Share", "de": "Anteil"},
    "accuracy": {"en": "Accuracy", "de": "Genauigkeit"},
    "ci_low": {"en": "95 % CI low", "de": "95-%-KI untere Grenze"},
    "ci_high": {"en": "95 % CI high", "de": "95-%-KI obere Grenze"},
    "change": {"en": "Change", "de": "Veränderung"},
    "p_value": {"en": "p-value", "de": "p-Wert"},
    "q_value": {"en": "q-value (BH)", "de": "q-Wert (BH)"},
    "significant": {"en": "Significant", "de": "Signifikant"},
    "small_sample": {"en": "Small sample", "de": "Kleine Stichprobe"},
    "note": {"en": "Note", "de": "Hinweis"},
    "estimate": {"en": "Population accuracy", "de": "Genauigkeit (Grundgesamtheit)"},
    "audited_accuracy": {"en": "Audited accuracy", "de": "Genauigkeit (Stichprobe)"},
    "audited_ci_low": {"en": "Audited 95 % CI low", "de": "Stichprobe 95-%-KI unten"},
    "audited_ci_high": {"en": "Audited 95 % CI high", "de": "Stichprobe 95-%-KI oben"},
    "coverage": {"en": "Coverage", "de": "Abdeckung"},
    "error_rate": {"en": "Error rate", "de": "Fehlerquote"},
    "error_rate_ci_low": {"en": "Error rate CI low", "de": "Fehlerquote KI unten"},
    "error_rate_ci_high": {"en": "Error rate CI high", "de": "Fehlerquote KI oben"},
    "missed_violation": {"en": "Missed violation", "de": "Übersehener Verstoß"},
    "over_enforcement": {"en": "Over-enforcement", "de": "Übermäßige Durchsetzung"},
    "wrong_policy": {"en": "Wrong policy", "de": "Falsche Richtlinie"},
    "wrong_action": {"en": "Wrong action", "de": "Falsche Aktion"},
    "critical": {"en": "Critical", "de": "Kritisch"},
    "major": {"en": "Major", "de": "Schwer"},
    "minor": {"en": "Minor", "de": "Leicht"},
    "quality_score": {"en": "Quality score", "de": "Qualitätswert"},
    "tp": {"en": "True positives", "de": "Richtig positiv"},
    "fp": {"en": "False positives", "de": "Falsch positiv"},
    "fn": {"en": "False negatives", "de": "Falsch negativ"},
    "precision": {"en": "Precision", "de": "Präzision"},
    "precision_ci_low": {"en": "Precision CI low", "de": "Präzision KI unten"},
    "precision_ci_high": {"en": "Precision CI high", "de": "Präzision KI oben"},
    "recall": {"en": "Recall", "de": "Trefferquote"},
    "recall_ci_low": {"en": "Recall CI low", "de": "Trefferquote KI unten"},
    "recall_ci_high": {"en": "Recall CI high", "de": "Trefferquote KI oben"},
    "below_target": {"en": "Below target", "de": "Unter Ziel"},
    "rest_audited": {"en": "Rest: audited", "de": "Rest: geprüft"},
    "rest_accuracy": {"en": "Rest: accuracy", "de": "Rest: Genauigkeit"},
    "audit_coverage": {"en": "Audit coverage", "de": "Prüfabdeckung"},
    "audit_coverage_ci_low": {"en": "Coverage CI low", "de": "Abdeckung KI unten"},
    "audit_coverage_ci_high": {"en": "Coverage CI high", "de": "Abdeckung KI oben"},
    "judged_incorrect": {"en": "Judged incorrect", "de": "Als fehlerhaft bewertet"},
    "disputed": {"en": "Disputed", "de": "Angefochten"},
    "dispute_rate": {"en": "Dispute rate", "de": "Anfechtungsquote"},
    "dispute_rate_ci_low": {"en": "Dispute rate CI low", "de": "Anfechtungsquote KI unten"},
    "dispute_rate_ci_high": {"en": "Dispute rate CI high", "de": "Anfechtungsquote KI oben"},
    "overturned": {"en": "Overturned", "de": "Aufgehoben"},
    "overturn_rate": {"en": "Overturn rate", "de": "Aufhebungsquote"},
    "overturn_rate_ci_low": {"en": "Overturn rate CI low", "de": "Aufhebungsquote KI unten"},
    "overturn_rate_ci_high": {"en": "Overturn rate CI high", "de": "Aufhebungsquote KI oben"},
    "appealed": {"en": "Appealed", "de": "Beschwerden"},
    "appeal_reversed": {"en": "Reversed on appeal", "de": "Auf Beschwerde geändert"},
    "appeal_overturn_rate": {"en": "Appeal overturn rate", "de": "Beschwerde-Änderungsquote"},
    "appeal_overturn_rate_ci_low": {"en": "Appeal rate CI low", "de": "Beschwerdequote KI unten"},
    "appeal_overturn_rate_ci_high": {"en": "Appeal rate CI high", "de": "Beschwerdequote KI oben"},
    "mean_hours_to_audit": {"en": "Mean hours to audit", "de": "Mittlere Stunden bis Prüfung"},
    "mean_handling_seconds": {
        "en": "Mean handling time (s)",
        "de": "Mittlere Bearbeitungszeit (s)",
    },
    # The briefing's own sections.
    "population_accuracy": {"en": "Population accuracy", "de": "Genauigkeit (Grundgesamtheit)"},
    "population_ci_low": {"en": "Population 95 % CI low", "de": "Grundgesamtheit 95-%-KI unten"},
    "population_ci_high": {"en": "Population 95 % CI high", "de": "Grundgesamtheit 95-%-KI oben"},
    "id": {"en": "ID", "de": "ID"},
    "title": {"en": "Title", "de": "Titel"},
    "market": {"en": "Market", "de": "Markt"},
    "closed_at": {"en": "Closed on", "de": "Abgeschlossen am"},
    "krippendorff_alpha": {"en": "Krippendorff's alpha", "de": "Krippendorffs Alpha"},
    "percent_agreement": {"en": "Percent agreement", "de": "Prozentuale Übereinstimmung"},
    "n_units": {"en": "Items", "de": "Elemente"},
    "n_raters": {"en": "Raters", "de": "Bewertende"},
    "flagged_items": {"en": "Flagged items", "de": "Markierte Elemente"},
    "metric": {"en": "Metric", "de": "Kennzahl"},
    "slice": {"en": "Slice", "de": "Ausschnitt"},
    "status": {"en": "Status", "de": "Status"},
    "opened_at": {"en": "Opened on", "de": "Eröffnet am"},
    "quiz_id": {"en": "Quiz ID", "de": "Quiz-ID"},
    "policy_code": {"en": "Policy", "de": "Richtlinie"},
    "attempts": {"en": "Attempts", "de": "Versuche"},
    "reviewers": {"en": "Reviewers", "de": "Prüfende"},
    "passed": {"en": "Passed", "de": "Bestanden"},
    "pass_rate": {"en": "Pass rate", "de": "Bestehensquote"},
    "pass_rate_ci_low": {"en": "Pass rate CI low", "de": "Bestehensquote KI unten"},
    "pass_rate_ci_high": {"en": "Pass rate CI high", "de": "Bestehensquote KI oben"},
    "mean_score": {"en": "Mean score", "de": "Mittlere Punktzahl"},
    "plan_id": {"en": "Plan ID", "de": "Plan-ID"},
    "kind": {"en": "Kind", "de": "Art"},
    "items": {"en": "Items due", "de": "Fällige Aufgaben"},
    "completed": {"en": "Completed", "de": "Erledigt"},
    "completion_rate": {"en": "Completion rate", "de": "Erledigungsquote"},
    "completion_rate_ci_low": {"en": "Completion CI low", "de": "Erledigungsquote KI unten"},
    "completion_rate_ci_high": {"en": "Completion CI high", "de": "Erledigungsquote KI oben"},
    "overdue": {"en": "Overdue", "de": "Überfällig"},
}

_PERCENT_FIELDS = frozenset(
    {
        "accuracy",
        "ci_low",
        "ci_high",
        "change",
        "estimate",
        "audited_accuracy",
        "audited_ci_low",
        "audited_ci_high",
        "coverage",
        "share",
        "precision",
        "recall",
        "quality_score",
        "rest_accuracy",
        "audit_coverage",
        "population_accuracy",
        "percent_agreement",
        "mean_score",
    }
)
_ABOUT_TITLE: Mapping[ReportLanguage, str] = {"en": "About", "de": "Info"}


def column_label(name: str, lang: ReportLanguage) -> str:
    """The header of the row field ``name`` in ``lang``; KeyError for an unlabelled field."""
    return FIELD_LABELS[name][lang]


def is_percent_field(name: str) -> bool:
    """Whether a row field holds a proportion, shown as a percentage to people."""
    return name in _PERCENT_FIELDS or name.endswith(("_rate", "_ci_low", "_ci_high"))


def row_fields(row_type: type[BaseModel]) -> tuple[str, ...]:
    """The columns of a row type, in the order of its JSON keys."""
    return tuple(row_type.model_fields)


def rows_csv(rows: Sequence[BaseModel], row_type: type[BaseModel]) -> bytes:
    """RFC 4180 CSV: header = the JSON row keys, values as in JSON (null is empty),
    except that text a spreadsheet would run as a formula is neutralised."""
    fields = row_fields(row_type)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(fields)
    for row in rows:
        values = row.model_dump(mode="json")
        writer.writerow(
            [
                "" if values[name] is None else spreadsheet_safe(_csv_value(values[name]))
                for name in fields
            ]
        )
    return buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


@dataclass(frozen=True, slots=True)
class TableSheet:
    """One sheet of a workbook: a title and rows of one type (all of its fields).

    ``headers`` replaces the standard header of a field (already in the sheet's language),
    e.g. the accuracy report names its key column after the grouping ("Moderator").
    """

    title: str
    rows: Sequence[BaseModel]
    row_type: type[BaseModel]
    widths: Mapping[str, float] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class XlsxFormats:
    """The cell formats every analytics workbook uses (one set per workbook)."""

    header: Any
    percent: Any
    number: Any
    decimal: Any
    day: Any

    @classmethod
    def of(cls, workbook: xlsxwriter.Workbook) -> XlsxFormats:
        """The formats, added to ``workbook``."""
        return cls(
            header=workbook.add_format({"bold": True, "text_wrap": True, "valign": "top"}),
            percent=workbook.add_format({"num_format": "0.0%"}),
            number=workbook.add_format({"num_format": "#,##0"}),
            decimal=workbook.add_format({"num_format": "0.0000"}),
            day=workbook.add_format({"num_format": "yyyy-mm-dd"}),
        )


def new_workbook(buffer: io.BytesIO) -> xlsxwriter.Workbook:
    """An in-memory workbook that writes text as text: never "=..." as a formula or "0012"
    as a number."""
    return xlsxwriter.Workbook(
        buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False}
    )


def write_table_sheet(
    workbook: xlsxwriter.Workbook,
    sheet_spec: TableSheet,
    *,
    lang: ReportLanguage,
    formats: XlsxFormats,
    first_row: int = 0,
) -> Any:
    """A sheet holding ``sheet_spec``'s rows from ``first_row`` on: headers in ``lang``
    (frozen), widths set, rates as percentages, text never a formula. Returns the worksheet,
    so a caller can add charts beside the table."""
    sheet = workbook.add_worksheet(_sheet_title(sheet_spec.title))
    fields = row_fields(sheet_spec.row_type)
    for column, name in enumerate(fields):
        header = sheet_spec.headers.get(name) or column_label(name, lang)
        sheet.write_string(first_row, column, header, formats.header)
        width = sheet_spec.widths.get(name, max(10.0, min(40.0, len(header) + 2)))
        sheet.set_column(column, column, width)
    for index, row in enumerate(sheet_spec.rows, start=first_row + 1):
        values = row.model_dump()
        for column, name in enumerate(fields):
            value = values[name]
            if value is None:
                sheet.write_blank(index, column, None)
            elif isinstance(value, bool):
                sheet.write_boolean(index, column, value)
            elif isinstance(value, int):
                sheet.write_number(index, column, value, formats.number)
            elif isinstance(value, float):
                sheet.write_number(
                    index,
                    column,
                    value,
                    formats.percent if is_percent_field(name) else formats.decimal,
                )
            elif isinstance(value, date):
                sheet.write_datetime(index, column, value, formats.day)
            else:
                sheet.write_string(index, column, str(value))
    sheet.freeze_panes(first_row + 1, 0)
    return sheet


def write_about_sheet(
    workbook: xlsxwriter.Workbook,
    about: Sequence[tuple[str, str]],
    *,
    lang: ReportLanguage,
    formats: XlsxFormats,
) -> None:
    """The About sheet: what was counted and how, as (label, value) lines."""
    about_sheet = workbook.add_worksheet(_ABOUT_TITLE[lang])
    for index, (label, value) in enumerate(about):
        about_sheet.write_string(index, 0, label, formats.header)
        about_sheet.write_string(index, 1, value)
    about_sheet.set_column(0, 0, 28)
    about_sheet.set_column(1, 1, 100)


def rows_xlsx(
    sheets: Sequence[TableSheet],
    *,
    about: Sequence[tuple[str, str]],
    lang: ReportLanguage,
) -> bytes:
    """A workbook: each table on its own sheet (headers in ``lang``, frozen, widths set,
    rates as percentages, text never a formula), then the About sheet (label, value)."""
    buffer = io.BytesIO()
    workbook = new_workbook(buffer)
    formats = XlsxFormats.of(workbook)
    for sheet_spec in sheets:
        write_table_sheet(workbook, sheet_spec, lang=lang, formats=formats)
    write_about_sheet(workbook, about, lang=lang, formats=formats)
    workbook.close()
    return buffer.getvalue()


def _sheet_title(title: str) -> str:
    # Excel's limits: 31 characters, none of []:*?/\ .
    cleaned = "".join(" " if character in "[]:*?/\\" else character for character in title)
    return cleaned[:31] or "Sheet"


def attachment_filename(report: str, day_from: date, day_to: date, extension: str) -> str:
    """``trend-2026-11-01-to-2026-11-30.xlsx``: what, and over which days."""
    return f"{report}-{day_from.isoformat()}-to-{day_to.isoformat()}.{extension}"
