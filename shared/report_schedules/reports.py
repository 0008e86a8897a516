"""What a scheduled report is made of: its query model, the files it can write, and one run
of it (its JSON and files), through the same domain functions ``GET /v1/reports/*`` calls.

A run reads as a key of every role with the schedule's markets (``schedule_viewer``): a
schedule is made by a manager or an admin, and a market-scoped key can only schedule
reports of its own markets (``params.market``), so the run sees what its author could see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics import briefing, briefing_pptx, briefing_xlsx, comparison, trend
from shared.analytics import exports as analytics_exports
from shared.analytics.schemas import BriefingQuery, ComparisonQuery, TrendQuery
from shared.core.auth import Principal, Role
from shared.core.settings import Settings
from shared.reports import exports, service
from shared.schemas.common import StrictQuery
from shared.schemas.reports import AccuracyQuery, AccuracyReport

# The query model of each report (the same the API validates ``GET /v1/reports/*`` with).
QUERY_MODELS: Mapping[str, type[StrictQuery]] = {
    "accuracy": AccuracyQuery,
    "trend": TrendQuery,
    "comparison": ComparisonQuery,
    "briefing": BriefingQuery,
}
# The files each report can write (JSON is always stored).
REPORT_FORMATS: Mapping[str, frozenset[str]] = {
    "accuracy": frozenset({"csv", "xlsx"}),
    "trend": frozenset({"csv", "xlsx", "png"}),
    "comparison": frozenset({"csv", "xlsx", "png"}),
    "briefing": frozenset({"xlsx", "pptx"}),
}
CONTENT_TYPES: Mapping[str, str] = {
    "json": "application/json",
    "csv": analytics_exports.CSV_MEDIA_TYPE,
    "xlsx": analytics_exports.XLSX_MEDIA_TYPE,
    "png": analytics_exports.PNG_MEDIA_TYPE,
    "pptx": briefing_pptx.PPTX_MEDIA_TYPE,
}
# Set by the schedule itself (``formats``, ``lang``) or by each run (``from``, ``to`` when
# the params leave them out), never by ``params``.
SCHEDULE_OWNED_PARAMS = ("format", "lang")


@dataclass(frozen=True, slots=True)
class ReportFileContent:
    format: str
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ReportRun:
    """One computed run: the JSON the API would answer, its period, and its files."""

    data: dict[str, Any]
    day_from: date
    day_to: date
    files: list[ReportFileContent]


def schedule_viewer(markets: list[str] | None) -> Principal:
    """Who a run reads as: every moderator's numbers, within ``markets`` (None: all)."""
    return Principal(
        key_id="report-schedule",
        role=Role.MANAGER,
        reviewer_id=None,
        markets=tuple(markets) if markets is not None else None,
    )


def run_query(
    report: str, params: Mapping[str, Any], *, lang: str, day_from: date, day_to: date
) -> BaseModel:
    """The report's query for one run: ``params``, the run's period unless ``params`` name
    one (``from``/``to``), the schedule's language, JSON."""
    values: dict[str, Any] = {"from": day_from.isoformat(), "to": day_to.isoformat()}
    values.update(params)
    values.update({"lang": lang, "format": "json"})
    return QUERY_MODELS[report].model_validate(values)


async def compute_report(
    session: AsyncSession,
    *,
    report: str,
    query: BaseModel,
    formats: list[str],
    markets: list[str] | None,
    settings: Settings,
    today: date,
    now: datetime,
) -> ReportRun:
    """Compute ``report`` for ``query`` (refreshing the rollups first, as the API does) and
    write its ``formats`` (in a thread: a deck or a workbook is CPU work)."""
    viewer = schedule_viewer(markets)
    writers: dict[str, Callable[[], bytes]]
    data: BaseModel
    if isinstance(query, AccuracyQuery):
        accuracy = await service.accuracy_report(session, query=query, viewer=viewer, today=today)
        data = AccuracyReport(rows=accuracy.rows)
        day_from, day_to = accuracy.day_from, accuracy.day_to
        rows, group_by, lang = accuracy.rows, query.group_by, query.lang
        writers = {
            "csv": partial(exports.accuracy_csv, rows),
            "xlsx": partial(
                exports.accuracy_xlsx,
                rows,
                group_by=group_by,
                day_from=day_from,
                day_to=day_to,
                lang=lang,
            ),
        }
        names = {fmt: exports.export_filename(group_by, day_from, day_to, fmt) for fmt in writers}
    else:
        name: str
        if isinstance(query, TrendQuery):
            trend_data = await trend.trend_report(
                session, query=query, viewer=viewer, max_days=settings.report_max_days, today=today
            )
            data, name = trend_data, f"trend-by-{query.interval}"
            writers = {
                "csv": partial(trend.trend_csv, trend_data),
                "xlsx": partial(trend.trend_xlsx, trend_data, query=query),
                "png": partial(trend.trend_chart, trend_data, query=query),
            }
        elif isinstance(query, ComparisonQuery):
            ranking = await comparison.comparison_report(
                session, query=query, viewer=viewer, max_days=settings.report_max_days, today=today
            )
            data, name = ranking, f"comparison-by-{query.dimension}"
            writers = {
                "csv": partial(comparison.comparison_csv, ranking),
                "xlsx": partial(comparison.comparison_xlsx, ranking, query=query),
                "png": partial(comparison.comparison_chart, ranking, query=query),
            }
        elif isinstance(query, BriefingQuery):
            deck = await briefing.briefing(
                session,
                query=query,
                viewer=viewer,
                max_days=settings.report_max_days,
                today=today,
                severity_weights=settings.severity_weights,
                now=now,
            )
            data, name = deck, "briefing"
            writers = {
                "pptx": partial(briefing_pptx.briefing_pptx, deck, lang=query.lang),
                "xlsx": partial(briefing_xlsx.briefing_xlsx, deck, lang=query.lang),
            }
        else:  # pragma: no cover - QUERY_MODELS holds the four
            raise TypeError(f"no scheduled report for {type(query).__name__}")
        day_from, day_to = data.day_from, data.day_to
        names = {
            fmt: analytics_exports.attachment_filename(name, day_from, day_to, fmt)
            for fmt in writers
        }
    files = []
    for fmt in formats:
        if fmt == "json" or fmt not in writers:
            continue
        content = await asyncio.to_thread(writers[fmt])
        files.append(
            ReportFileContent(
                format=fmt, filename=names[fmt], content_type=CONTENT_TYPES[fmt], content=content
            )
        )
    return ReportRun(
        data=data.model_dump(mode="json", by_alias=True),
        day_from=day_from,
        day_to=day_to,
        files=files,
    )


__all__ = [
    "CONTENT_TYPES",
    "QUERY_MODELS",
    "REPORT_FORMATS",
    "SCHEDULE_OWNED_PARAMS",
    "ReportFileContent",
    "ReportRun",
    "compute_report",
    "run_query",
    "schedule_viewer",
]
