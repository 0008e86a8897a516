"""Report schedules and their snapshots (``/v1/report-schedules``, ``/v1/report-snapshots``).

Schedules are managed by managers and admins; snapshots are read by every role that sees
every moderator's numbers in the reports themselves (a moderator key is left out: a
snapshot holds everyone's numbers). A market-scoped key sees only its markets' schedules and
snapshots. No endpoint changes a snapshot.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.audit_api.deps import SessionDep, SettingsDep, require_roles
from shared.core.auth import Principal, Role
from shared.models.base import utcnow
from shared.report_schedules import service
from shared.report_schedules.reports import CONTENT_TYPES
from shared.schemas.common import Page, Problem
from shared.schemas.report_schedules import (
    ReportRunAccepted,
    ReportScheduleCreate,
    ReportScheduleQuery,
    ReportScheduleRead,
    ReportScheduleUpdate,
    ReportSnapshotQuery,
    ReportSnapshotRead,
    ReportSnapshotSummary,
    SnapshotFormat,
)

router = APIRouter(prefix="/v1", tags=["report schedules"])

SchedulerDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]
SnapshotReaderDep = Annotated[
    Principal,
    Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.QA_AUDITOR)),
]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post(
    "/report-schedules", status_code=201, response_model=ReportScheduleRead, responses=_PROBLEMS
)
async def create_report_schedule(
    body: ReportScheduleCreate,
    session: SessionDep,
    principal: SchedulerDep,
    settings: SettingsDep,
) -> ReportScheduleRead:
    """Schedule a report: `params` is the report's query (checked like `GET /v1/reports/...`
    checks it; a bad parameter is a 422 naming it), `formats` what that report writes
    (JSON is always stored), `channel_ids` team channels. Weekly runs on Mondays, monthly on
    the 1st, at `at` local time in `timezone`. A market-scoped key must name one of its
    markets in `params.market`. The answer's `next_run_at` is the first slot (UTC)."""
    schedule = await service.create_schedule(
        session, data=body, actor=principal, now=utcnow(), max_days=settings.report_max_days
    )
    return service.schedule_read(schedule)


@router.get("/report-schedules", response_model=Page[ReportScheduleRead])
async def list_report_schedules(
    query: Annotated[ReportScheduleQuery, Query()], session: SessionDep, principal: SchedulerDep
) -> Page[ReportScheduleRead]:
    """Schedules, oldest first; filter by `report`, `enabled`."""
    page = await service.list_schedules(session, filters=query, viewer=principal)
    return Page(
        items=[service.schedule_read(schedule) for schedule in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/report-schedules/{schedule_id}", response_model=ReportScheduleRead, responses=_PROBLEMS
)
async def get_report_schedule(
    schedule_id: uuid.UUID, session: SessionDep, principal: SchedulerDep
) -> ReportScheduleRead:
    schedule = await service.get_schedule(session, schedule_id=schedule_id, viewer=principal)
    return service.schedule_read(schedule)


@router.patch(
    "/report-schedules/{schedule_id}", response_model=ReportScheduleRead, responses=_PROBLEMS
)
async def update_report_schedule(
    schedule_id: uuid.UUID,
    body: ReportScheduleUpdate,
    session: SessionDep,
    principal: SchedulerDep,
    settings: SettingsDep,
) -> ReportScheduleRead:
    """Change a schedule (only the fields sent; `enabled` pauses or resumes it). A new
    timing, or resuming, sets `next_run_at` to the next slot from now (missed slots of a
    paused schedule are not run)."""
    schedule = await service.update_schedule(
        session,
        schedule_id=schedule_id,
        data=body,
        actor=principal,
        now=utcnow(),
        max_days=settings.report_max_days,
    )
    return service.schedule_read(schedule)


@router.delete("/report-schedules/{schedule_id}", status_code=204, responses=_PROBLEMS)
async def delete_report_schedule(
    schedule_id: uuid.UUID, session: SessionDep, principal: SchedulerDep
) -> Response:
    """Delete a schedule; its snapshots stay readable."""
    await service.delete_schedule(session, schedule_id=schedule_id, actor=principal)
    return Response(status_code=204)


@router.post(
    "/report-schedules/{schedule_id}/run",
    status_code=202,
    response_model=ReportRunAccepted,
    responses=_PROBLEMS,
)
async def run_report_schedule(
    schedule_id: uuid.UUID, session: SessionDep, principal: SchedulerDep
) -> ReportRunAccepted:
    """Run the schedule now (a snapshot outside its slots, for the period ending yesterday
    by its cadence); poll `GET /v1/jobs/{job_id}`, whose result names the snapshot."""
    job = await service.request_run(session, schedule_id=schedule_id, actor=principal)
    return ReportRunAccepted(job_id=job.id)


@router.get("/report-snapshots", response_model=Page[ReportSnapshotSummary])
async def list_report_snapshots(
    query: Annotated[ReportSnapshotQuery, Query()],
    session: SessionDep,
    principal: SnapshotReaderDep,
) -> Page[ReportSnapshotSummary]:
    """Snapshots, newest first (without their data); filter by `schedule_id`."""
    items, next_cursor = await service.list_snapshots(session, filters=query, viewer=principal)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/report-snapshots/{snapshot_id}", response_model=ReportSnapshotRead, responses=_PROBLEMS
)
async def get_report_snapshot(
    snapshot_id: uuid.UUID, session: SessionDep, principal: SnapshotReaderDep
) -> ReportSnapshotRead:
    """A snapshot: the report's JSON as it was when it ran, and its files."""
    return await service.get_snapshot(session, snapshot_id=snapshot_id, viewer=principal)


@router.get(
    "/report-snapshots/{snapshot_id}/files/{file_format}",
    responses={
        200: {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                **{
                    media_type: {"schema": {"type": "string", "format": "binary"}}
                    for media_type in (CONTENT_TYPES["xlsx"], CONTENT_TYPES["pptx"], "image/png")
                },
            },
            "description": "The file as stored, with its content type and filename.",
        },
        **_PROBLEMS,
    },
)
async def get_report_snapshot_file(
    snapshot_id: uuid.UUID,
    file_format: SnapshotFormat,
    session: SessionDep,
    principal: SnapshotReaderDep,
) -> Response:
    """One file of a snapshot (`csv`, `xlsx`, `pptx`, `png`; `json` is its data)."""
    if file_format == "json":
        snapshot = await service.get_snapshot(session, snapshot_id=snapshot_id, viewer=principal)
        return Response(
            content=json.dumps(snapshot.data),
            media_type="application/json",
        )
    file = await service.get_snapshot_file(
        session, snapshot_id=snapshot_id, file_format=file_format, viewer=principal
    )
    return Response(
        content=file.content,
        media_type=file.content_type,
        headers={"Content-Disposition": f'attachment; filename="{file.filename}"'},
    )
