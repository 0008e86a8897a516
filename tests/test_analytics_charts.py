"""PNG charts of the trend and the comparison: valid, deterministic, per language, no pyplot."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest

from shared.analytics.charts import (
    DPI,
    MAX_COMPARISON_SLICES,
    TREND_HEIGHT_INCHES,
    WIDTH_INCHES,
    comparison_png,
    percent_axis,
    trend_png,
)
from shared.analytics.schemas import ComparisonRow, TrendRow
from shared.stats.intervals import wilson_interval

pytestmark = pytest.mark.no_db

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


def trend_row(
    week: int, audited: int, correct: int, *, significant: bool = False, small: bool = False
) -> TrendRow:
    low, high = wilson_interval(correct, audited) if audited else (None, None)
    return TrendRow(
        period_start=date(2026, 1, 5) + timedelta(weeks=week),
        audited=audited,
        correct=correct,
        accuracy=correct / audited if audited else None,
        ci_low=low,
        ci_high=high,
        change=-0.03 if significant else None,
        p_value=0.001 if significant else None,
        significant=significant,
        small_sample=small,
        note=None if audited else "no audits in this period",
    )


def comparison_row(
    rank: int | None, key: str, audited: int, correct: int, *, significant: bool = False
) -> ComparisonRow:
    low, high = wilson_interval(correct, audited) if audited else (None, None)
    return ComparisonRow(
        rank=rank,
        key=key,
        audited=audited,
        correct=correct,
        accuracy=correct / audited if audited else None,
        ci_low=low,
        ci_high=high,
        below_target=None if high is None else high < 0.95,
        rest_audited=1000,
        rest_accuracy=0.95,
        p_value=0.01 if rank else None,
        q_value=0.02 if rank else None,
        significant=significant,
        small_sample=rank is None,
    )


TREND = [
    trend_row(0, 400, 380),
    trend_row(1, 420, 395),
    trend_row(2, 380, 350, significant=True),
    trend_row(3, 0, 0),
    trend_row(4, 20, 19, small=True),
    trend_row(5, 500, 485),
]
COMPARISON = [
    comparison_row(1, "FR", 800, 720, significant=True),
    comparison_row(2, "DE", 1200, 1140),
    comparison_row(3, "ES", 600, 585),
    comparison_row(None, "IT", 12, 11),
    comparison_row(None, "PL", 0, 0),
]


def png_size(content: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which follows the signature."""
    assert content[:8] == PNG_SIGNATURE
    assert content[12:16] == b"IHDR"
    width, height = struct.unpack(">II", content[16:24])
    return width, height


def draw_trend(lang: str = "en", rows: list[TrendRow] = TREND) -> bytes:
    return trend_png(rows, lang=lang, title_context="DE, 2026-01-05 - 2026-02-15", interval="week")  # type: ignore[arg-type]  # lang is a Literal; the tests pass both values


def test_trend_is_a_png_of_the_fixed_size() -> None:
    content = draw_trend()
    assert png_size(content) == (round(WIDTH_INCHES * DPI), round(TREND_HEIGHT_INCHES * DPI))


def test_equal_rows_give_equal_bytes_and_no_software_version() -> None:
    assert draw_trend() == draw_trend()
    assert comparison_png(COMPARISON, lang="de", target=0.95) == comparison_png(
        COMPARISON, lang="de", target=0.95
    )
    # matplotlib's default metadata names its version; ours carries none (nor a date).
    assert b"Software" not in draw_trend()
    assert b"tIME" not in draw_trend()


def test_german_labels_differ_from_english() -> None:
    assert draw_trend("de") != draw_trend("en")
    assert comparison_png(COMPARISON, lang="de", target=0.95) != comparison_png(
        COMPARISON, lang="en", target=0.95
    )


def test_the_marks_are_drawn() -> None:
    """A significant change, a small sample and the target each change the picture."""
    plain = [row.model_copy(update={"significant": False, "small_sample": False}) for row in TREND]
    assert draw_trend(rows=plain) != draw_trend()
    assert comparison_png(COMPARISON, lang="en", target=0.95) != comparison_png(
        COMPARISON, lang="en", target=0.9
    )


def test_comparison_grows_with_its_slices_up_to_a_cap() -> None:
    few = png_size(comparison_png(COMPARISON, lang="en", target=0.95))
    many_rows = [comparison_row(i + 1, f"Q{i}", 100, 95) for i in range(3 * MAX_COMPARISON_SLICES)]
    capped = png_size(comparison_png(many_rows[:MAX_COMPARISON_SLICES], lang="en", target=0.95))
    many = png_size(comparison_png(many_rows, lang="en", target=0.95))
    assert few[0] == capped[0] == many[0] == round(WIDTH_INCHES * DPI)
    assert few[1] < capped[1]
    # Beyond the cap only the note "N more slices are in the table" is added.
    assert 0 < many[1] - capped[1] <= 0.25 * DPI + 1


def test_empty_reports_still_draw() -> None:
    assert png_size(trend_png([], lang="de", title_context="", interval="month"))[0] > 0
    assert png_size(draw_trend(rows=[trend_row(0, 0, 0)]))[0] > 0
    assert png_size(comparison_png([], lang="en", target=0.95))[0] > 0
    assert png_size(comparison_png(COMPARISON[-1:], lang="de", target=0.0))[0] > 0


def test_threads_draw_the_same_bytes() -> None:
    """The routes draw in a threadpool: concurrent drawings must not disturb each other."""
    expected = {lang: draw_trend(lang) for lang in ("en", "de")}
    with ThreadPoolExecutor(max_workers=4) as pool:
        langs = ["en", "de"] * 3
        results = list(pool.map(draw_trend, langs))
    assert all(content == expected[lang] for lang, content in zip(langs, results, strict=True))


def test_drawing_never_imports_pyplot() -> None:
    """In a fresh interpreter (other tests or libraries may import pyplot in this one)."""
    script = textwrap.dedent(
        """
        import sys
        from datetime import date
        from shared.analytics.charts import comparison_png, trend_png
        from shared.analytics.schemas import ComparisonRow, TrendRow
        row = TrendRow(period_start=date(2026, 1, 5), audited=10, correct=9, accuracy=0.9,
                       ci_low=0.6, ci_high=0.98, change=None, p_value=None, significant=False,
                       small_sample=True)
        trend_png([row], lang="de", title_context="", interval="week")
        comparison_png([], lang="de", target=0.95)
        assert "matplotlib" in sys.modules
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)


@pytest.mark.parametrize(
    ("values", "low", "ticks", "digits"),
    [
        # Lowest 0.646: span 0.354, view from 0.6106 down to the 5 % step: 0.60 ... 1.00.
        ([0.646, 0.95], 0.6, [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0], 0),
        # Lowest 0.99: span 0.02 (the minimum), view from 0.988: 0.2 % steps, one decimal.
        ([0.99], 0.988, [0.988, 0.99, 0.992, 0.994, 0.996, 0.998, 1.0], 1),
        # Nothing to show: all of 0 .. 100 % in steps of 20 %.
        ([], 0.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 0),
    ],
)
def test_percent_axis(values: list[float], low: float, ticks: list[float], digits: int) -> None:
    axis = percent_axis(values)
    assert axis.low == pytest.approx(low)
    assert axis.ticks == pytest.approx(ticks)
    assert axis.digits == digits
    assert axis.high > 1.0
