"""The management briefing as a 16:9 slide deck (python-pptx), with native charts.

Every chart is a PowerPoint chart with its data in the embedded workbook, so a reader can
restyle it or edit its numbers in PowerPoint or LibreOffice Impress: the weekly trend is a
line chart with the Wilson intervals as error bars, the comparison a bar chart with the
target as a line (one chart, two types), the error breakdown stacked bars. Tables carry what
a chart would not say better. Every number, percentage and date a person reads is formatted
by ``shared.analytics.formatting`` in the asked language (German decimal commas and dates),
also the chart's data labels; the axes use number formats written for the language.

The deck needs no images or fonts of its own: text is set in Arial, which LibreOffice maps to
the metric-compatible Liberation Sans.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pptx import Presentation
from pptx.chart.chart import Chart
from pptx.chart.data import CategoryChartData
from pptx.dml.color import RGBColor
from pptx.enum.chart import XL_CHART_TYPE, XL_LABEL_POSITION, XL_LEGEND_POSITION, XL_MARKER_STYLE
from pptx.enum.dml import MSO_LINE_DASH_STYLE
from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import MSO_ANCHOR, PP_ALIGN
from pptx.oxml import parse_xml
from pptx.oxml.ns import nsdecls, qn
from pptx.slide import Slide
from pptx.util import Emu, Inches, Pt

from shared.analytics.exports import FIELD_LABELS
from shared.analytics.formatting import format_date, format_number, format_percent, format_period
from shared.analytics.schemas import Briefing, ComparisonRow, ErrorsRow
from shared.schemas.reports import ReportLanguage

# python-pptx's annotations are partial (untyped constructors; add_chart is said to return
# the chart rather than its graphic frame): its objects are handled as Any at these entry points.
_RGB: Any = RGBColor
_ChartData: Any = CategoryChartData


def _shapes(slide: Slide) -> Any:
    return slide.shapes


PPTX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

FONT = "Arial"
NAVY = _RGB(0x1F, 0x3A, 0x5F)
BLUE = _RGB(0x2E, 0x6D, 0xA4)
LIGHT_BLUE = _RGB(0x9D, 0xBC, 0xDB)
AMBER = _RGB(0xE0, 0x9F, 0x3E)
RED = _RGB(0xC0, 0x39, 0x2B)
GREY = _RGB(0x6B, 0x72, 0x80)
LIGHT_GREY = _RGB(0xF2, 0xF4, 0xF7)
RULE_GREY = _RGB(0xD5, 0xDA, 0xE1)
WHITE = _RGB(0xFF, 0xFF, 0xFF)
TEXT = _RGB(0x1F, 0x29, 0x37)
# One colour per error type, in the order of ERROR_TYPES.
ERROR_COLOURS = (NAVY, BLUE, LIGHT_BLUE, AMBER)
ERROR_TYPES = ("missed_violation", "over_enforcement", "wrong_policy", "wrong_action")

SLIDE_WIDTH = Inches(13.333)
SLIDE_HEIGHT = Inches(7.5)
MARGIN = Inches(0.6)
CONTENT_TOP = Inches(1.45)
CONTENT_WIDTH = Emu(SLIDE_WIDTH - 2 * MARGIN)
CONTENT_HEIGHT = Inches(5.35)
DASH = "\u2013"  # an en dash: no value
# The trend slide's table shows the last periods only (a year of weeks would not fit).
TREND_COLUMNS = 6

# Axis number formats per language: a percent sign in the format scales by 100, and German
# writes a (non-breaking) space before it, as Babel does in the labels.
_AXIS_PERCENT: Mapping[ReportLanguage, str] = {"en": "0%", "de": "0\u00a0%"}

TEXTS: Mapping[str, Mapping[ReportLanguage, str]] = {
    "deck_title": {"en": "Quality briefing", "de": "Qualitätsbericht"},
    "all_markets": {"en": "All markets", "de": "Alle Märkte"},
    "market": {"en": "Market {market}", "de": "Markt {market}"},
    "period": {"en": "{start} to {end}", "de": "{start} bis {end}"},
    "footer": {"en": "Plumbline quality briefing", "de": "Plumbline-Qualitätsbericht"},
    "headline_title": {"en": "At a glance", "de": "Auf einen Blick"},
    "accuracy": {"en": "Accuracy (audited sample)", "de": "Genauigkeit (Stichprobe)"},
    "population_accuracy": {
        "en": "Accuracy (all decisions)",
        "de": "Genauigkeit (gesamt)",
    },
    "coverage": {"en": "Estimate coverage", "de": "Abdeckung der Schätzung"},
    "ci": {"en": "95% CI {low} to {high}", "de": "95-%-KI {low} bis {high}"},
    "audit_share": {"en": "{share} of decisions", "de": "{share} der Entscheidungen"},
    "of_audited": {"en": "{correct} correct", "de": "{correct} korrekt"},
    "severity_weighted": {"en": "severity-weighted", "de": "nach Schwere gewichtet"},
    "coverage_detail": {
        "en": "of decisions in audited strata",
        "de": "der Entscheidungen in geprüften Schichten",
    },
    "dispute_detail": {"en": "of incorrect verdicts", "de": "der Fehlerurteile"},
    "overturn_detail": {"en": "of disputes", "de": "der Anfechtungen"},
    "trend_week_title": {"en": "Accuracy by week", "de": "Genauigkeit pro Woche"},
    "trend_day_title": {"en": "Accuracy by day", "de": "Genauigkeit pro Tag"},
    "trend_month_title": {"en": "Accuracy by month", "de": "Genauigkeit pro Monat"},
    "trend_subtitle": {
        "en": "Audited accuracy with its 95% Wilson interval; target {target}",
        "de": "Geprüfte Genauigkeit mit 95-%-Wilson-Intervall; Ziel {target}",
    },
    "series_accuracy": {"en": "Accuracy", "de": "Genauigkeit"},
    "series_target": {"en": "Target", "de": "Ziel"},
    "no_significant": {
        "en": "No change from one period to the next is significant at \u03b1 = {alpha}.",
        "de": "Keine Veränderung zur Vorperiode ist bei \u03b1 = {alpha} signifikant.",
    },
    "significant": {
        "en": "Significant change (\u03b1 = {alpha}): {periods}.",
        "de": "Signifikante Veränderung (\u03b1 = {alpha}): {periods}.",
    },
    "comparison_title_market": {"en": "Markets against the target", "de": "Märkte im Vergleich"},
    "comparison_title_queue": {"en": "Queues against the target", "de": "Queues im Vergleich"},
    "comparison_title_policy": {
        "en": "Policies against the target",
        "de": "Richtlinien im Vergleich",
    },
    "comparison_subtitle": {
        "en": "Ranked by the upper end of the 95% interval, furthest below {target} first",
        "de": "Nach oberer Grenze des 95-%-Intervalls, am weitesten unter {target} zuerst",
    },
    "small_footnote": {
        "en": "* fewer than {n} audits: shown, never ranked",
        "de": "* weniger als {n} Prüfungen: gezeigt, nicht gereiht",
    },
    "col_rank": {"en": "Rank", "de": "Rang"},
    "col_slice_market": {"en": "Market", "de": "Markt"},
    "col_slice_queue": {"en": "Queue", "de": "Queue"},
    "col_slice_policy": {"en": "Policy", "de": "Richtlinie"},
    "col_audited": {"en": "Audited", "de": "Geprüft"},
    "col_accuracy": {"en": "Accuracy", "de": "Genauigkeit"},
    "col_ci": {"en": "95% CI", "de": "95-%-KI"},
    "col_q": {"en": "q-value", "de": "q-Wert"},
    "col_change": {"en": "Change", "de": "Veränderung"},
    "points": {"en": "pp", "de": "Pp."},
    "errors_title": {"en": "Where the errors are", "de": "Wo die Fehler liegen"},
    "errors_subtitle": {
        "en": "Incorrect verdicts by error type; quality score weights severity {weights}",
        "de": "Fehlerurteile nach Fehlerart; der Qualitätswert gewichtet die Schwere {weights}",
    },
    "col_error_rate": {"en": "Error rate", "de": "Fehlerquote"},
    "col_score": {"en": "Quality score", "de": "Qualitätswert"},
    "col_severity": {"en": "Critical / major / minor", "de": "Kritisch / schwer / leicht"},
    "calibration_title": {"en": "Calibration agreement", "de": "Kalibrierung: Übereinstimmung"},
    "calibration_subtitle": {
        "en": "Sessions closed in the period; agreement as computed at their close",
        "de": "Im Zeitraum abgeschlossene Sitzungen; Übereinstimmung zum Abschluss",
    },
    "no_calibrations": {
        "en": "No calibration session was closed in this period.",
        "de": "In diesem Zeitraum wurde keine Kalibrierungssitzung abgeschlossen.",
    },
    "col_session": {"en": "Session", "de": "Sitzung"},
    "col_market": {"en": "Market", "de": "Markt"},
    "col_closed": {"en": "Closed", "de": "Abgeschlossen"},
    "col_alpha": {"en": "Krippendorff's \u03b1", "de": "Krippendorffs \u03b1"},
    "col_agreement": {"en": "Agreement", "de": "Übereinstimmung"},
    "col_items": {"en": "Items", "de": "Elemente"},
    "col_raters": {"en": "Raters", "de": "Bewertende"},
    "col_flagged": {"en": "Flagged", "de": "Markiert"},
    "escalations_title": {"en": "Open escalations", "de": "Offene Eskalationen"},
    "no_escalations": {
        "en": "No open escalation.",
        "de": "Keine offene Eskalation.",
    },
    "col_metric": {"en": "Metric", "de": "Kennzahl"},
    "col_slice": {"en": "Slice", "de": "Ausschnitt"},
    "col_status": {"en": "Status", "de": "Status"},
    "col_opened": {"en": "Opened", "de": "Eröffnet"},
    "learning_title": {"en": "Quizzes and training", "de": "Quiz und Schulung"},
    "learning_subtitle": {
        "en": "Quiz attempts in the period; training items due in the period",
        "de": "Quizversuche im Zeitraum; im Zeitraum fällige Schulungsaufgaben",
    },
    "no_quizzes": {
        "en": "No quiz was attempted in this period.",
        "de": "In diesem Zeitraum wurde kein Quiz bearbeitet.",
    },
    "no_training": {
        "en": "No training item was due in this period.",
        "de": "In diesem Zeitraum war keine Schulungsaufgabe fällig.",
    },
    "col_quiz": {"en": "Quiz", "de": "Quiz"},
    "col_reviewers": {"en": "Reviewers", "de": "Prüfende"},
    "col_passed": {"en": "Passed", "de": "Bestanden"},
    "col_pass_rate": {"en": "Pass rate", "de": "Bestehensquote"},
    "col_mean_score": {"en": "Mean score", "de": "Mittlere Punktzahl"},
    "col_plan": {"en": "Training plan", "de": "Schulungsplan"},
    "col_due": {"en": "Items due", "de": "Fällig"},
    "col_done": {"en": "Done", "de": "Erledigt"},
    "col_completion": {"en": "Completion", "de": "Erledigt (Anteil)"},
    "col_overdue": {"en": "Overdue", "de": "Überfällig"},
    "empty_chart": {
        "en": "No audits in this period.",
        "de": "Keine Prüfungen in diesem Zeitraum.",
    },
}


def text(key: str, lang: ReportLanguage, **values: str) -> str:
    """The deck's text ``key`` in ``lang``, with ``values`` filled in; a report column's
    name (``audited``, ``wrong_policy``...) reads as the column header every file uses."""
    texts = TEXTS.get(key) or FIELD_LABELS[key]
    return texts[lang].format(**values)


def _percent(value: float | None, lang: ReportLanguage, digits: int = 1) -> str:
    return DASH if value is None else format_percent(value, lang, digits=digits)


def _count(value: int, lang: ReportLanguage) -> str:
    return format_number(value, lang)


def _interval(low: float | None, high: float | None, lang: ReportLanguage) -> str:
    if low is None or high is None:
        return DASH
    return text("ci", lang, low=_percent(low, lang), high=_percent(high, lang))


def _bare_interval(low: float | None, high: float | None, lang: ReportLanguage) -> str:
    if low is None or high is None:
        return DASH
    return f"{_percent(low, lang)} {DASH} {_percent(high, lang)}"


# --- drawing helpers ----------------------------------------------------------------------


def _style_run(run: Any, *, size: float, bold: bool = False, colour: RGBColor = TEXT) -> None:
    run.font.name = FONT
    run.font.size = Pt(size)
    run.font.bold = bold
    run.font.color.rgb = colour


def _text_box(
    slide: Slide,
    left: int,
    top: int,
    width: int,
    height: int,
    lines: Sequence[tuple[str, float, bool, RGBColor]],
    *,
    align: PP_ALIGN = PP_ALIGN.LEFT,
    anchor: MSO_ANCHOR = MSO_ANCHOR.TOP,
) -> Any:
    """A text box with one paragraph per (text, size, bold, colour)."""
    box = _shapes(slide).add_textbox(left, top, width, height)
    frame = box.text_frame
    frame.word_wrap = True
    frame.vertical_anchor = anchor
    frame.margin_left = frame.margin_right = Inches(0.05)
    for index, (content, size, bold, colour) in enumerate(lines):
        paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
        paragraph.alignment = align
        if index:
            paragraph.space_before = Pt(size * 0.35)
        _style_run(paragraph.add_run(), size=size, bold=bold, colour=colour)
        paragraph.runs[0].text = content
    return box


def _rectangle(slide: Slide, left: int, top: int, width: int, height: int, fill: RGBColor) -> Any:
    shape = _shapes(slide).add_shape(MSO_SHAPE.RECTANGLE, left, top, width, height)
    shape.fill.solid()
    shape.fill.fore_color.rgb = fill
    shape.line.fill.background()
    # Flat: without the theme's shape style (its shadow and outline) every application
    # draws the same plain rectangle.
    style = shape._element.find(qn("p:style"))
    if style is not None:
        shape._element.remove(style)
    return shape


@dataclass(slots=True)
class _Deck:
    """The presentation being written and what every slide repeats."""

    presentation: Any
    lang: ReportLanguage
    period: str
    slides: int = 0

    def slide(self, title: str, subtitle: str | None = None) -> Slide:
        """A content slide: title, optional subtitle, a rule, and the footer."""
        slide: Slide = self.presentation.slides.add_slide(self.presentation.slide_layouts[6])
        self.slides += 1
        _rectangle(slide, 0, 0, Inches(0.18), SLIDE_HEIGHT, NAVY)
        _text_box(
            slide,
            MARGIN,
            Inches(0.35),
            CONTENT_WIDTH,
            Inches(0.6),
            [(title, 28, True, NAVY)],
        )
        if subtitle:
            _text_box(
                slide,
                MARGIN,
                Inches(0.88),
                CONTENT_WIDTH,
                Inches(0.4),
                [(subtitle, 14, False, GREY)],
            )
        _rectangle(slide, MARGIN, Inches(1.3), CONTENT_WIDTH, Emu(Pt(1.5)), RULE_GREY)
        footer_top = Inches(7.0)
        _text_box(
            slide,
            MARGIN,
            footer_top,
            Inches(9),
            Inches(0.35),
            [(f"{text('footer', self.lang)} · {self.period}", 10, False, GREY)],
        )
        _text_box(
            slide,
            Emu(SLIDE_WIDTH - MARGIN - Inches(1.5)),
            footer_top,
            Inches(1.5),
            Inches(0.35),
            [(format_number(self.slides, self.lang), 10, False, GREY)],
            align=PP_ALIGN.RIGHT,
        )
        return slide


def _table(
    slide: Slide,
    left: int,
    top: int,
    width: int,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    widths: Sequence[float],
    numeric: Sequence[bool],
    size: float = 12,
) -> Any:
    """A table with a navy header and banded rows, fills set on each cell (so every
    application shows the same, whatever its table styles)."""
    row_height = Inches(0.36 if size >= 12 else 0.32)
    shape = _shapes(slide).add_table(
        len(rows) + 1, len(header), left, top, width, Emu(row_height * (len(rows) + 1))
    )
    table = shape.table
    total = sum(widths)
    for index, share in enumerate(widths):
        table.columns[index].width = Emu(int(width * share / total))
    for row_index in range(len(rows) + 1):
        table.rows[row_index].height = row_height
        cells = header if row_index == 0 else rows[row_index - 1]
        for column, content in enumerate(cells):
            cell = table.cell(row_index, column)
            cell.fill.solid()
            if row_index == 0:
                cell.fill.fore_color.rgb = NAVY
            else:
                cell.fill.fore_color.rgb = LIGHT_GREY if row_index % 2 == 0 else WHITE
            cell.margin_left = cell.margin_right = Inches(0.08)
            cell.margin_top = cell.margin_bottom = Inches(0.03)
            cell.vertical_anchor = MSO_ANCHOR.MIDDLE
            paragraph = cell.text_frame.paragraphs[0]
            paragraph.alignment = PP_ALIGN.RIGHT if numeric[column] else PP_ALIGN.LEFT
            run = paragraph.add_run()
            run.text = content
            _style_run(
                run,
                size=size,
                bold=row_index == 0,
                colour=WHITE if row_index == 0 else TEXT,
            )
    return shape


def _chart_text(chart: Chart, *, size: float = 12) -> None:
    chart.font.name = FONT
    chart.font.size = Pt(size)
    chart.font.color.rgb = TEXT


def _percent_axis(
    chart: Chart, lang: ReportLanguage, *, low: float, high: float, step: float
) -> None:
    axis = chart.value_axis
    axis.minimum_scale = low
    axis.maximum_scale = high
    axis.major_unit = step
    axis.tick_labels.number_format = _AXIS_PERCENT[lang]
    axis.tick_labels.number_format_is_linked = False
    axis.has_major_gridlines = True
    axis.major_gridlines.format.line.color.rgb = RULE_GREY
    axis.format.line.fill.background()


def _axis_range(values: Sequence[float], target: float | None) -> tuple[float, float, float]:
    """A value axis around ``values`` (and the target), in whole steps: accuracy lives near
    100 %, and an axis from 0 would show every slice the same."""
    points = [*values, *([target] if target is not None else [])]
    if not points:
        return 0.0, 1.0, 0.2
    lowest = min(points)
    span = 1.0 - lowest
    step = 0.01 if span <= 0.06 else 0.02 if span <= 0.12 else 0.05 if span <= 0.3 else 0.1
    low = max(0.0, (int(lowest / step) - 1) * step)
    return round(low, 4), 1.0, step


def _label_points(
    series: Any,
    labels: Sequence[str | None],
    *,
    size: float = 11,
    colour: RGBColor = TEXT,
    bold: bool = False,
) -> None:
    """Data labels with our own text (Babel's formatting, not the application's)."""
    for index, label in enumerate(labels):
        if label is None:
            continue
        frame = series.points[index].data_label.text_frame
        frame.text = label
        for run in frame.paragraphs[0].runs:
            _style_run(run, size=size, colour=colour, bold=bold)


def _error_bars(series: Any, plus: Sequence[float], minus: Sequence[float]) -> None:
    """Custom Y error bars (the Wilson interval around each point), written into the
    series' XML as OOXML defines them (python-pptx has no API for error bars)."""

    def literal(values: Sequence[float]) -> str:
        points = "".join(
            f'<c:pt idx="{index}"><c:v>{value:.6f}</c:v></c:pt>'
            for index, value in enumerate(values)
        )
        return (
            f"<c:numLit><c:formatCode>General</c:formatCode>"
            f'<c:ptCount val="{len(values)}"/>{points}</c:numLit>'
        )

    bars = parse_xml(
        f"<c:errBars {nsdecls('c', 'a')}>"
        '<c:errDir val="y"/><c:errBarType val="both"/><c:errValType val="cust"/>'
        '<c:noEndCap val="0"/>'
        f"<c:plus>{literal(plus)}</c:plus><c:minus>{literal(minus)}</c:minus>"
        '<c:spPr><a:ln w="15875"><a:solidFill><a:srgbClr val="1F2937"/></a:solidFill>'
        "</a:ln></c:spPr></c:errBars>"
    )
    ser = series._element  # python-pptx has no error-bar API
    ser.find(qn("c:cat")).addprevious(bars)


