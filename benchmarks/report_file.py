"""``docs/benchmarks.md`` holds one section per benchmark; each run replaces only its own."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_REPORT = Path("docs/benchmarks.md")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- begin {name} -->", f"<!-- end {name} -->"


def write_section(path: Path, name: str, markdown: str) -> None:
    """Put ``markdown`` between the section's markers, replacing what was there (or append)."""
    begin, end = _markers(name)
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail.lstrip("\n")
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def machine_line() -> str:
    """CPU model, cores, Python and the commit: what a reader needs to compare runs."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"commit {commit or 'unknown'}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
