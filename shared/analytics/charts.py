"""PNG charts of the trend and the comparison reports (``format=png``), English or German.

matplotlib's object API only: each chart is its own ``Figure`` drawn by its own Agg canvas,
so no pyplot state (current figure, registered figures) lives in the server, and nothing of
one request leaks into another. The routes call these from a threadpool; matplotlib does not
promise that drawing is thread-safe (its font and text caches are shared), so one lock
serialises the drawing itself: drawing holds the GIL almost throughout, so the lock costs
next to no throughput.

The output is deterministic: fixed sizes and resolution, the bundled DejaVu Sans font, no
date and no software version in the PNG's metadata; equal rows give equal bytes. Every number,
percentage and date people read is formatted by ``shared.analytics.formatting`` (Babel).
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from shared.analytics.formatting import format_number, format_percent, format_period
from shared.analytics.schemas import ComparisonRow, TrendInterval, TrendRow
from shared.schemas.reports import ReportLanguage

WIDTH_INCHES = 8.0
TREND_HEIGHT_INCHES = 4.5
DPI = 150
# The comparison grows a row at a time up to this many slices; the rest are in the table.
MAX_COMPARISON_SLICES = 40
# Up to this many periods each point carries its value and each tick its audit count.
MAX_ANNOTATED_PERIODS = 12
MAX_PERIOD_TICKS = 12

_FONT = "DejaVu Sans"  # bundled with matplotlib: the same glyphs on every machine
_BLUE = "#1f5fa8"
_RED = "#b8322a"
_GREEN = "#2e7d32"
_GREY = "#9e9e9e"
_ORANGE = "#e07b00"
_LINE = "#8fb0d9"  # joins the periods: lighter than the points and their intervals

_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Texts:
    trend_title: Mapping[TrendInterval, str]
    accuracy: str
    interval_legend: str  # {level}: 95 %
    significant_change: str
    small_sample: str
    small_sample_inline: str
    no_audits_window: str
    comparison_title: str
    target: str  # {target}
    below_target: str
    above_target: str
    includes_target: str
    not_ranked: str
    no_audits: str
    significant_note: str
    more_slices: str  # {count}
    audits: str  # {n}


_TEXTS: Mapping[ReportLanguage, _Texts] = {
    "en": _Texts(
        trend_title={
            "day": "Accuracy per day",
            "week": "Accuracy per week",
            "month": "Accuracy per month",
        },
        accuracy="Accuracy",
        interval_legend="Accuracy with {level} Wilson interval",
        significant_change="Significant change from the previous period",
        small_sample="Small sample",
        small_sample_inline="small sample",
        no_audits_window="No audits in this window",
        comparison_title="Accuracy against the target",
        target="Target {target}",
        below_target="Interval below target",
        above_target="Interval above target",
        includes_target="Interval includes target",
        not_ranked="Small sample, not ranked",
        no_audits="no audits",
        significant_note="* differs significantly from the rest (Benjamini-Hochberg q-value)",
        more_slices="{count} more slices are in the table",
        audits="n = {n}",
    ),
    "de": _Texts(
        trend_title={
            "day": "Genauigkeit pro Tag",
            "week": "Genauigkeit pro Woche",
            "month": "Genauigkeit pro Monat",
        },
        accuracy="Genauigkeit",
        interval_legend="Genauigkeit mit {level}-Wilson-Intervall",
        significant_change="Signifikante Änderung zur Vorperiode",
        small_sample="Kleine Stichprobe",
        small_sample_inline="kleine Stichprobe",
        no_audits_window="Keine Audits in diesem Zeitraum",
        comparison_title="Genauigkeit im Vergleich zum Ziel",
        target="Ziel {target}",
        below_target="Intervall unter dem Ziel",
        above_target="Intervall über dem Ziel",
        includes_target="Intervall schließt das Ziel ein",
        not_ranked="Kleine Stichprobe, ohne Rang",
        no_audits="keine Audits",
        significant_note="* weicht signifikant vom Rest ab (Benjamini-Hochberg-q-Wert)",
        more_slices="{count} weitere Bereiche stehen in der Tabelle",
        audits="n = {n}",
    ),
}

# Tick steps for a percentage axis, smallest first; the first that gives at most 8 ticks wins.
_PERCENT_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25)


@dataclass(frozen=True)
class PercentAxis:
    """An accuracy axis: the view from ``low`` to ``high``, ``ticks`` at a round step up to
    100 %, and the decimals their labels need so that no two read alike."""

    low: float
    high: float
    ticks: list[float]
    digits: int


def percent_axis(values: Sequence[float], *, headroom: float = 0.04) -> PercentAxis:
    """The axis for accuracies and interval bounds ``values`` (all of [0, 1] when empty).

    Accuracy lives near the top, so the view runs from a round step a little under the lowest
    value to just over 100 % (``headroom``, a share of the span, leaves room for labels).
    A step under 1 % labels with one decimal, under 0.1 % with two.
    """
    lowest = min(values, default=0.0)
    span = max(1.0 - lowest, 0.02)
    wanted_low = max(0.0, lowest - 0.1 * span)
    step = next(
        (step for step in _PERCENT_STEPS if (1.0 - wanted_low) / step <= 8), _PERCENT_STEPS[-1]
    )
    first = int(wanted_low / step + 1e-9)  # floor: the view starts on a tick
    last = int(1.0 / step + 1e-9)
    ticks = [round(index * step, 6) for index in range(first, last + 1)]
    digits = 0 if step >= 0.01 else (1 if step >= 0.001 else 2)
    return PercentAxis(low=ticks[0], high=1.0 + headroom * span, ticks=ticks, digits=digits)


def _percent_labels(axis: PercentAxis, lang: ReportLanguage) -> list[str]:
    return [format_percent(tick, lang, digits=axis.digits) for tick in axis.ticks]


def _new_figure(height: float) -> Figure:
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: this figure draws with Agg, no pyplot
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" (matplotlib's version) in the metadata: equal rows, equal bytes, also
    # across upgrades; PNGs from Agg carry no date. The figure's own Agg canvas draws it.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def trend_png(
    rows: Sequence[TrendRow],
    *,
    lang: ReportLanguage,
    title_context: str,
    interval: TrendInterval,
) -> bytes:
    """The trend as a PNG: accuracy per period with its Wilson 95 % interval as error bars,
    periods with a significant change from the previous one marked, small samples in grey.

    ``title_context`` (what was counted: the filters and days, already in ``lang``) is the
    subtitle; ``interval`` names the periods on the axis. Empty periods are gaps.
    """
    texts = _TEXTS[lang]
    with _RENDER_LOCK:
        figure = _new_figure(TREND_HEIGHT_INCHES)
        axes = figure.add_subplot()
        axes.set_title(
            f"{texts.trend_title[interval]}\n{title_context}", fontsize=11, fontfamily=_FONT
        )
        positions = list(range(len(rows)))
        measured = [
            (index, row, ci)
            for index, row in zip(positions, rows, strict=True)
            if (ci := _ci(row)) is not None
        ]
        if not measured:
            axes.text(
                0.5,
                0.5,
                texts.no_audits_window,
                transform=axes.transAxes,
                ha="center",
                va="center",
                fontfamily=_FONT,
            )
        axis = percent_axis([ci[1] for _, _, ci in measured])
        for index, row, (accuracy, ci_low, ci_high) in measured:
            colour = _GREY if row.small_sample else _BLUE
            axes.errorbar(
                [index],
                [accuracy],
                yerr=[[accuracy - ci_low], [ci_high - accuracy]],
                fmt="o",
                color=colour,
                ecolor=colour,
                capsize=3,
                markersize=5,
                markerfacecolor="white" if row.small_sample else colour,
            )
            if row.significant:
                axes.plot(
                    [index],
                    [accuracy],
                    marker="^" if (row.change or 0.0) > 0 else "v",
                    markersize=11,
                    linestyle="none",
                    markerfacecolor="none",
                    markeredgecolor=_ORANGE,
                    markeredgewidth=1.8,
                )
            if len(rows) <= MAX_ANNOTATED_PERIODS:
                axes.annotate(
                    format_percent(accuracy, lang),
                    (index, ci_high),
                    textcoords="offset points",
                    xytext=(0, 4),
                    ha="center",
                    fontsize=7,
                    fontfamily=_FONT,
                )
        # The line joins consecutive measured periods only: an empty period is a gap.
        for (first, _, before), (second, _, after) in itertools.pairwise(measured):
            if second == first + 1:
                axes.plot(
                    [first, second], [before[0], after[0]], color=_LINE, linewidth=1, zorder=1
                )
        axes.set_yticks(axis.ticks, _percent_labels(axis, lang))
        axes.set_ylim(axis.low, axis.high)
        axes.set_ylabel(texts.accuracy, fontfamily=_FONT)
        shown = positions[:: max(1, -(-len(rows) // MAX_PERIOD_TICKS))]
        with_audits = len(rows) <= MAX_ANNOTATED_PERIODS
        axes.set_xticks(
            shown,
            [_period_label(rows[i], interval, lang, with_audits=with_audits) for i in shown],
        )
        axes.tick_params(axis="x", labelsize=7, labelrotation=30 if len(shown) > 6 else 0)
        axes.tick_params(axis="y", labelsize=8)
        axes.set_xlim(-0.6, max(len(rows) - 0.4, 0.6))
        axes.grid(axis="y", color="#e0e0e0", linewidth=0.6)
        axes.set_axisbelow(True)
        figure.legend(
            handles=[
                Line2D([], [], color=_BLUE, marker="o", label=_interval_legend(texts, lang)),
                Line2D(
                    [],
                    [],
                    color=_GREY,
                    marker="o",
                    markerfacecolor="white",
                    label=texts.small_sample,
                ),
                Line2D(
                    [],
                    [],
                    color=_ORANGE,
                    marker="^",
                    markerfacecolor="none",
                    linestyle="none",
                    label=texts.significant_change,
                ),
            ],
            loc="outside lower center",
            ncols=3,
            prop={"family": _FONT, "size": 7},
        )
        return _png(figure)


def _interval_legend(texts: _Texts, lang: ReportLanguage) -> str:
    return texts.interval_legend.format(level=format_percent(0.95, lang, digits=0))


def _period_label(
    row: TrendRow, interval: TrendInterval, lang: ReportLanguage, *, with_audits: bool
) -> str:
    label = format_period(row.period_start, interval, lang)
    if with_audits:
        label += "\n" + _TEXTS[lang].audits.format(n=format_number(row.audited, lang))
    return label


def _ci(row: TrendRow | ComparisonRow) -> tuple[float, float, float] | None:
    """(accuracy, ci_low, ci_high), or None for a slice without audits."""
    if row.accuracy is None or row.ci_low is None or row.ci_high is None:
        return None
    return row.accuracy, row.ci_low, row.ci_high


def comparison_png(
    rows: Sequence[ComparisonRow],
    *,
    lang: ReportLanguage,
    target: float,
    title_context: str | None = None,
) -> bytes:
    """The comparison as a PNG: one line per slice (in the rows' order: ranked first), its
    accuracy as a point with the Wilson 95 % interval as whiskers, coloured by where the
    interval lies against the vertical ``target`` line; small samples grey and labelled as
    not ranked, slices without audits named without a point, significant q-values starred.

    At most ``MAX_COMPARISON_SLICES`` slices are drawn; a note counts the rest.
    """
    texts = _TEXTS[lang]
    shown = list(rows[:MAX_COMPARISON_SLICES])
    hidden = len(rows) - len(shown)
    height = 1.6 + 0.32 * max(len(shown), 3) + (0.25 if hidden else 0.0)
    with _RENDER_LOCK:
        figure = _new_figure(height)
        axes = figure.add_subplot()
        title = texts.comparison_title
        axes.set_title(
            f"{title}\n{title_context}" if title_context else title, fontsize=11, fontfamily=_FONT
        )
        intervals = [_ci(row) for row in shown]
        # Room on the right for the value beside each whisker.
        axis = percent_axis([*(ci[1] for ci in intervals if ci is not None), target], headroom=0.1)
        for index, (row, ci) in enumerate(zip(shown, intervals, strict=True)):
            if ci is None:
                continue
            accuracy, ci_low, ci_high = ci
            colour = _slice_colour(row, ci, target)
            axes.errorbar(
                [accuracy],
                [index],
                xerr=[[accuracy - ci_low], [ci_high - accuracy]],
                fmt="o",
                color=colour,
                ecolor=colour,
                capsize=3,
                markersize=5,
                markerfacecolor="white" if row.small_sample else colour,
            )
            axes.annotate(
                format_percent(accuracy, lang),
                (ci_high, index),
                textcoords="offset points",
                xytext=(4, 0),
                va="center",
                fontsize=7,
                fontfamily=_FONT,
                color=colour,
            )
        axes.axvline(target, color=_RED, linestyle="--", linewidth=1)
        axes.set_yticks(
            range(len(shown)),
            [_slice_label(row, ci, texts, lang) for row, ci in zip(shown, intervals, strict=True)],
        )
        for label, row, ci in zip(axes.get_yticklabels(), shown, intervals, strict=True):
            if row.small_sample or ci is None:
                label.set_color(_GREY)
        axes.set_ylim(max(len(shown), 1) - 0.5, -0.5)  # rank 1 on top
        axes.set_xticks(axis.ticks, _percent_labels(axis, lang))
        axes.set_xlim(axis.low, axis.high)
        axes.tick_params(labelsize=8)
        axes.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        axes.set_axisbelow(True)
        target_label = texts.target.format(target=format_percent(target, lang))
        handles = [
            Line2D([], [], color=_RED, linestyle="--", label=target_label),
            Line2D([], [], color=_RED, marker="o", linestyle="none", label=texts.below_target),
            Line2D([], [], color=_BLUE, marker="o", linestyle="none", label=texts.includes_target),
            Line2D([], [], color=_GREEN, marker="o", linestyle="none", label=texts.above_target),
            Line2D(
                [],
                [],
                color=_GREY,
                marker="o",
                markerfacecolor="white",
                linestyle="none",
                label=texts.not_ranked,
            ),
        ]
        figure.legend(
            handles=handles, loc="outside lower center", ncols=3, prop={"family": _FONT, "size": 7}
        )
        notes = []
        if any(row.significant for row in shown):
            notes.append(texts.significant_note)
        if hidden:
            notes.append(texts.more_slices.format(count=format_number(hidden, lang)))
        if notes:
            axes.set_xlabel("\n".join(notes), fontsize=7, fontfamily=_FONT, loc="left")
        return _png(figure)


def _slice_colour(row: ComparisonRow, ci: tuple[float, float, float], target: float) -> str:
    if row.small_sample:
        return _GREY
    _, ci_low, ci_high = ci
    if ci_high < target:
        return _RED
    if ci_low > target:
        return _GREEN
    return _BLUE


def _slice_label(
    row: ComparisonRow, ci: tuple[float, float, float] | None, texts: _Texts, lang: ReportLanguage
) -> str:
    rank = f"{row.rank}. " if row.rank is not None else ""
    star = " *" if row.significant else ""
    audits = texts.audits.format(n=format_number(row.audited, lang))
    if ci is None:
        detail = texts.no_audits
    elif row.small_sample:
        detail = f"{audits}, {texts.small_sample_inline}"
    else:
        detail = audits
    return f"{rank}{row.key}{star} ({detail})"