def _target_as_line(chart: Chart, colour: RGBColor) -> None:
    """Turn the bar chart's last series (the target) into a line on the same axes: one
    chart with two types, which python-pptx cannot build directly. The series keeps its
    column in the embedded workbook, so the target stays editable."""
    plot_area = chart._chartSpace.find(qn("c:chart")).find(qn("c:plotArea"))
    bar = plot_area.find(qn("c:barChart"))
    target = bar.findall(qn("c:ser"))[-1]
    bar.remove(target)
    for name in ("c:invertIfNegative", "c:dLbls", "c:errBars"):
        element = target.find(qn(name))
        if element is not None:
            target.remove(element)
    rgb = str(colour)
    sp_pr = target.find(qn("c:spPr"))
    if sp_pr is not None:
        target.remove(sp_pr)
    line_format = parse_xml(
        f"<c:spPr {nsdecls('c', 'a')}>"
        f'<a:ln w="28575"><a:solidFill><a:srgbClr val="{rgb}"/></a:solidFill>'
        '<a:prstDash val="dash"/></a:ln></c:spPr>'
    )
    marker = parse_xml(f'<c:marker {nsdecls("c")}><c:symbol val="none"/></c:marker>')
    target.find(qn("c:tx")).addnext(line_format)
    line_format.addnext(marker)
    target.append(parse_xml(f'<c:smooth {nsdecls("c")} val="0"/>'))
    axis_ids = "".join(f'<c:axId val="{axis.get("val")}"/>' for axis in bar.findall(qn("c:axId")))
    line = parse_xml(
        f"<c:lineChart {nsdecls('c')}>"
        '<c:grouping val="standard"/><c:varyColors val="0"/>'
        f'<c:marker val="1"/>{axis_ids}</c:lineChart>'
    )
    line.insert(2, target)
    bar.addnext(line)


