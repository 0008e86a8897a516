"""Reports: ``GET /v1/reports/*`` (every role, each within what it may see).

Every report answers JSON, or its rows as a file (``format``): ``answer_report`` turns a
report into either, and ``report_responses`` declares the file media types in the OpenAPI
schema, so a route is the query, the domain call and one ``answer_report``. Who sees what is
decided by the domain (``shared.analytics.filters.analytics_scope``): a moderator key only its
own numbers, a market-scoped key only its markets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from services.audit_api.deps import ANY_ROLE, SessionDep, SettingsDep, require_roles
from shared.analytics import (
    briefing,
    briefing_pptx,
    briefing_xlsx,
    comparison,
    confusion,
    errors,
    population,
    rates,
    trend,
)
from shared.analytics import exports as analytics_exports
from shared.analytics.schemas import (
    AnalyticsReport,
    Briefing,
    BriefingQuery,
    ComparisonQuery,
    ComparisonReport,
    ConfusionQuery,
    ConfusionReport,
    ErrorsQuery,
    ErrorsReport,
    PopulationQuery,
    PopulationReport,
    RatesQuery,
    RatesReport,
    TrendQuery,
    TrendReport,
)
from shared.core.auth import Principal
from shared.core.errors import UnprocessableEntity
from shared.reports import exports, service
from shared.schemas.common import Problem
from shared.schemas.reports import AccuracyQuery, AccuracyReport

router = APIRouter(prefix="/v1/reports", tags=["reports"])

ReportReaderDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]

ReportFile = Literal["csv", "xlsx", "png", "pptx"]
ReportT = TypeVar("ReportT", bound=AnalyticsReport)

_MEDIA_TYPES: Mapping[ReportFile, str] = {
    "csv": analytics_exports.CSV_MEDIA_TYPE,
    "xlsx": analytics_exports.XLSX_MEDIA_TYPE,
    "png": analytics_exports.PNG_MEDIA_TYPE,
    "pptx": briefing_pptx.PPTX_MEDIA_TYPE,
}
# The media types as the OpenAPI schema names them (the CSV's charset is a parameter).
_DOCUMENTED_MEDIA_TYPES: Mapping[ReportFile, str] = {
    "csv": "text/csv",
    "xlsx": analytics_exports.XLSX_MEDIA_TYPE,
    "png": analytics_exports.PNG_MEDIA_TYPE,
    "pptx": briefing_pptx.PPTX_MEDIA_TYPE,
}
_FILE_SCHEMAS: Mapping[ReportFile, dict[str, str]] = {
    "csv": {"type": "string"},
    "xlsx": {"type": "string", "format": "binary"},
    "png": {"type": "string", "format": "binary"},
    "pptx": {"type": "string", "format": "binary"},
}


def report_responses(*formats: ReportFile) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a report route: 200 as JSON or as a file in each of
    ``formats``, 403 beyond the key's reach, 422 for bad input."""
    return {
        200: {
            "content": {
                _DOCUMENTED_MEDIA_TYPES[file_format]: {"schema": _FILE_SCHEMAS[file_format]}
                for file_format in formats
            },
            "description": (
                "The report as JSON, or with `format` as a "
                + "/".join(file_format.upper() for file_format in formats)
                + " attachment."
            ),
        },
        403: {"model": Problem},
        422: {"model": Problem},
    }


def utc_today() -> date:
    """Today in UTC: where a report's default window ends."""
    return datetime.now(UTC).date()


