"""Report downloads: ``GET /console/reports`` and ``GET /console/reports/download``
(manager, admin).

A download is the API's own report route (``services.audit_api.reports.router``) called with
the signed-in person's ``Principal``: the same query model, domain function, file writer
and attachment name as ``GET /v1/reports/<report>?format=...``. The page offers each report
in the file formats the API writes for it (CSV where the report has rows, XLSX, PPTX for
the briefing, PNG for the charts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.forms import Problem, problems_of
from services.audit_api.console.overview import form_values
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from services.audit_api.reports import router as api
from shared.analytics.schemas import (
    BriefingQuery,
    ComparisonQuery,
    ConfusionQuery,
    ErrorsQuery,
    PopulationQuery,
    RatesQuery,
    TrendQuery,
)
from shared.core.auth import Principal, Role
from shared.core.errors import UnprocessableEntity
from shared.core.settings import Settings
from shared.schemas.reports import AccuracyQuery

router = APIRouter()

REPORT_PAGE_ROLES = (Role.MANAGER, Role.ADMIN)
ReportsContext = Annotated[ConsoleContext, Depends(console_page(*REPORT_PAGE_ROLES))]

Endpoint = Callable[[BaseModel, AsyncSession, Principal, Settings], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ConsoleReport:
    """A report the page offers: its API route's query model and handler, its formats, and
    the grouping choices its query takes (``group_by``, ``interval`` or ``dimension``)."""

    name: str
    title: str
    description: str
    query: type[BaseModel]
    endpoint: Endpoint
    formats: tuple[str, ...]
    choice: str | None = None
    options: tuple[str, ...] = ()


def _with_settings(handler: Callable[..., Awaitable[Any]]) -> Endpoint:
    async def call(
        query: BaseModel, session: AsyncSession, principal: Principal, settings: Settings
    ) -> Any:
        return await handler(query=query, session=session, principal=principal, settings=settings)

    return call


async def _accuracy(
    query: BaseModel, session: AsyncSession, principal: Principal, settings: Settings
) -> Any:
    assert isinstance(query, AccuracyQuery)
    return await api.accuracy_report(query=query, session=session, principal=principal)


SLICES = ("market", "queue", "moderator", "policy", "day")

# Titles and descriptions are msgids: the template translates them.
REPORTS: tuple[ConsoleReport, ...] = (
    ConsoleReport(
        "briefing",
        "Management briefing",
        "Headline numbers, trend, comparison, errors, calibration, escalations, training.",
        BriefingQuery,
        _with_settings(api.briefing_report),
        ("pptx", "xlsx"),
    ),
    ConsoleReport(
        "accuracy",
        "Accuracy",
        "Accuracy with its Wilson interval per slice.",
        AccuracyQuery,
        _accuracy,
        ("csv", "xlsx"),
        "group_by",
        SLICES,
    ),
    ConsoleReport(
        "trend",
        "Trend",
        "Accuracy per period, with the change against the period before and its significance.",
        TrendQuery,
        _with_settings(api.trend_report),
        ("csv", "xlsx", "png"),
        "interval",
        ("week", "day", "month"),
    ),
    ConsoleReport(
        "population-accuracy",
        "Population accuracy",
        "The post-stratified accuracy of all decisions, beside the audited accuracy.",
        PopulationQuery,
        _with_settings(api.population_accuracy_report),
        ("csv", "xlsx"),
        "group_by",
        ("market", "queue", "moderator"),
    ),
    ConsoleReport(
        "comparison",
        "Comparison",
        "Slices ranked against the target, each tested against the rest.",
        ComparisonQuery,
        _with_settings(api.comparison_report),
        ("csv", "xlsx", "png"),
        "dimension",
        ("market", "queue", "policy"),
    ),
    ConsoleReport(
        "errors",
        "Errors",
        "Errors by type and severity, and the quality score.",
        ErrorsQuery,
        _with_settings(api.errors_report),
        ("csv", "xlsx"),
        "group_by",
        SLICES,
    ),
    ConsoleReport(
        "confusion",
        "Confusion",
        "Moderator action against the auditor's expected action; precision and recall.",
        ConfusionQuery,
        _with_settings(api.confusion_report),
        ("csv", "xlsx"),
    ),
    ConsoleReport(
        "rates",
        "Rates",
        "Audit coverage, dispute, overturn and appeal-overturn rates.",
        RatesQuery,
        _with_settings(api.rates_report),
        ("csv", "xlsx"),
        "group_by",
        SLICES,
    ),
)
REPORTS_BY_NAME = {report.name: report for report in REPORTS}
WINDOW_FIELDS = ("from", "to", "market")
CHOICE_FIELDS = ("group_by", "interval", "dimension")


def _page(
    request: Request,
    context: ConsoleContext,
    *,
    values: dict[str, str],
    problems: list[Problem],
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "reports/reports.html",
        context=context,
        status_code=status_code,
        reports=REPORTS,
        values=values,
        problems=problems,
        markets=context.principal.markets,
    )


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request, context: ReportsContext) -> HTMLResponse:
    """Every report, in each file format it comes in, over the window chosen."""
    return _page(request, context, values=form_values(request, WINDOW_FIELDS), problems=[])


@router.get("/reports/download", response_model=None)
async def download_report(
    request: Request, context: ReportsContext, session: SessionDep, settings: SettingsDep
) -> Response:
    """One report as a file: the API's route for it, with this person's reach."""
    values = form_values(request, ("report", "format", *WINDOW_FIELDS, *CHOICE_FIELDS))
    window = {name: values[name] for name in WINDOW_FIELDS if name in values}
    report = REPORTS_BY_NAME.get(values.get("report", ""))
    if report is None:
        problem = Problem(("report",), "choose one of the reports listed")
        return _page(request, context, values=window, problems=[problem], status_code=422)
    file_format = values.get("format", "")
    if file_format not in report.formats:
        problem = Problem(("format",), f"{report.name} comes as {', '.join(report.formats)}")
        return _page(request, context, values=window, problems=[problem], status_code=422)
    params: dict[str, str] = {**window, "format": file_format, "lang": context.language}
    if report.choice is not None:
        params[report.choice] = values.get(report.choice, report.options[0])
    try:
        query = report.query.model_validate(params)
        answer = await report.endpoint(query, session, context.principal, settings)
    except (ValidationError, UnprocessableEntity) as exc:
        return _page(request, context, values=window, problems=problems_of(exc), status_code=422)
    assert isinstance(answer, Response), "a file format answers a file"
    return answer
