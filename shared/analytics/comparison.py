"""The comparison report: which markets, queues or policies fall furthest below target.

``GET /v1/reports/comparison`` and the briefing call ``comparison_report``. Per slice of the
dimension (DESIGN.md "Analytics reports", "Statistics"):

- accuracy = correct / audited with its Wilson 95 % interval, and ``below_target`` when the
  whole interval lies below ``target``;
- the pooled two-sided two-proportion z-test of the slice against the rest of the population
  (every verdict of the window and filters outside the slice), and the Benjamini-Hochberg
  q-value over the ranked slices' p-values; ``significant`` = q < ``alpha``;
- ranked by the upper bound of the interval, ascending: rank 1 is the slice that is surely
  furthest below target (a slice with a high accuracy but few audits has a high upper bound
  and is not ranked ahead of one that is known to be low).

A slice with fewer audits than ``min_audits`` is listed after the ranked ones, with no rank,
no test and no q-value: it never enters the Benjamini-Hochberg family.

Under ``dimension=policy`` a verdict counts under every policy it concerns, so the policy
slices overlap; the rest of a policy is then every verdict that does not concern it (the
window's total minus the slice), still disjoint from the slice as the test requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.exports import TableSheet, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.formatting import format_number, format_percent
from shared.analytics.queries import sum_quality_rollups
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import (
    ComparisonDimension,
    ComparisonQuery,
    ComparisonReport,
    ComparisonRow,
)
from shared.analytics.slices import about_rows, chart_context, join_notes, rate
from shared.reports.service import Viewer
from shared.schemas.reports import ReportLanguage
from shared.stats.intervals import two_proportion_z_test
from shared.stats.multiple_testing import benjamini_hochberg

NO_AUDITS_NOTE = "no audits in this slice"
SMALL_SAMPLE_NOTE = "fewer audits than min_audits ({min_audits}): not ranked, not tested"
NO_REST_NOTE = "no audits outside this slice: nothing to compare with"

_SHEET_TITLES: Mapping[ReportLanguage, str] = {"en": "Comparison", "de": "Vergleich"}
_DIMENSION_NAMES: Mapping[ReportLanguage, Mapping[ComparisonDimension, str]] = {
    "en": {"market": "market", "queue": "queue", "policy": "policy"},
    "de": {"market": "Markt", "queue": "Warteschlange", "policy": "Richtlinie"},
}
_METHOD_LABELS: Mapping[ReportLanguage, tuple[str, str, str, str, str]] = {
    "en": ("Slices", "Target", "Significance level", "Ranking", "Test and adjustment"),
    "de": ("Ausschnitte", "Ziel", "Signifikanzniveau", "Rangfolge", "Test und Korrektur"),
}
_METHOD: Mapping[ReportLanguage, tuple[str, str]] = {
    "en": (
        "By the upper bound of the 95 % Wilson interval, ascending (rank 1 = furthest below "
        "target); slices with fewer than {min_audits} audits are listed after, unranked.",
        "Each ranked slice against the rest of the population (pooled two-sided "
        "two-proportion z-test); p-values adjusted with Benjamini-Hochberg over the ranked "
        "slices (q-values); 'Significant' means q < the significance level.",
    ),
    "de": (
        "Nach der oberen Grenze des 95-%-Wilson-Intervalls, aufsteigend (Rang 1 = am weitesten "
        "unter dem Ziel); Ausschnitte mit weniger als {min_audits} Prüfungen folgen ohne Rang.",
        "Jeder Ausschnitt mit Rang gegen den Rest der Grundgesamtheit (gepoolter zweiseitiger "
        "Zwei-Stichproben-z-Test für Anteile); p-Werte nach Benjamini-Hochberg über die "
        "Ausschnitte mit Rang korrigiert (q-Werte); 'Signifikant' heißt q < Signifikanzniveau.",
    ),
}


@dataclass(frozen=True, slots=True)
class SliceCounts:
    """One slice's audited and correct verdicts."""

    key: str
    audited: int
    correct: int


