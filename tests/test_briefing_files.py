"""The briefing's files: a PPTX deck and an XLSX workbook with native charts that open
cleanly where management opens them.

The structure is read back with python-pptx and openpyxl (the charts are charts, with their
data, not pictures). The rendering proof converts each file with a headless LibreOffice: it
writes no PDF for a file it would have to repair, so a PDF with a page per slide (per sheet)
shows the file opens without a repair prompt; the first pages are then rendered to PNG with
pdftoppm and must not be blank. Without soffice (or pdftoppm) those tests skip and say so;
.ci/run installs libreoffice-impress, libreoffice-calc and poppler-utils.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from PIL import Image, ImageStat
from pptx import Presentation
from pptx.enum.chart import XL_CHART_TYPE
from pptx.util import Inches

from shared.analytics.briefing_pptx import briefing_pptx
from shared.analytics.briefing_xlsx import SHEETS, briefing_xlsx
from shared.analytics.schemas import Briefing, EscalationsSection
from tests.support.briefing import sample_briefing
from tests.support.office import convert_to_pdf, pdf_page_count, pdftoppm, render_pages, soffice

pytestmark = pytest.mark.no_db

SLIDES = 8
SHEET_COUNT = len(SHEETS) + 1  # and About

needs_office = pytest.mark.skipif(
    soffice() is None or pdftoppm() is None,
    reason=(
        "soffice (Debian: libreoffice-impress, libreoffice-calc) or pdftoppm (poppler-utils) "
        "is not installed: the rendering proof needs both (.ci/run installs them)"
    ),
)


def _empty_briefing() -> Briefing:
    """The sample with nothing audited and nothing to list: every section says so."""
    briefing = sample_briefing()
    trend = briefing.trend.model_copy(
        update={
            "rows": [
                row.model_copy(
                    update={
                        "audited": 0,
                        "correct": 0,
                        "accuracy": None,
                        "ci_low": None,
                        "ci_high": None,
                        "change": None,
                        "p_value": None,
                        "note": "no audits",
                    }
                )
                for row in briefing.trend.rows
            ]
        }
    )
    return briefing.model_copy(
        update={
            "trend": trend,
            "comparison": briefing.comparison.model_copy(update={"rows": []}),
            "errors": briefing.errors.model_copy(update={"rows": []}),
            "calibrations": [],
            "escalations": EscalationsSection(rows=[], note="none yet"),
            "quizzes": [],
            "training": [],
        }
    )


def _slide_texts(slide: object) -> str:
    texts: list[str] = []
    for shape in slide.shapes:  # type: ignore[attr-defined]  # a python-pptx slide
        if shape.has_text_frame:
            texts.append(shape.text_frame.text)
        if shape.has_table:
            texts.extend(cell.text for row in shape.table.rows for cell in row.cells)
        if shape.has_chart:
            chart = shape.chart
            for plot in chart.plots:
                for series in plot.series:
                    for point in range(len(list(series.values))):
                        frame = series.points[point].data_label
                        if frame.has_text_frame:
                            texts.append(frame.text_frame.text)
    return "\n".join(texts)


def test_deck_is_16_by_9_with_native_editable_charts() -> None:
    deck = Presentation(io.BytesIO(briefing_pptx(sample_briefing(), lang="en")))
    assert (deck.slide_width, deck.slide_height) == (Inches(13.333), Inches(7.5))
    assert len(deck.slides) == SLIDES
    charts = [shape.chart for slide in deck.slides for shape in slide.shapes if shape.has_chart]
    assert len(charts) == 3
    trend, comparison, errors = charts
    assert [plot.__class__.__name__ for plot in trend.plots] == ["LinePlot"]
    # The comparison is one chart of two types: accuracy as columns, the target as a line.
    assert [plot.__class__.__name__ for plot in comparison.plots] == ["BarPlot", "LinePlot"]
    assert errors.chart_type == XL_CHART_TYPE.COLUMN_STACKED
    assert [series.name for series in errors.plots[0].series] == [
        "Missed violation",
        "Over-enforcement",
        "Wrong policy",
        "Wrong action",
    ]
    for chart in charts:
        # Editable: the numbers live in the chart's own embedded workbook.
        assert chart.part.chart_workbook.xlsx_part is not None
    # The Wilson intervals as custom error bars on the trend and the comparison.
    for chart in (trend, comparison):
        xml = chart._chartSpace.xml  # the chart part's XML
        assert "<c:errBars>" in xml
        assert '<c:errValType val="cust"/>' in xml
    accuracy = sample_briefing().comparison.rows[0].accuracy
    assert next(iter(comparison.plots[0].series[0].values)) == pytest.approx(accuracy)


def test_german_deck_formats_numbers_and_dates_in_german() -> None:
    """95.1 % is written 95,1 % (non-breaking space), 184,233 is 184.233, dates day first."""
    deck = Presentation(io.BytesIO(briefing_pptx(sample_briefing(), lang="de")))
    texts = "\n".join(_slide_texts(slide) for slide in deck.slides)
    assert "Qualitätsbericht" in texts
    assert "26.10.2026 bis 29.11.2026" in texts
    assert "184.233" in texts
    assert "95,1\u00a0%" in texts
    assert "90,2\u00a0%" in texts  # a chart data label (PL's accuracy)
    assert not re.search(r"\d\.\d\s?%", texts), "an English decimal point in a percentage"
    english = "\n".join(
        _slide_texts(slide)
        for slide in Presentation(io.BytesIO(briefing_pptx(sample_briefing(), lang="en"))).slides
    )
    assert "184,233" in english
    assert "95.1%" in english
    assert "Oct 26, 2026" in english


def test_empty_sections_say_so_instead_of_drawing_nothing() -> None:
    deck = Presentation(io.BytesIO(briefing_pptx(_empty_briefing(), lang="en")))
    texts = "\n".join(_slide_texts(slide) for slide in deck.slides)
    assert "No audits in this period." in texts
    assert "No calibration session was closed in this period." in texts
    assert "No open escalation." in texts
    assert "No quiz was attempted in this period." in texts
    assert not any(shape.has_chart for slide in deck.slides for shape in slide.shapes)
    workbook = openpyxl.load_workbook(io.BytesIO(briefing_xlsx(_empty_briefing(), lang="en")))
    assert workbook["Calibration"]["A3"].value == (
        "No calibration session was closed in this period."
    )


def test_workbook_has_a_sheet_per_section_with_native_charts_and_error_bars() -> None:
    content = briefing_xlsx(sample_briefing(), lang="de")
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    assert workbook.sheetnames == [*(SHEETS[name]["de"] for name in SHEETS), "Info"]
    assert workbook["Überblick"].freeze_panes == "A5"
    trend = workbook["Verlauf"]
    assert trend.freeze_panes == "A2"
    assert trend["A1"].value == "Periodenbeginn"
    assert trend["D1"].value == "Genauigkeit"
    assert trend["D2"].number_format == "0.0%"
    assert trend.column_dimensions["A"].width > 10
    # Charts read back as charts: one per chart sheet, three on the overview.
    charts = {name: len(workbook[name]._charts) for name in workbook.sheetnames}
    assert charts == {
        "Überblick": 3,
        "Verlauf": 1,
        "Vergleich": 1,
        "Fehler": 1,
        "Kalibrierung": 0,
        "Eskalationen": 0,
        "Quiz": 0,
        "Schulung": 0,
        "Info": 0,
    }
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        chart_xml = [
            archive.read(name).decode()
            for name in archive.namelist()
            if name.startswith("xl/charts/chart")
        ]
    with_error_bars = [xml for xml in chart_xml if "<c:errBars>" in xml]
    # Trend and comparison, each on its sheet and on the overview.
    assert len(with_error_bars) == 4
    for xml in with_error_bars:
        assert '<c:errValType val="cust"/>' in xml
        assert re.search(r"<c:plus><c:numRef><c:f>'Verlauf'!\$N\$2:\$N\$6</c:f>", xml) or (
            "<c:plus><c:numRef><c:f>'Vergleich'!" in xml
        )
    # The error bars' cells hold the Wilson interval's distance from the accuracy.
    row = sample_briefing().trend.rows[0]
    assert row.ci_high is not None
    assert row.accuracy is not None
    assert row.ci_low is not None
    assert trend["N2"].value == pytest.approx(row.ci_high - row.accuracy)
    assert trend["O2"].value == pytest.approx(row.accuracy - row.ci_low)


def _not_blank(png: Path) -> bool:
    with Image.open(png) as image:
        stat = ImageStat.Stat(image.convert("L"))
    return stat.stddev[0] > 5.0


@needs_office
@pytest.mark.parametrize("lang", ["en", "de"])
def test_libreoffice_opens_the_deck_and_renders_its_slides(tmp_path: Path, lang: str) -> None:
    deck = tmp_path / f"briefing-{lang}.pptx"
    deck.write_bytes(briefing_pptx(sample_briefing(), lang="en" if lang == "en" else "de"))
    pdf = convert_to_pdf(deck, tmp_path)
    assert pdf_page_count(pdf) == SLIDES
    pages = render_pages(pdf, tmp_path, first=1, last=4)
    assert len(pages) == 4
    for page in pages:
        assert _not_blank(page), page.name


@needs_office
def test_libreoffice_opens_the_workbook_and_renders_its_sheets(tmp_path: Path) -> None:
    book = tmp_path / "briefing.xlsx"
    book.write_bytes(briefing_xlsx(sample_briefing(), lang="de"))
    pdf = convert_to_pdf(book, tmp_path)
    # At least a page per sheet (a wide table may take more).
    assert pdf_page_count(pdf) >= SHEET_COUNT
    pages = render_pages(pdf, tmp_path, first=1, last=3)
    assert len(pages) == 3
    for page in pages:
        assert _not_blank(page), page.name