# --- slides -------------------------------------------------------------------------------


def _title_slide(deck: _Deck, briefing: Briefing) -> None:
    lang = deck.lang
    slide = deck.presentation.slides.add_slide(deck.presentation.slide_layouts[6])
    deck.slides += 1
    _rectangle(slide, 0, 0, Inches(4.4), SLIDE_HEIGHT, NAVY)
    _rectangle(slide, Inches(4.4), 0, Inches(0.12), SLIDE_HEIGHT, BLUE)
    _text_box(
        slide,
        Inches(0.6),
        Inches(0.6),
        Inches(3.4),
        Inches(0.5),
        [("Plumbline", 20, True, WHITE)],
    )
    scope = (
        text("all_markets", lang)
        if briefing.market is None
        else text("market", lang, market=briefing.market)
    )
    _text_box(
        slide,
        Inches(5.2),
        Inches(2.3),
        Inches(7.5),
        Inches(3.0),
        [
            (text("deck_title", lang), 44, True, NAVY),
            (scope, 24, False, BLUE),
            (deck.period, 20, False, GREY),
        ],
    )


def _tile(
    slide: Slide,
    left: int,
    top: int,
    width: int,
    height: int,
    label: str,
    value: str,
    detail: Sequence[str],
) -> None:
    _rectangle(slide, left, top, width, height, LIGHT_GREY)
    _rectangle(slide, left, top, Inches(0.07), height, BLUE)
    _text_box(
        slide,
        Emu(left + Inches(0.2)),
        Emu(top + Inches(0.15)),
        Emu(width - Inches(0.3)),
        Emu(height - Inches(0.3)),
        [
            (label, 13, False, GREY),
            (value, 32, True, NAVY),
            *((line, 12, False, GREY) for line in detail),
        ],
    )


