"""The management briefing: ``GET /v1/reports/briefing`` (JSON, PPTX, XLSX).

The briefing says what the reports say, from the same functions, over two rollup queries
after one refresh: the comparison (markets, or the queues of the one market asked for), its
error breakdown, the headline's errors and rates (the row functions of the comparison,
errors and rates reports: ``comparison_rows``, ``errors_row``, ``rates_row``) and the weekly
trend (``trend_rows``, as ``trend_report``) from one query grouped by (dimension, day);
population accuracy from ``population_rows`` (as ``population_report``). Both queries read
the day rollups where they cover the viewer's scope (``shared.analytics.day_rollups``: the
same sums as the finer rows give, from ~1/50 and ~1/2000 of the rows at 10 M decisions).
The calibration agreement is what each closed session stored at its close (what
``GET /v1/calibrations/{id}/results`` answers); quizzes and training from their domains.
The viewer's reach applies to every section: a moderator key gets its own briefing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.comparison import SliceCounts, comparison_rows
from shared.analytics.day_rollups import queue_day_rollups_cover
from shared.analytics.errors import errors_row
from shared.analytics.filters import analytics_scope
from shared.analytics.population import population_rows
from shared.analytics.queries import (
    QUALITY_COUNTERS,
    RollupSum,
    sum_quality_rollups,
    sum_queue_day_rollups,
)
from shared.analytics.rates import rates_row
from shared.analytics.rollups import refresh_rollups
from shared.analytics.schemas import (
    ALL_KEY,
    DEFAULT_ALPHA,
    DEFAULT_MIN_AUDITS,
    Briefing,
    BriefingHeadline,
    BriefingQuery,
    CalibrationAgreementRow,
    ComparisonDimension,
    ComparisonReport,
    ErrorsReport,
    EscalationRow,
    EscalationsSection,
    PopulationQuery,
    QuizCompletionRow,
    TrainingCompletionRow,
    TrendQuery,
    TrendReport,
)
from shared.analytics.slices import rate, slice_key
from shared.analytics.trend import period_start, trend_rows
from shared.calibrations.service import closed_calibrations
from shared.core.auth import Principal
from shared.escalations.queries import open_escalations_of
from shared.quizzes.service import quiz_completion
from shared.stats.scores import check_severity_weights
from shared.training_plans.service import training_completion

DEFAULT_TARGET = 0.95
BRIEFING_ESCALATIONS = 10
# The rollup counters the briefing's sections read (no section reads the enforcement
# counters, which are 0 on the totals rows the briefing sums anyway).
BRIEFING_COUNTERS: tuple[str, ...] = tuple(
    name for name in QUALITY_COUNTERS if not name.startswith("enforcement_")
)


async def open_escalations(
    session: AsyncSession, *, viewer: Principal, market: str | None
) -> list[EscalationRow]:
    """The newest unresolved escalations ``viewer`` may see (of ``market`` when given), at
    most ``BRIEFING_ESCALATIONS`` (``shared.escalations.queries``)."""
    rows = await open_escalations_of(
        session, viewer=viewer, market=market, limit=BRIEFING_ESCALATIONS
    )
    return [
        EscalationRow(
            id=str(escalation.id),
            metric=str((escalation.evidence or {}).get("metric") or "manual"),
            slice=escalation.slice_key,
            status=escalation.status,
            opened_at=escalation.opened_at.astimezone(UTC).date(),
        )
        for escalation in rows
    ]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def briefing(
    session: AsyncSession,
    *,
    query: BriefingQuery,
    viewer: Principal,
    max_days: int,
    today: date,
    severity_weights: Mapping[str, float],
    now: datetime,
    target: float = DEFAULT_TARGET,
    min_audits: int = DEFAULT_MIN_AUDITS,
) -> Briefing:
    """The briefing ``viewer`` asked for, within its reach (403 beyond, 422 for a window
    that is reversed or too long), over the market-local days of ``query``.

    The comparison and the error breakdown compare markets, or the queues of the market
    asked for (or of a key's only market). Calibration, quiz and training sections count
    the UTC days of the window (their timestamps have no market-local day).
    """
    scope = analytics_scope(viewer, query, max_days=max_days, today=today)
    single_market = query.market or (
        scope.markets[0] if scope.markets is not None and len(scope.markets) == 1 else None
    )
    dimension: ComparisonDimension = "queue" if single_market is not None else "market"
    common: dict[str, Any] = {
        "from": scope.day_from,
        "to": scope.day_to,
        "market": query.market,
        "lang": query.lang,
        "min_audits": min_audits,
    }
    trend_query = TrendQuery.model_validate({**common, "interval": "week"})
    population_query = PopulationQuery.model_validate(common)
    # Every section reads the rollups as one refresh left them (the reports refresh before
    # they read; here once for all of them, so the sections agree with each other).
    await refresh_rollups(session)
    # The comparison, the error breakdown, the headline's errors and rates and the weekly
    # trend all sum the same rollup rows: one query grouped by (dimension, day) gives each its
    # counts (markets, or one market's queues, partition the window, so a slice's counts are
    # the sum of its days, the totals the sum of the slices, and a week's counts the sum of
    # its days). Sums of whole numbers: exactly what grouping by each in SQL gives. Read from
    # the day rollups (every moderator's totals per market, queue and day) unless the viewer
    # sees one moderator only: the same sums, from ~1/50 of the rows.
    sum_totals = sum_queue_day_rollups if queue_day_rollups_cover(scope) else sum_quality_rollups
    day_sums = await sum_totals(
        session, scope=scope, group_by=[dimension, "day"], counters=BRIEFING_COUNTERS
    )
    slice_counts: dict[str, dict[str, int]] = {}
    week_counts: dict[date, tuple[int, int]] = {}
    for group in day_sums:
        part, day = group.key
        assert isinstance(part, str)  # a market or a queue
        assert isinstance(day, date)
        counts = slice_counts.setdefault(part, dict.fromkeys(BRIEFING_COUNTERS, 0))
        for name in BRIEFING_COUNTERS:
            counts[name] += group[name]
        week = period_start(day, "week")
        audited, correct = week_counts.get(week, (0, 0))
        week_counts[week] = (audited + group["audited"], correct + group["correct"])
    # In the order sum_quality_rollups groups them: byte order of the key.
    slice_sums = [
        RollupSum(key=(part,), counts=slice_counts[part])
        for part in sorted(slice_counts, key=lambda part: part.encode())
    ]
    totals = {name: sum(group[name] for group in slice_sums) for name in BRIEFING_COUNTERS}
    trend = TrendReport(
        day_from=scope.day_from,
        day_to=scope.day_to,
        rows=trend_rows(
            week_counts,
            scope=scope,
            interval=trend_query.interval,
            alpha=trend_query.alpha,
            min_audits=trend_query.min_audits,
        ),
        interval=trend_query.interval,
        alpha=trend_query.alpha,
    )
    population_rows_all = await population_rows(
        session,
        scope=scope,
        group_by=None,
        min_audits=population_query.min_audits,
        from_day_rollups=True,
    )
    comparison = ComparisonReport(
        day_from=scope.day_from,
        day_to=scope.day_to,
        rows=comparison_rows(
            [
                SliceCounts(
                    key=slice_key(group.key), audited=group["audited"], correct=group["correct"]
                )
                for group in slice_sums
            ],
            population=(totals["audited"], totals["correct"]),
            target=target,
            alpha=DEFAULT_ALPHA,
            min_audits=min_audits,
        ),
        dimension=dimension,
        target=target,
        alpha=DEFAULT_ALPHA,
    )
    weights = check_severity_weights(severity_weights)
    errors = ErrorsReport(
        day_from=scope.day_from,
        day_to=scope.day_to,
        rows=[
            errors_row(
                slice_key(group.key),
                group.counts,
                min_audits=min_audits,
                severity_weights=weights,
            )
            for group in slice_sums
        ],
        severity_weights=weights,
    )
    overall = errors_row(ALL_KEY, totals, min_audits=min_audits, severity_weights=weights)
    rates_row_all = rates_row(ALL_KEY, totals, min_audits=min_audits)
    (whole,) = population_rows_all
    audited = whole.audited
    headline = BriefingHeadline(
        decisions=whole.decisions,
        audited=audited,
        correct=sum(row.correct for row in trend.rows),
        accuracy=whole.audited_accuracy,
        ci_low=whole.audited_ci_low,
        ci_high=whole.audited_ci_high,
        population_accuracy=whole.estimate,
        population_ci_low=whole.ci_low,
        population_ci_high=whole.ci_high,
        coverage=whole.coverage,
        quality_score=overall.quality_score,
        dispute_rate=rates_row_all.dispute_rate,
        dispute_rate_ci_low=rates_row_all.dispute_rate_ci_low,
        dispute_rate_ci_high=rates_row_all.dispute_rate_ci_high,
        overturn_rate=rates_row_all.overturn_rate,
        overturn_rate_ci_low=rates_row_all.overturn_rate_ci_low,
        overturn_rate_ci_high=rates_row_all.overturn_rate_ci_high,
        small_sample=audited < min_audits,
        note=whole.note,
    )
    window_start = _day_start(scope.day_from)
    window_end = _day_start(scope.day_to + timedelta(days=1))
    calibrations = [
        CalibrationAgreementRow(
            id=str(calibration.id),
            title=calibration.title,
            market=calibration.market,
            closed_at=calibration.closed_at.astimezone(UTC).date(),
            krippendorff_alpha=calibration.krippendorff_alpha,
            percent_agreement=calibration.percent_agreement,
            n_units=calibration.n_units or 0,
            n_raters=calibration.n_raters or 0,
            flagged_items=calibration.flagged_items or 0,
        )
        for calibration in await closed_calibrations(
            session,
            viewer=viewer,
            market=query.market,
            closed_from=window_start,
            closed_before=window_end,
        )
        if calibration.closed_at is not None
    ]
    quizzes = [
        QuizCompletionRow(
            quiz_id=str(quiz.quiz_id),
            title=quiz.title,
            policy_code=quiz.policy_code,
            attempts=quiz.attempts,
            reviewers=quiz.reviewers,
            passed=quiz.passed,
            **rate(quiz.passed, quiz.reviewers).fields("pass_rate"),
            mean_score=quiz.mean_score,
        )
        for quiz in await quiz_completion(
            session,
            viewer=viewer,
            market=query.market,
            attempted_from=window_start,
            attempted_before=window_end,
        )
    ]
    training = [
        TrainingCompletionRow(
            plan_id=str(plan.plan_id),
            title=plan.title,
            kind=plan.kind,
            items=plan.items,
            completed=plan.completed,
            **rate(plan.completed, plan.items).fields("completion_rate"),
            overdue=plan.overdue,
        )
        for plan in await training_completion(
            session,
            viewer=viewer,
            market=query.market,
            due_from=window_start,
            due_before=window_end,
            now=now,
        )
    ]
    escalations = await open_escalations(session, viewer=viewer, market=query.market)
    return Briefing(
        day_from=scope.day_from,
        day_to=scope.day_to,
        market=query.market,
        dimension=dimension,
        headline=headline,
        trend=trend,
        comparison=comparison,
        errors=errors,
        calibrations=calibrations,
        escalations=EscalationsSection(rows=escalations, note=None),
        quizzes=quizzes,
        training=training,
    )
