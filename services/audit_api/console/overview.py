"""The QA lead's overview: ``GET /console/overview`` (manager, admin).

Every figure comes from the management briefing (``shared.analytics.briefing.briefing``, what
``GET /v1/reports/briefing`` answers): accuracy by market (or by queue of the one market
asked for) with its Wilson interval, population accuracy, the weekly trend with its
significant changes, the error Pareto, calibration agreement and the open escalations. Each
chart has its table (the table is what screen readers and browsers without JavaScript read),
and every number links to the audits behind it (``/console/audits``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from services.audit_api.console.forms import Problem, problems_of
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from shared.analytics.briefing import BRIEFING_ESCALATIONS, briefing
from shared.analytics.errors import ERROR_TYPES
from shared.analytics.schemas import Briefing, BriefingQuery, TrendRow
from shared.analytics.trend import next_period_start
from shared.core.auth import Role
from shared.core.errors import UnprocessableEntity

router = APIRouter()

OVERVIEW_ROLES = (Role.MANAGER, Role.ADMIN)
OverviewContext = Annotated[ConsoleContext, Depends(console_page(*OVERVIEW_ROLES))]

# The filters of the overview's GET form, as the briefing's query names them.
FILTER_FIELDS = ("from", "to", "market")


def form_values(request: Request, fields: Sequence[str]) -> dict[str, str]:
    """The non-empty values of ``fields`` in the query string (an empty form field means
    "not set"), stripped."""
    values: dict[str, str] = {}
    for name in fields:
        value = request.query_params.get(name, "").strip()
        if value:
            values[name] = value
    return values


def utc_today() -> date:
    return datetime.now(UTC).date()


def audits_link(**filters: object) -> str:
    """The drill-down: the audits page listing the audits behind a figure."""
    query = {name: str(value) for name, value in filters.items() if value not in (None, "")}
    return "/console/audits?" + urlencode(query)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def period_days(row: TrendRow, report: Briefing) -> tuple[date, date]:
    """The days of a trend period that the window counts (a cut period only its part)."""
    last = next_period_start(row.period_start, report.trend.interval) - timedelta(days=1)
    return max(row.period_start, report.day_from), min(last, report.day_to)


@dataclass(frozen=True, slots=True)
class ParetoBar:
    error_type: str
    count: int
    cumulative_share: float | None


def error_pareto(report: Briefing) -> list[ParetoBar]:
    """Error types by count, largest first, with the cumulative share of all errors (the
    counts summed over the briefing's error rows, which partition the window)."""
    totals = {
        error_type: sum(int(getattr(row, error_type)) for row in report.errors.rows)
        for error_type in ERROR_TYPES
    }
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    whole = sum(totals.values())
    bars: list[ParetoBar] = []
    running = 0
    for error_type, count in ordered:
        running += count
        bars.append(ParetoBar(error_type, count, running / whole if whole else None))
    return bars


@dataclass(frozen=True, slots=True)
class OverviewCharts:
    """The Chart.js configurations of the overview (canvas ``data-chart``), built from the
    same report the tables show; ``labels`` are the translated series names."""

    report: Briefing
    pareto: list[ParetoBar]

    def accuracy(self, labels: Mapping[str, str]) -> dict[str, Any]:
        rows = self.report.comparison.rows
        return {
            "type": "bar",
            "data": {
                "labels": [row.key for row in rows],
                "datasets": [
                    {
                        "label": labels["accuracy"],
                        "data": [_percent(row.accuracy) for row in rows],
                        "whiskers": [[_percent(row.ci_low), _percent(row.ci_high)] for row in rows],
                        "backgroundColor": "#3b6ea5",
                    }
                ],
            },
            "options": {
                "plugins": {"whiskers": {"color": "#1d1d1f"}},
                "scales": {"y": {"min": 0, "max": 100, "title": {"display": True, "text": "%"}}},
            },
        }

    def trend(self, labels: Mapping[str, str]) -> dict[str, Any]:
        rows = self.report.trend.rows
        return {
            "type": "line",
            "data": {
                "labels": [row.period_start.isoformat() for row in rows],
                "datasets": [
                    {
                        "label": labels["accuracy"],
                        "data": [_percent(row.accuracy) for row in rows],
                        "whiskers": [[_percent(row.ci_low), _percent(row.ci_high)] for row in rows],
                        "borderColor": "#3b6ea5",
                        "pointRadius": [7 if row.significant else 3 for row in rows],
                        "pointStyle": ["rectRot" if row.significant else "circle" for row in rows],
                        "pointBackgroundColor": [
                            "#b3261e" if row.significant else "#3b6ea5" for row in rows
                        ],
                        "spanGaps": True,
                    }
                ],
            },
            "options": {
                "plugins": {"whiskers": {"color": "#6b6b70"}},
                "scales": {"y": {"min": 0, "max": 100, "title": {"display": True, "text": "%"}}},
            },
        }

    def errors(self, labels: Mapping[str, str]) -> dict[str, Any]:
        return {
            "type": "bar",
            "data": {
                "labels": [labels[bar.error_type] for bar in self.pareto],
                "datasets": [
                    {
                        "type": "bar",
                        "label": labels["errors"],
                        "data": [bar.count for bar in self.pareto],
                        "backgroundColor": "#b3261e",
                        "yAxisID": "y",
                    },
                    {
                        "type": "line",
                        "label": labels["cumulative"],
                        "data": [_percent(bar.cumulative_share) for bar in self.pareto],
                        "borderColor": "#1d1d1f",
                        "yAxisID": "share",
                    },
                ],
            },
            "options": {
                "scales": {
                    "y": {"beginAtZero": True, "ticks": {"precision": 0}},
                    "share": {"position": "right", "min": 0, "max": 100},
                }
            },
        }

    def calibrations(self, labels: Mapping[str, str]) -> dict[str, Any]:
        rows = self.report.calibrations
        return {
            "type": "line",
            "data": {
                "labels": [f"{row.closed_at.isoformat()} {row.title}" for row in rows],
                "datasets": [
                    {
                        "label": labels["alpha"],
                        "data": [row.krippendorff_alpha for row in rows],
                        "borderColor": "#3b6ea5",
                    },
                    {
                        "label": labels["percent_agreement"],
                        "data": [row.percent_agreement for row in rows],
                        "borderColor": "#6b8e23",
                    },
                ],
            },
            "options": {"scales": {"y": {"min": -1, "max": 1}}},
        }


def overview_links(report: Briefing) -> dict[str, Any]:
    """Drill-down link builders for the template: the audits behind each figure."""
    # Judged real audits: what every report counts (golden audits test the auditors).
    window = {
        "from": report.day_from,
        "to": report.day_to,
        "status": "completed",
        "golden": "false",
    }

    def slice_link(key: str) -> str:
        if report.dimension == "queue":
            return audits_link(**window, market=report.market, queue=key)
        return audits_link(**window, market=key)

    def period_link(row: TrendRow) -> str:
        first, last = period_days(row, report)
        return audits_link(
            **{**window, "from": first, "to": last},
            market=report.market,
        )

    def error_link(error_type: str) -> str:
        return audits_link(
            **window, market=report.market, outcome="incorrect", error_type=error_type
        )

    def all_link(**extra: str) -> str:
        return audits_link(**window, market=report.market, **extra)

    return {
        "slice_link": slice_link,
        "period_link": period_link,
        "error_link": error_link,
        "all_link": all_link,
    }


@router.get("/overview", response_class=HTMLResponse)
async def overview(
    request: Request, context: OverviewContext, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The overview over the filter's market-local days (default the last 30)."""
    values = form_values(request, FILTER_FIELDS)
    problems: list[Problem] = []
    report: Briefing | None = None
    try:
        query = BriefingQuery.model_validate({**values, "lang": context.language})
        report = await briefing(
            session,
            query=query,
            viewer=context.principal,
            max_days=settings.report_max_days,
            today=utc_today(),
            severity_weights=settings.severity_weights,
            now=datetime.now(UTC),
        )
    except (ValidationError, UnprocessableEntity) as exc:
        problems = problems_of(exc)
    markets = context.principal.markets
    if report is None:
        return render(
            request,
            "overview/overview.html",
            context=context,
            status_code=422,
            values=values,
            problems=problems,
            report=None,
            markets=markets,
        )
    pareto = error_pareto(report)
    return render(
        request,
        "overview/overview.html",
        context=context,
        values=values,
        problems=problems,
        report=report,
        markets=markets,
        pareto=pareto,
        charts=OverviewCharts(report, pareto),
        escalation_limit=BRIEFING_ESCALATIONS,
        **overview_links(report),
    )
