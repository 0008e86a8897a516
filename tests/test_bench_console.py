"""The console benchmark at a tiny size: it builds the reports benchmark's history, signs in
as a manager through the console's form, times each page and its baselines over HTTP, and
writes its section of the report (replacing the old one, leaving the others alone); a second
run times the pages again on the database the first one kept (``--reuse-database``).

No timings are asserted: speed is what ``python -m benchmarks.console`` itself reports.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from benchmarks.bench_database import drop_database

REPO_ROOT = Path(__file__).resolve().parent.parent

OTHER_SECTION = "<!-- begin reports -->\n## Reports\n\nkept as it is\n<!-- end reports -->\n"
STALE_SECTION = "<!-- begin console -->\n## Console\n\nstale\n<!-- end console -->\n"
ROW = re.compile(
    r"^\| (?P<page>[^|]+) \| (?P<median>[\d,.]+) \| (?P<p95>[\d,.]+) \| (?P<verdict>[^|]+) \|$"
)


@pytest.mark.no_db
def test_tiny_run_times_every_page_and_writes_its_section(
    server_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text(OTHER_SECTION + "\n" + STALE_SECTION)
    env = {
        **os.environ,
        "PLUMBLINE_BENCH_DATABASE_URL": server_database_url,
        "PLUMBLINE_BENCH_REDIS_URL": redis_url,
    }
    database = f"plumbline_bench_console_test_{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "benchmarks.console",
        "--size", "2000", "--requests", "2", "--warmup", "1", "--end-day", "2026-11-29",
        "--database", database, "--output", str(report), "--keep-database",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        first = report.read_text()
        again = [*command[:-1], "--reuse-database"]
        done = subprocess.run(
            again, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        assert "seeding" not in done.stdout + done.stderr
        reused = report.read_text()
    finally:
        asyncio.run(drop_database(server_database_url, database))
    assert "2,000 decisions" in reused
    assert "reused" in reused
    assert "reused" not in first
    _assert_section(first)
    _assert_section(reused)


def _assert_section(text: str) -> None:
    assert text.startswith(OTHER_SECTION)
    assert text.count("<!-- begin console -->") == 1
    assert "stale" not in text
    section = text.split("<!-- begin console -->", 1)[1]
    assert "## Console pages at scale (issue #11)" in section
    assert "2,000 decisions" in section
    rows = {
        found["page"]: found["verdict"].strip()
        for line in section.splitlines()
        if (found := ROW.match(line))
    }
    pages = [page for page, verdict in rows.items() if verdict != "baseline"]
    assert len(pages) == 3, rows
    assert any(page.startswith("overview") for page in pages)
    assert any(page.startswith("audits") for page in pages)
    assert "reports page" in pages
    assert all(
        verdict in ("**met**", "**not met**") for page, verdict in rows.items() if page in pages
    )
    assert sum(1 for verdict in rows.values() if verdict == "baseline") == 2