def _headline_slide(deck: _Deck, briefing: Briefing) -> None:
    lang = deck.lang
    head = briefing.headline
    slide = deck.slide(text("headline_title", lang), head.note)
    audit_share = head.audited / head.decisions if head.decisions else None
    tiles: list[tuple[str, str, list[str]]] = [
        (
            text("accuracy", lang),
            _percent(head.accuracy, lang),
            [_interval(head.ci_low, head.ci_high, lang)],
        ),
        (
            text("population_accuracy", lang),
            _percent(head.population_accuracy, lang),
            [_interval(head.population_ci_low, head.population_ci_high, lang)],
        ),
        (
            text("quality_score", lang),
            _percent(head.quality_score, lang),
            [text("severity_weighted", lang)],
        ),
        (
            text("coverage", lang),
            _percent(head.coverage, lang),
            [text("coverage_detail", lang)],
        ),
        (text("decisions", lang), _count(head.decisions, lang), []),
        (
            text("audited", lang),
            _count(head.audited, lang),
            [text("audit_share", lang, share=_percent(audit_share, lang, digits=2))],
        ),
        (
            text("dispute_rate", lang),
            _percent(head.dispute_rate, lang),
            [
                text("dispute_detail", lang),
                _interval(head.dispute_rate_ci_low, head.dispute_rate_ci_high, lang),
            ],
        ),
        (
            text("overturn_rate", lang),
            _percent(head.overturn_rate, lang),
            [
                text("overturn_detail", lang),
                _interval(head.overturn_rate_ci_low, head.overturn_rate_ci_high, lang),
            ],
        ),
    ]
    gap = Inches(0.25)
    columns = 4
    width = Emu(int((CONTENT_WIDTH - gap * (columns - 1)) / columns))
    height = Inches(2.35)
    for index, (label, value, detail) in enumerate(tiles):
        row, column = divmod(index, columns)
        _tile(
            slide,
            Emu(MARGIN + column * (width + gap)),
            Emu(Inches(1.75) + row * (height + gap)),
            width,
            height,
            label,
            value,
            detail,
        )


