"""Opening report files the way a reader does: LibreOffice converts them to PDF, poppler
renders the pages to PNG.

LibreOffice writes no PDF for a file it would have to repair (it asks instead, and headless
there is nobody to answer), so a PDF is the proof that a deck or workbook opens cleanly. Each
conversion runs with its own user profile (``-env:UserInstallation``), so parallel runs do
not fight over one profile's lock, and under a timeout.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

CONVERT_TIMEOUT_SECONDS = 240
RENDER_TIMEOUT_SECONDS = 60


def soffice() -> str | None:
    """The LibreOffice executable, or None where none is installed."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def pdftoppm() -> str | None:
    """poppler's page renderer, or None where none is installed."""
    return shutil.which("pdftoppm")


def convert_to_pdf(document: Path, out_dir: Path) -> Path:
    """``document`` converted to ``out_dir/<stem>.pdf`` by a headless LibreOffice with a fresh
    profile; RuntimeError (with LibreOffice's output) when no PDF came out."""
    executable = soffice()
    if executable is None:
        raise RuntimeError("soffice is not installed")
    with tempfile.TemporaryDirectory(prefix=f"lo-{uuid.uuid4().hex[:8]}-") as profile:
        completed = subprocess.run(
            [
                executable,
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--norestore",
                "--convert-to",
                "pdf",
                "--outdir",
                str(out_dir),
                str(document),
            ],
            capture_output=True,
            text=True,
            timeout=CONVERT_TIMEOUT_SECONDS,
            check=False,
        )
    pdf = out_dir / f"{document.stem}.pdf"
    if completed.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(
            f"LibreOffice made no PDF of {document.name} (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return pdf


def pdf_page_count(pdf: Path) -> int:
    """The number of pages of ``pdf``, read from its page tree (no PDF library needed)."""
    data = pdf.read_bytes()
    # Every page object says /Type /Page (the page tree nodes say /Type /Pages).
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages") or data.count(
        b"/Type/Page"
    ) - data.count(b"/Type/Pages")


def render_pages(
    pdf: Path, out_dir: Path, *, first: int = 1, last: int = 1, resolution: int = 60
) -> list[Path]:
    """Pages ``first``..``last`` of ``pdf`` as PNG files (``pdftoppm -png -r resolution``),
    in page order."""
    executable = pdftoppm()
    if executable is None:
        raise RuntimeError("pdftoppm is not installed")
    prefix = out_dir / pdf.stem
    subprocess.run(
        [
            executable,
            "-png",
            "-r",
            str(resolution),
            "-f",
            str(first),
            "-l",
            str(last),
            str(pdf),
            str(prefix),
        ],
        capture_output=True,
        timeout=RENDER_TIMEOUT_SECONDS,
        check=True,
    )
    return sorted(out_dir.glob(f"{pdf.stem}-*.png"))
