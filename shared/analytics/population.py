"""Population accuracy: what the boosted audit sample says about all decisions.

``GET /v1/reports/population-accuracy`` and the escalation rules call ``population_report``.
The audit sample is boosted on purpose (new moderators, low scorers, chosen labels), so the
audited accuracy over-weights the strata audited most; the post-stratified estimate weights
each stratum h = (moderator, market-local day) by the decisions it received instead
(DESIGN.md "Statistics", ``shared.stats.estimation.post_stratified_accuracy``):

    estimate = sum N_h p_h / N,  SE = sqrt(sum (N_h / N)^2 p_h (1 - p_h) / n_h (1 - n_h / N_h)),

over the strata with at least one audit (N = their decisions), the interval estimate -+
1.959964 SE clipped to [0, 1], and coverage = N / all decisions of the slice.

A 30-day window over 2,000 moderators is 60,000 strata per slice set, so the strata are
summed in SQL: one query groups the rollups by (slice, moderator, day) and sums per slice
the five numbers the estimate needs (all decisions, covered decisions, sum N_h p_h, the
variance sum sum N_h^2 p_h (1 - p_h) / n_h (1 - n_h / N_h), audited and correct), and
``estimate_from_sums`` finishes the formula above. tests/test_reports_population.py checks
it against ``post_stratified_accuracy`` on the same strata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.day_rollups import population_day_rollups_cover
from shared.analytics.exports import TableSheet, rows_csv, rows_xlsx
from shared.analytics.filters import AnalyticsScope, analytics_scope
from shared.analytics.queries import Dimension, quality_sums_select
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import (
    ALL_KEY,
    PopulationGroup,
    PopulationQuery,
    PopulationReport,
    PopulationRow,
)
from shared.analytics.slices import about_rows, join_notes, rate
from shared.analytics.strata import strata_sum_columns
from shared.models.analytics import ALL_MARKETS, PopulationDayRollup
from shared.reports.service import Viewer
from shared.schemas.reports import ReportLanguage
from shared.stats.estimation import PopulationEstimate
from shared.stats.intervals import Z_95

NO_AUDITS_NOTE = "no audits in this slice: nothing to estimate from"
NO_DECISIONS_NOTE = "no decisions counted in the audited strata: nothing to weight by"
NOTHING_NOTE = "no decisions and no audits in this slice"

_SHEET_TITLES: Mapping[ReportLanguage, str] = {
    "en": "Population accuracy",
    "de": "Genauigkeit Grundgesamtheit",
}
_METHOD_LABEL: Mapping[ReportLanguage, str] = {"en": "Method", "de": "Methode"}
_METHOD: Mapping[ReportLanguage, str] = {
    "en": (
        "Post-stratified estimate of the accuracy of all decisions: strata h = (moderator, "
        "market-local day); estimate = sum N_h p_h / N over the strata with at least one "
        "audit (N_h decisions, n_h audits, p_h = correct / audited, golden audits excluded, "
        "overturned verdicts correct); SE = sqrt(sum (N_h/N)^2 p_h (1 - p_h) / n_h "
        "(1 - n_h/N_h)); interval = estimate +- 1.959964 SE, clipped to [0, 1]. Coverage = "
        "share of the decisions in strata with at least one audit. Audited accuracy = correct "
        "/ audited with its Wilson interval; it over-weights the strata audited most."
    ),
    "de": (
        "Nachgeschichtete Schätzung der Genauigkeit aller Entscheidungen: Schichten h = "
        "(Moderator, Markttag); Schätzung = Summe N_h p_h / N über die Schichten mit "
        "mindestens einer Prüfung (N_h Entscheidungen, n_h Prüfungen, p_h = korrekt / geprüft, "
        "ohne Golden-Audits, aufgehobene Urteile korrekt); SE = sqrt(Summe (N_h/N)^2 p_h "
        "(1 - p_h) / n_h (1 - n_h/N_h)); Intervall = Schätzung +- 1,959964 SE, auf [0, 1] "
        "begrenzt. Abdeckung = Anteil der Entscheidungen in Schichten mit mindestens einer "
        "Prüfung. Genauigkeit (Stichprobe) = korrekt / geprüft mit Wilson-Intervall; sie "
        "gewichtet die am meisten geprüften Schichten über."
    ),
}


@dataclass(frozen=True, slots=True)
class StrataSums:
    """What the post-stratified estimate of one slice needs from its strata.

    ``decisions``: sum N_h over all strata; ``covered_decisions``: over the strata with at
    least one audit; ``weighted_correct``: sum N_h p_h and ``variance_sum``: sum N_h^2 p_h
    (1 - p_h) / n_h (1 - n_h / N_h), both over those strata (the finite population
    correction held at 0 when n_h > N_h); ``audited`` and ``correct``: sum n_h and sum x_h.
    """

    decisions: int
    covered_decisions: int
    weighted_correct: float
    variance_sum: float
    audited: int
    correct: int


def estimate_from_sums(sums: StrataSums) -> PopulationEstimate | None:
    """The post-stratified estimate from its strata sums, or None with nothing to weight by
    (no audited stratum holds a decision): N = covered decisions, estimate = sum N_h p_h / N,
    SE = sqrt(variance_sum) / N (the (N_h / N)^2 of the SE formula with N^2 taken out)."""
    covered = sums.covered_decisions
    if covered <= 0:
        return None
    estimate = min(1.0, max(0.0, sums.weighted_correct / covered))
    standard_error = math.sqrt(max(0.0, sums.variance_sum)) / covered
    return PopulationEstimate(
        estimate=estimate,
        standard_error=standard_error,
        ci_low=max(0.0, estimate - Z_95 * standard_error),
        ci_high=min(1.0, estimate + Z_95 * standard_error),
        coverage=covered / sums.decisions,
        decisions=sums.decisions,
        covered_decisions=covered,
        audited=sums.audited,
        correct=sums.correct,
    )


async def population_sums(
    session: AsyncSession, *, scope: AnalyticsScope, group_by: PopulationGroup | None
) -> dict[str, StrataSums]:
    """Strata sums per slice of ``group_by`` (one ``ALL_KEY`` slice without it), in one
    query: the rollups grouped by (slice, day, moderator) are the strata, summed per slice.

    Day before moderator: the order of ``ix_quality_rollups_totals_strata`` (migration 0013),
    so PostgreSQL reads the strata of the totals in order and sums each as it ends instead of
    hashing tens of thousands of them (the whole population's strata, as the briefing asks).
    """
    dimensions: list[Dimension] = [] if group_by is None else [group_by]
    strata = quality_sums_select(
        scope=scope,
        group_by=[*dimensions, "day", "moderator"],
        counters=["decisions", "audited", "correct"],
    ).subquery("strata")
    key: Any = strata.c.k0 if group_by is not None else literal(ALL_KEY)
    query = select(key.label("key"), *strata_sum_columns(strata))
    if group_by is not None:
        query = query.group_by(strata.c.k0)
    result = await session.execute(query)
    sums: dict[str, StrataSums] = {}
    for row in result:
        if row.decisions is None:  # no rollup row at all (the ungrouped query's one row)
            continue
        sums[str(row.key)] = StrataSums(
            decisions=int(row.decisions),
            covered_decisions=int(row.covered),
            weighted_correct=float(row.weighted_correct),
            variance_sum=float(row.variance_sum),
            audited=int(row.audited),
            correct=int(row.correct),
        )
    return sums


async def population_day_sums(
    session: AsyncSession, *, scope: AnalyticsScope
) -> dict[str, StrataSums]:
    """What ``population_sums`` gives without ``group_by``, read from
    ``population_day_rollups``: the strata sums of the window's days added up (strata never
    span days). For a scope they cover (``shared.analytics.day_rollups.
    population_day_rollups_cover``: every market or one, no other filter; ValueError
    otherwise)."""
    if not population_day_rollups_cover(scope):
        raise ValueError("population_day_rollups hold every market's strata or one market's")
    table = PopulationDayRollup
    market = ALL_MARKETS if scope.markets is None else scope.markets[0]
    row = (
        await session.execute(
            select(
                func.count().label("days"),
                cast(func.sum(table.decisions), BigInteger).label("decisions"),
                cast(func.sum(table.covered_decisions), BigInteger).label("covered"),
                func.sum(table.weighted_correct).label("weighted_correct"),
                func.sum(table.variance_sum).label("variance_sum"),
                cast(func.sum(table.audited), BigInteger).label("audited"),
                cast(func.sum(table.correct), BigInteger).label("correct"),
            ).where(
                table.market == market,
                table.day >= scope.day_from,
                table.day <= scope.day_to,
            )
        )
    ).one()
    if not row.days:  # no rollup row at all, as population_sums answers then
        return {}
    return {
        ALL_KEY: StrataSums(
            decisions=int(row.decisions),
            covered_decisions=int(row.covered),
            weighted_correct=float(row.weighted_correct),
            variance_sum=float(row.variance_sum),
            audited=int(row.audited),
            correct=int(row.correct),
        )
    }


def population_row(key: str, sums: StrataSums, *, min_audits: int) -> PopulationRow:
    """One slice's row: the estimate with its interval beside the audited accuracy with its
    Wilson interval; nulls and a note where there is nothing to estimate from."""
    estimate = estimate_from_sums(sums)
    audited_accuracy = rate(sums.correct, sums.audited)
    note = None
    if sums.audited == 0:
        note = NO_AUDITS_NOTE if sums.decisions else NOTHING_NOTE
    elif estimate is None:
        note = NO_DECISIONS_NOTE
    return PopulationRow(
        key=key,
        estimate=None if estimate is None else estimate.estimate,
        ci_low=None if estimate is None else estimate.ci_low,
        ci_high=None if estimate is None else estimate.ci_high,
        audited_accuracy=audited_accuracy.value,
        audited_ci_low=audited_accuracy.ci_low,
        audited_ci_high=audited_accuracy.ci_high,
        decisions=sums.decisions,
        audited=sums.audited,
        coverage=None if estimate is None else estimate.coverage,
        small_sample=sums.audited < min_audits,
        note=join_notes([note or ""]),
    )


_NOTHING = StrataSums(
    decisions=0, covered_decisions=0, weighted_correct=0.0, variance_sum=0.0, audited=0, correct=0
)


async def population_report(
    session: AsyncSession,
    *,
    query: PopulationQuery,
    viewer: Viewer,
    max_days: int,
    today: date,
) -> PopulationReport:
    """The population accuracy ``viewer`` asked for, within its reach (403 beyond, 422 for a
    bad window), counting every decision and verdict committed before it was asked. Without
    ``group_by`` one ``(all)`` row, also when nothing was counted."""
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    await refresh_rollups(session)
    rows = await population_rows(
        session, scope=scope, group_by=query.group_by, min_audits=query.min_audits
    )
    return PopulationReport(day_from=scope.day_from, day_to=scope.day_to, rows=rows)


async def population_rows(
    session: AsyncSession,
    *,
    scope: AnalyticsScope,
    group_by: PopulationGroup | None,
    min_audits: int,
    from_day_rollups: bool = False,
) -> list[PopulationRow]:
    """The rows of ``population_report`` over the rollups as they are (the caller refreshed
    them): one per slice in byte order, or one ``(all)`` row without ``group_by``, also when
    nothing was counted. ``from_day_rollups``: read ``population_day_rollups`` instead of
    the strata where they cover the scope, without ``group_by`` (the briefing)."""
    if from_day_rollups and group_by is None and population_day_rollups_cover(scope):
        sums = await population_day_sums(session, scope=scope)
    else:
        sums = await population_sums(session, scope=scope, group_by=group_by)
    if group_by is None and not sums:
        sums = {ALL_KEY: _NOTHING}
    return [
        population_row(key, sums[key], min_audits=min_audits)
        for key in sorted(sums, key=lambda key: key.encode())
    ]


def population_csv(report: PopulationReport) -> bytes:
    """The rows as CSV (header = the JSON row keys)."""
    return rows_csv(report.rows, PopulationRow)


def population_xlsx(report: PopulationReport, *, query: PopulationQuery) -> bytes:
    """The rows on a first sheet (headers in ``query.lang``), then the About sheet: the days
    and filters counted and the estimator."""
    lang = query.lang
    return rows_xlsx(
        [TableSheet(title=_SHEET_TITLES[lang], rows=report.rows, row_type=PopulationRow)],
        about=about_rows(query, report, method=[(_METHOD_LABEL[lang], _METHOD[lang])]),
        lang=lang,
    )