def _empty_note(slide: Slide, message: str) -> None:
    _text_box(
        slide,
        MARGIN,
        Inches(3.2),
        CONTENT_WIDTH,
        Inches(0.8),
        [(message, 20, False, GREY)],
        align=PP_ALIGN.CENTER,
    )


def _trend_slide(deck: _Deck, briefing: Briefing) -> None:
    lang = deck.lang
    trend = briefing.trend
    target = briefing.comparison.target
    slide = deck.slide(
        text(f"trend_{trend.interval}_title", lang),
        text("trend_subtitle", lang, target=_percent(target, lang, digits=0)),
    )
    rows = trend.rows
    if not any(row.audited for row in rows):
        _empty_note(slide, text("empty_chart", lang))
        return
    data = _ChartData()
    data.categories = [format_period(row.period_start, trend.interval, lang) for row in rows]
    data.add_series(
        text("series_accuracy", lang), [row.accuracy for row in rows], number_format="0.0%"
    )
    data.add_series(text("series_target", lang), [target for _ in rows], number_format="0.0%")
    frame = _shapes(slide).add_chart(
        XL_CHART_TYPE.LINE_MARKERS,
        MARGIN,
        CONTENT_TOP,
        CONTENT_WIDTH,
        Inches(3.35),
        data,
    )
    chart = frame.chart
    _chart_text(chart)
    accuracy_series, target_series = chart.plots[0].series
    accuracy_series.format.line.color.rgb = BLUE
    accuracy_series.format.line.width = Pt(2.75)
    accuracy_series.smooth = False
    accuracy_series.marker.size = 8
    accuracy_series.marker.format.fill.solid()
    accuracy_series.marker.format.fill.fore_color.rgb = BLUE
    accuracy_series.marker.format.line.color.rgb = WHITE
    _error_bars(
        accuracy_series,
        plus=[
            0.0 if r.ci_high is None or r.accuracy is None else r.ci_high - r.accuracy for r in rows
        ],
        minus=[
            0.0 if r.ci_low is None or r.accuracy is None else r.accuracy - r.ci_low for r in rows
        ],
    )
    target_series.format.line.color.rgb = RED
    target_series.format.line.width = Pt(2)
    target_series.format.line.dash_style = MSO_LINE_DASH_STYLE.DASH
    target_series.smooth = False
    target_series.marker.style = XL_MARKER_STYLE.NONE
    lows = [row.ci_low for row in rows if row.ci_low is not None]
    low, high, step = _axis_range(lows, target)
    _percent_axis(chart, lang, low=low, high=high, step=step)
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False
    significant = [
        format_period(row.period_start, trend.interval, lang) for row in rows if row.significant
    ]
    alpha = _percent(trend.alpha, lang, digits=0)
    note = (
        text("significant", lang, alpha=alpha, periods="; ".join(significant))
        if significant
        else text("no_significant", lang, alpha=alpha)
    )
    _trend_table(slide, briefing, lang)
    _text_box(slide, MARGIN, Inches(6.55), CONTENT_WIDTH, Inches(0.4), [(note, 12, False, GREY)])