def comparison_rows(
    slices: Sequence[SliceCounts],
    *,
    population: tuple[int, int],
    target: float,
    alpha: float,
    min_audits: int,
) -> list[ComparisonRow]:
    """Ranked rows, then the small-sample ones (by key), from each slice's counts and the
    (audited, correct) of the population the slices are drawn from. Pure."""
    total_audited, total_correct = population
    ranked: list[ComparisonRow] = []
    small: list[ComparisonRow] = []
    for counts in slices:
        accuracy = rate(counts.correct, counts.audited)
        rest_audited = max(0, total_audited - counts.audited)
        rest_correct = min(rest_audited, max(0, total_correct - counts.correct))
        rest = rate(rest_correct, rest_audited)
        is_small = counts.audited < min_audits
        p_value = None
        note = None
        if counts.audited == 0:
            note = NO_AUDITS_NOTE
        elif is_small:
            note = SMALL_SAMPLE_NOTE.format(min_audits=min_audits)
        elif rest_audited == 0:
            note = NO_REST_NOTE
        elif accuracy.value is not None:
            _, p_value = two_proportion_z_test(
                counts.correct, counts.audited, rest_correct, rest_audited
            )
        row = ComparisonRow(
            rank=None,
            key=counts.key,
            audited=counts.audited,
            correct=counts.correct,
            accuracy=accuracy.value,
            ci_low=accuracy.ci_low,
            ci_high=accuracy.ci_high,
            below_target=None if accuracy.ci_high is None else accuracy.ci_high < target,
            rest_audited=rest_audited,
            rest_accuracy=rest.value,
            p_value=p_value,
            q_value=None,
            significant=False,
            small_sample=is_small,
            note=join_notes([note or ""]),
        )
        (small if is_small or accuracy.ci_high is None else ranked).append(row)
    ranked.sort(key=lambda row: (row.ci_high, row.accuracy, row.key.encode()))
    tested = [index for index, row in enumerate(ranked) if row.p_value is not None]
    q_values = benjamini_hochberg([ranked[index].p_value or 0.0 for index in tested])
    q_of = dict(zip(tested, q_values, strict=True))
    rows = [
        row.model_copy(
            update={
                "rank": rank,
                "q_value": q_of.get(rank - 1),
                "significant": q_of.get(rank - 1) is not None and q_of[rank - 1] < alpha,
            }
        )
        for rank, row in enumerate(ranked, start=1)
    ]
    small.sort(key=lambda row: row.key.encode())
    return rows + small


async def comparison_counts(
    session: AsyncSession, *, scope: AnalyticsScope, dimension: ComparisonDimension
) -> tuple[list[SliceCounts], tuple[int, int]]:
    """The slices of ``dimension`` within ``scope`` and the population's (audited, correct).

    Market and queue slices partition the population, so it is their sum; policy slices
    overlap (a verdict counts under each policy it concerns), so the population is read from
    the slices' total rows, across all policies."""
    sums = await sum_quality_rollups(
        session, scope=scope, group_by=[dimension], counters=["audited", "correct"]
    )
    slices = [
        SliceCounts(key=str(group.key[0]), audited=group["audited"], correct=group["correct"])
        for group in sums
    ]
    if dimension == "policy":
        (whole,) = await sum_quality_rollups(
            session, scope=replace(scope, policy=None), counters=["audited", "correct"]
        )
        population = (whole["audited"], whole["correct"])
    else:
        population = (
            sum(counts.audited for counts in slices),
            sum(counts.correct for counts in slices),
        )
    return slices, population


async def comparison_report(
    session: AsyncSession,
    *,
    query: ComparisonQuery,
    viewer: Viewer,
    max_days: int,
    today: date,
) -> ComparisonReport:
    """The comparison ``viewer`` asked for, within its reach (403 beyond, 422 for a bad
    window), counting every verdict committed before it was asked."""
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    await refresh_rollups(session)
    slices, population = await comparison_counts(session, scope=scope, dimension=query.dimension)
    return ComparisonReport(
        day_from=scope.day_from,
        day_to=scope.day_to,
        rows=comparison_rows(
            slices,
            population=population,
            target=query.target,
            alpha=query.alpha,
            min_audits=query.min_audits,
        ),
        dimension=query.dimension,
        target=query.target,
        alpha=query.alpha,
    )


def comparison_csv(report: ComparisonReport) -> bytes:
    """The rows as CSV (header = the JSON row keys)."""
    return rows_csv(report.rows, ComparisonRow)


def comparison_xlsx(report: ComparisonReport, *, query: ComparisonQuery) -> bytes:
    """The rows on a first sheet (headers in ``query.lang``), then the About sheet: the days
    and filters counted, the target, the ranking, the test and its adjustment."""
    lang = query.lang
    slices_label, target_label, alpha_label, ranking_label, test_label = _METHOD_LABELS[lang]
    ranking, test = _METHOD[lang]
    method = [
        (slices_label, _DIMENSION_NAMES[lang][report.dimension]),
        (target_label, format_percent(report.target, lang, digits=1)),
        (alpha_label, format_percent(report.alpha, lang, digits=1)),
        (ranking_label, ranking.format(min_audits=format_number(query.min_audits, lang))),
        (test_label, test),
    ]
    return rows_xlsx(
        [TableSheet(title=_SHEET_TITLES[lang], rows=report.rows, row_type=ComparisonRow)],
        about=about_rows(query, report, method=method),
        lang=lang,
    )


def comparison_chart(report: ComparisonReport, *, query: ComparisonQuery) -> bytes:
    """The ranking as a PNG chart against the target, labelled in ``query.lang``."""
    # matplotlib takes seconds to import: only a PNG request pays for it, not every
    # process that imports the reports (the API, the workers) at start-up.
    from shared.analytics.charts import comparison_png

    return comparison_png(
        report.rows,
        lang=query.lang,
        target=report.target,
        title_context=chart_context(query, report),
    )
