"""Reports: ``GET /v1/reports/accuracy`` (every role, each within what it may see)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from services.audit_api.deps import ANY_ROLE, SessionDep, require_roles
from shared.core.auth import Principal
from shared.reports import exports, service
from shared.schemas.common import Problem
from shared.schemas.reports import AccuracyQuery, AccuracyReport

router = APIRouter(prefix="/v1/reports", tags=["reports"])

ReportReaderDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]


@router.get(
    "/accuracy",
    response_model=AccuracyReport,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "The rows as JSON, or as a CSV or XLSX attachment (`format`).",
        },
        403: {"model": Problem},
        422: {"model": Problem},
    },
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
        media_type = exports.CSV_MEDIA_TYPE
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
        media_type = exports.XLSX_MEDIA_TYPE
    filename = exports.export_filename(query.group_by, report.day_from, report.day_to, query.format)
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