def _change(change: float | None, lang: ReportLanguage) -> str:
    """A change of accuracy in percentage points, signed: +1.2 pp (en), +1,2 Pp. (de)."""
    if change is None:
        return DASH
    points = format_number(abs(change) * 100, lang, digits=1)
    sign = "+" if change > 0 else "\u2212" if change < 0 else "\u00b1"
    return f"{sign}{points}\u00a0{text('points', lang)}"


def _trend_table(slide: Slide, briefing: Briefing, lang: ReportLanguage) -> None:
    """The numbers under the trend chart, a column per period (the last ``TREND_COLUMNS``):
    accuracy, its interval, the audits, and the change with its p-value."""
    trend = briefing.trend
    rows = trend.rows[-TREND_COLUMNS:]
    header = ["", *(format_period(row.period_start, trend.interval, lang) for row in rows)]
    body = [
        [text("series_accuracy", lang), *(_percent(row.accuracy, lang) for row in rows)],
        [text("col_ci", lang), *(_bare_interval(row.ci_low, row.ci_high, lang) for row in rows)],
        [text("col_audited", lang), *(_count(row.audited, lang) for row in rows)],
        [
            text("col_change", lang),
            *(
                _change(row.change, lang)
                if row.p_value is None
                else f"{_change(row.change, lang)} (p\u00a0=\u00a0"
                f"{format_number(row.p_value, lang, digits=2)})"
                for row in rows
            ),
        ],
    ]
    _table(
        slide,
        MARGIN,
        Inches(4.9),
        CONTENT_WIDTH,
        header,
        body,
        widths=[1.5, *(2.0 for _ in rows)],
        numeric=[False, *(True for _ in rows)],
        size=11,
    )


def _slice_label(row: ComparisonRow | ErrorsRow) -> str:
    return f"{row.key}*" if row.small_sample else row.key