async def answer_report(
    report: ReportT,
    *,
    format: Literal["json"] | ReportFile,
    name: str,
    files: Mapping[ReportFile, Callable[[], bytes]],
) -> ReportT | Response:
    """``report`` as JSON (``format=json``), or the file ``files[format]`` writes, as an
    attachment named after the report and its days (``trend-2026-11-01-to-2026-11-30.csv``).

    Writers run in a threadpool: building a workbook or a chart is CPU work that grows with
    the rows and must not hold up the event loop. A format the route does not offer is a 422
    (the query's ``format`` type normally refuses it first).
    """
    if format == "json":
        return report
    if format not in files:
        message = f"this report is not offered as {format}"
        raise UnprocessableEntity(message, errors=[{"loc": ["query", "format"], "msg": message}])
    content = await run_in_threadpool(files[format])
    filename = analytics_exports.attachment_filename(name, report.day_from, report.day_to, format)
    return Response(
        content=content,
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/accuracy",
    response_model=AccuracyReport,
    responses=report_responses("csv", "xlsx"),
)
async def accuracy_report(
    query: Annotated[AccuracyQuery, Query()], session: SessionDep, principal: ReportReaderDep
) -> AccuracyReport | Response:
    """Accuracy (correct / audited) per moderator, queue, market, policy label or day, each
    with its Wilson score interval at 95 %.

    Verdicts overturned on dispute count as correct; golden audits never count. `from` and
    `to` are market-local days, inclusive (default: the 30 days ending today in UTC).
    admin, manager, policy_poc and qa_auditor keys see every moderator (a market-scoped key
    only its markets; naming another market is 403). A moderator key counts only its own
    verdicts under any grouping; naming another `moderator_id` is 403.
    """
    report = await service.accuracy_report(session, query=query, viewer=principal)
    if query.format == "json":
        return AccuracyReport(rows=report.rows)
    if query.format == "csv":
        content = exports.accuracy_csv(report.rows)
        media_type = analytics_exports.CSV_MEDIA_TYPE
    else:
        # Building a workbook is CPU work that grows with the rows: keep it off the event loop.
        content = await run_in_threadpool(
            exports.accuracy_xlsx,
            report.rows,
            group_by=query.group_by,
            day_from=report.day_from,
            day_to=report.day_to,
            lang=query.lang,
        )
        media_type = analytics_exports.XLSX_MEDIA_TYPE
    filename = exports.export_filename(query.group_by, report.day_from, report.day_to, query.format)
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/errors", response_model=ErrorsReport, responses=report_responses("csv", "xlsx"))
async def errors_report(
    query: Annotated[ErrorsQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> ErrorsReport | Response:
    """Errors per slice (`group_by`) or for the whole filter: counts by error type and by
    severity, the error rate with its Wilson 95 % interval, and the severity-weighted quality
    score, 1 - sum(weight x errors) / (max weight x audited), weights from the
    `severity_weights` setting (default critical 5, major 3, minor 1).

    Verdicts overturned on dispute count as correct. Every role; a moderator key sees only
    its own numbers, a market-scoped key only its markets.
    """
    report = await errors.errors_report(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
        severity_weights=settings.severity_weights,
    )
    return await answer_report(
        report,
        format=query.format,
        name="errors",
        files={
            "csv": lambda: errors.errors_csv(report),
            "xlsx": lambda: errors.errors_xlsx(report, query),
        },
    )


@router.get("/confusion", response_model=ConfusionReport, responses=report_responses("csv", "xlsx"))
async def confusion_report(
    query: Annotated[ConfusionQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> ConfusionReport | Response:
    """The matrix of moderator action x the action the auditor expected (every cell, zeros
    included; `share` of the moderator action's verdicts), and per policy code the precision
    and recall of the moderators' enforcement as the auditors judged it, each with its
    Wilson 95 % interval. A verdict counts under the policies the moderator applied and those
    the auditor expected; `policy` narrows both to the verdicts concerning that policy.

    `format=csv` holds the matrix cells; `format=xlsx` a sheet for the matrix and one for the
    policies. Every role; a moderator key sees only its own numbers.
    """
    report = await confusion.confusion_report(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
    )
    return await answer_report(
        report,
        format=query.format,
        name="confusion",
        files={
            "csv": lambda: confusion.confusion_csv(report),
            "xlsx": lambda: confusion.confusion_xlsx(report, query),
        },
    )


@router.get("/rates", response_model=RatesReport, responses=report_responses("csv", "xlsx"))
async def rates_report(
    query: Annotated[RatesQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> RatesReport | Response:
    """Per slice (`group_by`) or for the whole filter: audit coverage (audited / decisions),
    dispute rate (disputed / judged incorrect), overturn rate (overturned / disputed) and
    appeal-overturn rate (reversed / appealed), each with its Wilson 95 % interval, the mean
    hours from decision to verdict and the mean handling time.

    A rate without a denominator is null and `note` says why. Every role; a moderator key
    sees only its own numbers, a market-scoped key only its markets.
    """
    report = await rates.rates_report(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
    )
    return await answer_report(
        report,
        format=query.format,
        name="rates",
        files={
            "csv": lambda: rates.rates_csv(report),
            "xlsx": lambda: rates.rates_xlsx(report, query),
        },
    )


@router.get("/trend", response_model=TrendReport, responses=report_responses("csv", "xlsx", "png"))
async def trend_report(
    query: Annotated[TrendQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> TrendReport | Response:
    """Accuracy per day, week (Monday to Sunday) or month, each period with its Wilson 95 %
    interval and, against the period before, the change and the pooled two-sided
    two-proportion z-test (`significant`: p < `alpha`).

    Every period of the window is a row: an empty one has nulls and a `note`, a period the
    window cuts counts only the window's days (its `note` says which). `format=png` draws
    the trend. Every role may read it within its reach: a moderator key counts only its own
    verdicts, a market-scoped key only its markets (naming others is 403).
    """
    report = await trend.trend_report(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
    )
    return await answer_report(
        report,
        format=query.format,
        name=f"trend-by-{query.interval}",
        files={
            "csv": partial(trend.trend_csv, report),
            "xlsx": partial(trend.trend_xlsx, report, query=query),
            "png": partial(trend.trend_chart, report, query=query),
        },
    )


@router.get(
    "/population-accuracy",
    response_model=PopulationReport,
    responses=report_responses("csv", "xlsx"),
)
async def population_accuracy_report(
    query: Annotated[PopulationQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> PopulationReport | Response:
    """The post-stratified estimate of the accuracy of all decisions, per market, queue or
    moderator (or one `(all)` row), beside the audited accuracy.

    Strata are (moderator, market-local day); each weighs by the decisions it received, not
    by how often it was audited, so a boosted sample (new moderators, low scorers) does not
    bias the estimate. `coverage` is the share of the decisions in strata with at least one
    audit: how much of the population the estimate speaks for. Every role may read it within
    its reach (a moderator key: only its own decisions).
    """
    report = await population.population_report(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
    )
    return await answer_report(
        report,
        format=query.format,
        name="population-accuracy" + (f"-by-{query.group_by}" if query.group_by else ""),
        files={
            "csv": partial(population.population_csv, report),
            "xlsx": partial(population.population_xlsx, report, query=query),
        },
    )


@router.get(
    "/comparison",
    response_model=ComparisonReport,
    responses=report_responses("csv", "xlsx", "png"),
)
async def comparison_report(
    query: Annotated[ComparisonQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> ComparisonReport | Response:
    """Markets, queues or policies ranked by the upper bound of their accuracy's Wilson 95 %
    interval (rank 1 = furthest below `target`), each tested against the rest of the
    population (pooled two-proportion z-test) with Benjamini-Hochberg q-values over the
    ranked slices (`adjustment`).

    Slices with fewer than `min_audits` audits come last, unranked and untested.
    `format=png` draws the ranking. Every role may read it within its reach.
    """
    report = await comparison.comparison_report(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
    )
    return await answer_report(
        report,
        format=query.format,
        name=f"comparison-by-{query.dimension}",
        files={
            "csv": partial(comparison.comparison_csv, report),
            "xlsx": partial(comparison.comparison_xlsx, report, query=query),
            "png": partial(comparison.comparison_chart, report, query=query),
        },
    )


@router.get("/briefing", response_model=Briefing, responses=report_responses("pptx", "xlsx"))
async def briefing_report(
    query: Annotated[BriefingQuery, Query()],
    session: SessionDep,
    principal: ReportReaderDep,
    settings: SettingsDep,
) -> Briefing | Response:
    """The management briefing over `from`..`to` (market-local days, default the last 30):
    headline numbers (decisions, audited and population accuracy with their intervals,
    coverage, quality score, dispute and overturn rates), the weekly trend, the market
    comparison (the queues of the one `market` asked for) against a 95 % target, the error
    breakdown, calibration agreement, open escalations, quiz and training completion.

    `format=pptx`: a 16:9 deck with native, editable charts; `format=xlsx`: a workbook with
    a sheet per section and native charts (Wilson intervals as error bars); texts in `lang`.
    Every role; a moderator key gets its own briefing, a market-scoped key its markets'.
    """
    report = await briefing.briefing(
        session,
        query=query,
        viewer=principal,
        max_days=settings.report_max_days,
        today=utc_today(),
        severity_weights=settings.severity_weights,
        now=datetime.now(UTC),
    )
    return await answer_report(
        report,
        format=query.format,
        name="briefing",
        files={
            "pptx": partial(briefing_pptx.briefing_pptx, report, lang=query.lang),
            "xlsx": partial(briefing_xlsx.briefing_xlsx, report, lang=query.lang),
        },
    )
