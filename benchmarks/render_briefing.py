"""Render one page of the briefing deck and one of the workbook into docs/, as LibreOffice
shows them (``python -m benchmarks.render_briefing``, or ``make docs-briefing``).

The pages are drawn from the hand-made briefing of tests/support/briefing.py (a five-week
month over seven markets), through the same renderers the API serves and the same
LibreOffice conversion the rendering test runs: docs/briefing-pptx.png is the German deck's
comparison slide, docs/briefing-xlsx.png the English workbook's overview sheet.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from shared.analytics.briefing_pptx import briefing_pptx
from shared.analytics.briefing_xlsx import briefing_xlsx
from tests.support.briefing import sample_briefing
from tests.support.office import convert_to_pdf, render_pages

DOCS = Path(__file__).resolve().parent.parent / "docs"
COMPARISON_SLIDE = 4
RESOLUTION = 110


def render(out_dir: Path = DOCS) -> list[Path]:
    """Write docs/briefing-pptx.png and docs/briefing-xlsx.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="briefing-docs-") as scratch:
        work = Path(scratch)
        deck = work / "deck.pptx"
        deck.write_bytes(briefing_pptx(sample_briefing(), lang="de"))
        book = work / "workbook.xlsx"
        book.write_bytes(briefing_xlsx(sample_briefing(), lang="en"))
        for document, page, name in (
            (deck, COMPARISON_SLIDE, "briefing-pptx.png"),
            (book, 1, "briefing-xlsx.png"),
        ):
            pdf = convert_to_pdf(document, work)
            (png,) = render_pages(pdf, work, first=page, last=page, resolution=RESOLUTION)
            target = out_dir / name
            shutil.copyfile(png, target)
            written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="directory for the PNGs")
    for path in render(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