def _comparison_slide(deck: _Deck, briefing: Briefing, min_audits: int) -> None:
    lang = deck.lang
    comparison = briefing.comparison
    target = comparison.target
    slide = deck.slide(
        text(f"comparison_title_{comparison.dimension}", lang),
        text("comparison_subtitle", lang, target=_percent(target, lang, digits=0)),
    )
    rows = [row for row in comparison.rows if row.accuracy is not None]
    if not rows:
        _empty_note(slide, text("empty_chart", lang))
        return
    chart_width = Inches(7.3)
    data = _ChartData()
    data.categories = [_slice_label(row) for row in rows]
    data.add_series(
        text("series_accuracy", lang), [row.accuracy for row in rows], number_format="0.0%"
    )
    data.add_series(text("series_target", lang), [target for _ in rows], number_format="0.0%")
    frame = _shapes(slide).add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, MARGIN, CONTENT_TOP, chart_width, Inches(5.1), data
    )
    chart = frame.chart
    _chart_text(chart)
    plot = chart.plots[0]
    plot.gap_width = 60
    bars = plot.series[0]
    bars.format.fill.solid()
    bars.format.fill.fore_color.rgb = BLUE
    for index, row in enumerate(rows):
        if row.small_sample:
            point = bars.points[index]
            point.format.fill.solid()
            point.format.fill.fore_color.rgb = LIGHT_BLUE
        elif row.below_target:
            point = bars.points[index]
            point.format.fill.solid()
            point.format.fill.fore_color.rgb = AMBER
    _label_points(
        bars, [_percent(row.accuracy, lang) for row in rows], size=10, colour=WHITE, bold=True
    )
    bars.data_labels.position = XL_LABEL_POSITION.INSIDE_BASE
    _error_bars(
        bars,
        plus=[(row.ci_high or 0.0) - (row.accuracy or 0.0) for row in rows],
        minus=[(row.accuracy or 0.0) - (row.ci_low or 0.0) for row in rows],
    )
    _target_as_line(chart, RED)
    # The axis follows the ranked slices' intervals: a small sample's wide interval would
    # squash every other bar (its error bar is cut at the axis instead).
    low, high, step = _axis_range(
        [(row.accuracy if row.small_sample else row.ci_low) or 0.0 for row in rows],
        target,
    )
    _percent_axis(chart, lang, low=low, high=high, step=step)
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False

    table_left = Emu(MARGIN + chart_width + Inches(0.3))
    table_width = Emu(SLIDE_WIDTH - MARGIN - table_left)
    header = [
        text("col_rank", lang),
        text(f"col_slice_{comparison.dimension}", lang),
        text("col_audited", lang),
        text("col_accuracy", lang),
        text("col_q", lang),
    ]
    table_rows = [
        [
            DASH if row.rank is None else format_number(row.rank, lang),
            _slice_label(row),
            _count(row.audited, lang),
            _percent(row.accuracy, lang),
            DASH if row.q_value is None else format_number(row.q_value, lang, digits=3),
        ]
        for row in comparison.rows[:12]
    ]
    _table(
        slide,
        table_left,
        CONTENT_TOP,
        table_width,
        header,
        table_rows,
        widths=[0.7, 1.3, 1.1, 1.3, 1.0],
        numeric=[True, False, True, True, True],
        size=11,
    )
    if any(row.small_sample for row in comparison.rows):
        _text_box(
            slide,
            MARGIN,
            Inches(6.6),
            CONTENT_WIDTH,
            Inches(0.35),
            [(text("small_footnote", lang, n=format_number(min_audits, lang)), 11, False, GREY)],
        )


def _errors_slide(deck: _Deck, briefing: Briefing, min_audits: int) -> None:
    lang = deck.lang
    errors = briefing.errors
    weights = errors.severity_weights
    weight_text = " / ".join(
        format_number(weights[name], lang)
        for name in ("critical", "major", "minor")
        if name in weights
    )
    slide = deck.slide(
        text("errors_title", lang),
        text("errors_subtitle", lang, weights=weight_text),
    )
    rows = [row for row in errors.rows if row.audited]
    if not rows:
        _empty_note(slide, text("empty_chart", lang))
        return
    chart_width = Inches(6.9)
    data = _ChartData()
    data.categories = [_slice_label(row) for row in rows]
    for name in ERROR_TYPES:
        data.add_series(
            text(name, lang), [getattr(row, name) for row in rows], number_format="#,##0"
        )
    frame = _shapes(slide).add_chart(
        XL_CHART_TYPE.COLUMN_STACKED, MARGIN, CONTENT_TOP, chart_width, Inches(5.1), data
    )
    chart = frame.chart
    _chart_text(chart)
    chart.plots[0].gap_width = 60
    chart.plots[0].overlap = 100
    for series, colour in zip(chart.plots[0].series, ERROR_COLOURS, strict=True):
        series.format.fill.solid()
        series.format.fill.fore_color.rgb = colour
    chart.value_axis.has_major_gridlines = True
    chart.value_axis.major_gridlines.format.line.color.rgb = RULE_GREY
    chart.value_axis.tick_labels.number_format = "#,##0"
    chart.value_axis.tick_labels.number_format_is_linked = False
    chart.value_axis.format.line.fill.background()
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False

    table_left = Emu(MARGIN + chart_width + Inches(0.3))
    table_width = Emu(SLIDE_WIDTH - MARGIN - table_left)
    header = [
        text(f"col_slice_{briefing.dimension}", lang),
        text("col_error_rate", lang),
        text("col_score", lang),
        text("col_severity", lang),
    ]
    table_rows = [
        [
            _slice_label(row),
            _percent(row.error_rate, lang),
            _percent(row.quality_score, lang),
            " / ".join(_count(value, lang) for value in (row.critical, row.major, row.minor)),
        ]
        for row in errors.rows[:12]
    ]
    _table(
        slide,
        table_left,
        CONTENT_TOP,
        table_width,
        header,
        table_rows,
        widths=[1.0, 1.1, 1.2, 1.7],
        numeric=[False, True, True, True],
        size=11,
    )
    if any(row.small_sample for row in errors.rows):
        _text_box(
            slide,
            MARGIN,
            Inches(6.6),
            CONTENT_WIDTH,
            Inches(0.35),
            [(text("small_footnote", lang, n=format_number(min_audits, lang)), 11, False, GREY)],
        )


def _table_slide(
    deck: _Deck,
    title: str,
    subtitle: str | None,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    widths: Sequence[float],
    numeric: Sequence[bool],
    empty: str,
) -> None:
    slide = deck.slide(title, subtitle)
    if not rows:
        _empty_note(slide, empty)
        return
    _table(
        slide, MARGIN, CONTENT_TOP, CONTENT_WIDTH, header, rows[:14], widths=widths, numeric=numeric
    )


