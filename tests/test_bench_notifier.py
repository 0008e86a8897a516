"""The notifier benchmark at a tiny size: the whole stack runs, every delivery arrives, and
its section of the report is written (and replaced, leaving the other sections alone).

``python -m benchmarks.notifier`` starts ``plumbline migrate``, a relay, a notifier and its
sink as processes, so this runs it the same way, as a subprocess, at 200 events to one
market's 5 channels (its webhook getting every event, its Lark, Teams and Slack channels the
disputes and escalations they subscribe to). No
timings are asserted: speed is what the benchmark itself reports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

OTHER_SECTION = "<!-- begin intake -->\n## Intake\n\nkept as it is\n<!-- end intake -->\n"
STALE_SECTION = "<!-- begin notifier -->\n## Notifier fan-out\n\nstale\n<!-- end notifier -->\n"


@pytest.mark.no_db
def test_tiny_run_delivers_everything_and_writes_its_section(
    server_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """200 events to one market's 5 channels: 200 webhook messages, 8 Lark (6 disputes and
    2 escalations), 2 Teams, 2 + 1 Slack (the video channel hears of 1 escalation) reach the
    sink, none missing; the report's notifier section is replaced, the other kept."""
    report = tmp_path / "benchmarks.md"
    report.write_text(OTHER_SECTION + "\n" + STALE_SECTION)
    env = {
        **os.environ,
        "PLUMBLINE_BENCH_DATABASE_URL": server_database_url,
        "PLUMBLINE_BENCH_REDIS_URL": redis_url,
    }
    command = [
        sys.executable, "-m", "benchmarks.notifier",
        "--events", "200", "--rate", "200", "--markets", "1", "--repeats", "1",
        "--warmup-events", "20", "--baseline-requests", "200", "--drain-timeout", "240",
        "--paced-seconds", "3", "--concurrency", "8",
        "--database", f"plumbline_bench_notifier_test_{uuid.uuid4().hex[:8]}",
        "--output", str(report),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=420, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    text = report.read_text()

    assert text.startswith(OTHER_SECTION)
    assert text.count("<!-- begin notifier -->") == 1
    assert text.count("<!-- end notifier -->") == 1
    assert "stale" not in text
    section = text.split("<!-- begin notifier -->", 1)[1]
    for heading in ("## Notifier fan-out (issue #9)", "### Summary", "### Setup", "### Repeats"):
        assert heading in section
    # Machine, command and settings are named.
    assert "- Machine: " in section
    assert "python -m benchmarks.notifier --events 200" in section
    # 200 + 8 + 2 + 2 + 1 messages, all arrived once.
    row = next(line for line in section.splitlines() if line.startswith("| r1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "213 / 213", row
    assert cells[3] == "0", row  # missing
    assert re.fullmatch(r"[\d,.]+ / [\d,.]+ / [\d,.]+", cells[7]), row  # delay p50 / p99 / max
    # The summary counts the paced run's deliveries too.
    assert re.search(r"\| ([\d,]+) of \1 arrived; 0 missing", section), section
    assert "| **median** |" in section
    # The paced run (half the measured capacity) delivered everything too.
    paced = next(line for line in section.splitlines() if line.startswith("| paced ("))
    paced_cells = [cell.strip() for cell in paced.strip("|").split("|")]
    delivered, expected = paced_cells[2].split(" / ")
    assert delivered == expected, paced
    assert paced_cells[3] == "0", paced