def _calibration_slide(deck: _Deck, briefing: Briefing) -> None:
    lang = deck.lang
    _table_slide(
        deck,
        text("calibration_title", lang),
        text("calibration_subtitle", lang),
        [
            text("col_session", lang),
            text("col_market", lang),
            text("col_closed", lang),
            text("col_alpha", lang),
            text("col_agreement", lang),
            text("col_items", lang),
            text("col_raters", lang),
            text("col_flagged", lang),
        ],
        [
            [
                row.title,
                row.market,
                format_date(row.closed_at, lang),
                DASH
                if row.krippendorff_alpha is None
                else format_number(row.krippendorff_alpha, lang, digits=2),
                _percent(row.percent_agreement, lang),
                _count(row.n_units, lang),
                _count(row.n_raters, lang),
                _count(row.flagged_items, lang),
            ]
            for row in briefing.calibrations
        ],
        widths=[3.6, 0.9, 1.5, 1.5, 1.5, 0.9, 0.9, 1.0],
        numeric=[False, False, False, True, True, True, True, True],
        empty=text("no_calibrations", lang),
    )


def _escalations_slide(deck: _Deck, briefing: Briefing) -> None:
    lang = deck.lang
    section = briefing.escalations
    _table_slide(
        deck,
        text("escalations_title", lang),
        None,
        [
            text("col_metric", lang),
            text("col_slice", lang),
            text("col_status", lang),
            text("col_opened", lang),
        ],
        [
            [row.metric, row.slice, row.status, format_date(row.opened_at, lang)]
            for row in section.rows
        ],
        widths=[2.0, 3.0, 1.5, 1.5],
        numeric=[False, False, False, False],
        empty=text("no_escalations", lang),
    )


def _learning_slide(deck: _Deck, briefing: Briefing) -> None:
    lang = deck.lang
    slide = deck.slide(text("learning_title", lang), text("learning_subtitle", lang))
    top: int = CONTENT_TOP
    if briefing.quizzes:
        quizzes = briefing.quizzes[:6]
        _table(
            slide,
            MARGIN,
            top,
            CONTENT_WIDTH,
            [
                text("col_quiz", lang),
                text("col_reviewers", lang),
                text("col_passed", lang),
                text("col_pass_rate", lang),
                text("col_ci", lang),
                text("col_mean_score", lang),
            ],
            [
                [
                    row.title,
                    _count(row.reviewers, lang),
                    _count(row.passed, lang),
                    _percent(row.pass_rate, lang),
                    _bare_interval(row.pass_rate_ci_low, row.pass_rate_ci_high, lang),
                    _percent(row.mean_score, lang),
                ]
                for row in quizzes
            ],
            widths=[3.6, 1.1, 1.1, 1.6, 2.3, 1.6],
            numeric=[False, True, True, True, True, True],
        )
        top = Emu(top + Inches(0.36) * (len(quizzes) + 1) + Inches(0.45))
    else:
        _text_box(
            slide,
            MARGIN,
            top,
            CONTENT_WIDTH,
            Inches(0.5),
            [(text("no_quizzes", lang), 16, False, GREY)],
        )
        top = Emu(top + Inches(0.8))
    if briefing.training:
        _table(
            slide,
            MARGIN,
            top,
            CONTENT_WIDTH,
            [
                text("col_plan", lang),
                text("col_due", lang),
                text("col_done", lang),
                text("col_completion", lang),
                text("col_ci", lang),
                text("col_overdue", lang),
            ],
            [
                [
                    row.title,
                    _count(row.items, lang),
                    _count(row.completed, lang),
                    _percent(row.completion_rate, lang),
                    _bare_interval(row.completion_rate_ci_low, row.completion_rate_ci_high, lang),
                    _count(row.overdue, lang),
                ]
                for row in briefing.training[:6]
            ],
            widths=[3.6, 1.1, 1.1, 1.6, 2.3, 1.6],
            numeric=[False, True, True, True, True, True],
        )
    else:
        _text_box(
            slide,
            MARGIN,
            top,
            CONTENT_WIDTH,
            Inches(0.5),
            [(text("no_training", lang), 16, False, GREY)],
        )


SlideWriter = Callable[[_Deck, Briefing], None]


def briefing_pptx(briefing: Briefing, *, lang: ReportLanguage, min_audits: int = 30) -> bytes:
    """The briefing as a 16:9 deck: a title slide, the headline numbers, then one slide per
    section (trend, comparison, errors, calibration, escalations, quizzes and training).

    ``min_audits`` is the threshold the comparison applied (named in the footnote on slices
    shown but not ranked). CPU work: call it off the event loop.
    """
    presentation = Presentation()
    presentation.slide_width = SLIDE_WIDTH
    presentation.slide_height = SLIDE_HEIGHT
    period = text(
        "period",
        lang,
        start=format_date(briefing.day_from, lang),
        end=format_date(briefing.day_to, lang),
    )
    deck = _Deck(presentation=presentation, lang=lang, period=period)
    core = presentation.core_properties
    core.title = f"{text('deck_title', lang)}: {period}"
    core.author = "Plumbline"
    _title_slide(deck, briefing)
    _headline_slide(deck, briefing)
    _trend_slide(deck, briefing)
    _comparison_slide(deck, briefing, min_audits)
    _errors_slide(deck, briefing, min_audits)
    _calibration_slide(deck, briefing)
    _escalations_slide(deck, briefing)
    _learning_slide(deck, briefing)
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()
