"""Report schedules (create, read, change, delete, run now) and reading their snapshots.

A schedule's ``params`` are the report's own query (validated with the model the reports
API uses; ``format`` and ``lang`` belong to the schedule), its ``formats`` what that report
can write, its channels existing team channels. A market-scoped key schedules only reports
of one of its markets (``params.market`` required and within its markets) and sees only
those schedules and their snapshots. Every change goes to the audit log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.background_jobs.service import create_job
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.outbox import add_job
from shared.core.pagination import Keyset, KeysetPage
from shared.jobs import RunReportSchedule
from shared.models import BackgroundJob, Channel
from shared.models.report_schedules import ReportSchedule, ReportSnapshot, ReportSnapshotFile
from shared.report_schedules.reports import (
    QUERY_MODELS,
    REPORT_FORMATS,
    SCHEDULE_OWNED_PARAMS,
)
from shared.report_schedules.slots import next_slot
from shared.schemas.report_schedules import (
    Cadence,
    ReportScheduleCreate,
    ReportScheduleQuery,
    ReportScheduleRead,
    ReportScheduleUpdate,
    ReportSnapshotQuery,
    ReportSnapshotRead,
    ReportSnapshotSummary,
    SnapshotFileRead,
    parse_at,
)

RUN_JOB_KIND = RunReportSchedule.function
SCHEDULE_ORDER = Keyset(ReportSchedule.created_at, ReportSchedule.id)
SNAPSHOT_ORDER = Keyset(ReportSnapshot.created_at, ReportSnapshot.id, descending=True)


def _invalid(loc: list[str | int], message: str) -> UnprocessableEntity:
    return UnprocessableEntity(f"{'.'.join(map(str, loc))}: {message}", errors=[
        {"loc": loc, "msg": message}
    ])  # fmt: skip


def check_params(
    report: str, params: dict[str, Any], *, actor: Principal, max_days: int
) -> dict[str, Any]:
    """``params`` as the report's query model reads them (422 naming the bad parameter),
    within ``actor``'s markets (403 beyond them). A fixed period names both ``from`` and
    ``to`` and spans at most ``max_days`` days; without them each run takes its slot's."""
    for owned in SCHEDULE_OWNED_PARAMS:
        if owned in params:
            raise _invalid(["params", owned], "set by the schedule's formats and lang, not params")
    try:
        query = QUERY_MODELS[report].model_validate(params)
    except ValidationError as exc:
        errors = [
            {"loc": ["params", *error["loc"]], "msg": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        names = ", ".join(".".join(map(str, e["loc"][1:])) for e in errors)
        raise UnprocessableEntity(f"invalid report params: {names}", errors=errors) from None
    day_from, day_to = getattr(query, "from_", None), getattr(query, "to", None)
    if (day_from is None) != (day_to is None):
        missing = "to" if day_to is None else "from"
        raise _invalid(
            ["params", missing], "a fixed period names both from and to (or neither: each run's)"
        )
    if day_from is not None and day_to is not None and (day_to - day_from).days + 1 > max_days:
        raise _invalid(["params", "to"], f"a report covers at most {max_days} days")
    market = getattr(query, "market", None)
    if actor.markets is not None:
        if market is None:
            raise _invalid(
                ["params", "market"],
                "a market-scoped key schedules reports of one of its markets: name it",
            )
        if market not in actor.markets:
            raise Forbidden(f"this key may not see market {market}")
    # Stored as sent (aliases such as "from"), which the query model reads back.
    return query.model_dump(mode="json", by_alias=True, exclude_unset=True)


def check_formats(report: str, formats: list[str]) -> list[str]:
    """The files to write, in order without repeats (JSON is always stored); 422 for a
    format ``report`` cannot write."""
    allowed = REPORT_FORMATS[report]
    chosen: list[str] = []
    for index, fmt in enumerate(formats):
        if fmt != "json" and fmt not in allowed:
            raise _invalid(
                ["formats", index],
                f"the {report} report writes {', '.join(sorted(allowed))} (and json), not {fmt}",
            )
        if fmt not in chosen:
            chosen.append(fmt)
    return chosen


async def check_channels(session: AsyncSession, channel_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The channels, each an existing team channel (422 for an unknown or personal one)."""
    unique = list(dict.fromkeys(channel_ids))
    found = {
        row.id: row.reviewer_id
        for row in await session.execute(
            select(Channel.id, Channel.reviewer_id).where(Channel.id.in_(unique))
        )
    }
    for index, channel_id in enumerate(channel_ids):
        if channel_id not in found:
            raise _invalid(["channel_ids", index], "no such channel")
        if found[channel_id] is not None:
            raise _invalid(["channel_ids", index], "a personal channel cannot receive reports")
    return unique


def visible_schedules(viewer: Principal) -> ColumnElement[bool]:
    """A market-scoped key sees the schedules of its markets only."""
    if viewer.markets is None:
        return true()
    condition: ColumnElement[bool] = ReportSchedule.params["market"].astext.in_(viewer.markets)
    return condition


def visible_snapshots(viewer: Principal) -> ColumnElement[bool]:
    """A market-scoped key sees the snapshots whose markets are all its own."""
    if viewer.markets is None:
        return true()
    within: ColumnElement[bool] = ReportSnapshot.markets.contained_by(list(viewer.markets))
    return ReportSnapshot.markets.is_not(None) & within


def schedule_read(schedule: ReportSchedule) -> ReportScheduleRead:
    """The API's view of a schedule."""
    return ReportScheduleRead(
        id=schedule.id,
        name=schedule.name,
        report=schedule.report,
        params=schedule.params,
        cadence=schedule.cadence,
        at=schedule.at.strftime("%H:%M"),
        timezone=schedule.timezone,
        lang=schedule.lang,
        formats=list(schedule.formats),
        channel_ids=list(schedule.channel_ids),
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        created_at=schedule.created_at,
    )


def schedule_markets(params: dict[str, Any]) -> list[str] | None:
    """The markets a schedule's runs cover (None: every market)."""
    market = params.get("market")
    return [market] if isinstance(market, str) else None


def upcoming_slot(schedule: ReportSchedule, *, now: datetime) -> datetime:
    """The schedule's first slot after ``now``."""
    return next_slot(
        now,
        cadence=cadence_of(schedule.cadence),
        at=schedule.at,
        timezone=schedule.timezone,
    )


async def _flush_named(session: AsyncSession, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a report schedule named '{name}' exists already") from exc


async def create_schedule(
    session: AsyncSession,
    *,
    data: ReportScheduleCreate,
    actor: Principal,
    now: datetime,
    max_days: int,
) -> ReportSchedule:
    """Create a schedule (422 for bad params, formats or channels; 409 for a taken name);
    its ``next_run_at`` is its first slot after ``now``."""
    params = check_params(data.report, data.params, actor=actor, max_days=max_days)
    formats = check_formats(data.report, list(data.formats))
    channel_ids = await check_channels(session, list(data.channel_ids))
    schedule = ReportSchedule(
        id=uuid.uuid4(),
        name=data.name,
        report=data.report,
        params=params,
        cadence=data.cadence,
        at=parse_at(data.at),
        timezone=data.timezone,
        lang=data.lang,
        formats=formats,
        channel_ids=channel_ids,
        enabled=True,
        created_by=actor.key_id,
    )
    schedule.next_run_at = upcoming_slot(schedule, now=now)
    session.add(schedule)
    await _flush_named(session, data.name)
    await session.refresh(schedule)
    await record_change(
        session,
        actor=actor,
        action="report_schedule.created",
        entity_type="report_schedule",
        entity_id=schedule.id,
        after=schedule_read(schedule).model_dump(mode="json"),
    )
    return schedule


async def get_schedule(
    session: AsyncSession, *, schedule_id: uuid.UUID, viewer: Principal, lock: bool = False
) -> ReportSchedule:
    """The schedule, or 404 (also beyond ``viewer``'s markets)."""
    query = select(ReportSchedule).where(
        ReportSchedule.id == schedule_id, visible_schedules(viewer)
    )
    if lock:
        query = query.with_for_update()
    schedule = await session.scalar(query)
    if schedule is None:
        raise NotFound("report schedule not found")
    return schedule


async def list_schedules(
    session: AsyncSession, *, filters: ReportScheduleQuery, viewer: Principal
) -> KeysetPage[ReportSchedule]:
    """A page of the schedules ``viewer`` may see, oldest first."""
    query = select(ReportSchedule).where(visible_schedules(viewer))
    if filters.report is not None:
        query = query.where(ReportSchedule.report == filters.report)
    if filters.enabled is not None:
        query = query.where(ReportSchedule.enabled.is_(filters.enabled))
    schedules = list(await session.scalars(SCHEDULE_ORDER.apply(query, filters)))
    return SCHEDULE_ORDER.page(schedules, filters)


async def update_schedule(
    session: AsyncSession,
    *,
    schedule_id: uuid.UUID,
    data: ReportScheduleUpdate,
    actor: Principal,
    now: datetime,
    max_days: int,
) -> ReportSchedule:
    """Change the fields sent. A new timing, or enabling it, moves ``next_run_at`` to the
    first slot after ``now`` (a schedule enabled again does not catch up on the runs it
    missed while disabled)."""
    schedule = await get_schedule(session, schedule_id=schedule_id, viewer=actor, lock=True)
    before = schedule_read(schedule).model_dump(mode="json")
    fields = data.model_fields_set
    if "params" in fields and data.params is not None:
        schedule.params = check_params(schedule.report, data.params, actor=actor, max_days=max_days)
    if "formats" in fields and data.formats is not None:
        schedule.formats = check_formats(schedule.report, list(data.formats))
    if "channel_ids" in fields and data.channel_ids is not None:
        schedule.channel_ids = await check_channels(session, list(data.channel_ids))
    if "name" in fields and data.name is not None:
        schedule.name = data.name
    if "lang" in fields and data.lang is not None:
        schedule.lang = data.lang
    retime = False
    if "cadence" in fields and data.cadence is not None:
        schedule.cadence = data.cadence
        retime = True
    if "at" in fields and data.at is not None:
        schedule.at = parse_at(data.at)
        retime = True
    if "timezone" in fields and data.timezone is not None:
        schedule.timezone = data.timezone
        retime = True
    if "enabled" in fields and data.enabled is not None:
        retime = retime or (data.enabled and not schedule.enabled)
        schedule.enabled = data.enabled
    if retime:
        schedule.next_run_at = upcoming_slot(schedule, now=now)
    await _flush_named(session, schedule.name)
    after = schedule_read(schedule).model_dump(mode="json")
    if after != before:
        await record_change(
            session,
            actor=actor,
            action="report_schedule.updated",
            entity_type="report_schedule",
            entity_id=schedule.id,
            before=before,
            after=after,
        )
    return schedule


async def delete_schedule(
    session: AsyncSession, *, schedule_id: uuid.UUID, actor: Principal
) -> None:
    """Delete a schedule; its snapshots stay (immutable, their ``schedule_id`` emptied)."""
    schedule = await get_schedule(session, schedule_id=schedule_id, viewer=actor, lock=True)
    before = schedule_read(schedule).model_dump(mode="json")
    await session.delete(schedule)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="report_schedule.deleted",
        entity_type="report_schedule",
        entity_id=schedule_id,
        before=before,
    )


async def request_run(
    session: AsyncSession, *, schedule_id: uuid.UUID, actor: Principal
) -> BackgroundJob:
    """Queue a run now (a snapshot by hand, no slot): a job row and its outbox entry."""
    schedule = await get_schedule(session, schedule_id=schedule_id, viewer=actor)
    params = {"schedule_id": str(schedule.id), "market": schedule.params.get("market")}
    job = await create_job(session, kind=RUN_JOB_KIND, params=params, requested_by=actor.key_id)
    await add_job(session, RunReportSchedule(job_id=job.id, schedule_id=schedule.id))
    await record_change(
        session,
        actor=actor,
        action="report_schedule.run_requested",
        entity_type="background_job",
        entity_id=job.id,
        after={"kind": job.kind, "params": params, "status": job.status},
    )
    return job


async def snapshot_files(
    session: AsyncSession, snapshot_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[SnapshotFileRead]]:
    """The files of each snapshot (without their bytes), by format."""
    rows = await session.execute(
        select(
            ReportSnapshotFile.snapshot_id,
            ReportSnapshotFile.format,
            ReportSnapshotFile.filename,
            ReportSnapshotFile.content_type,
            func.octet_length(ReportSnapshotFile.content).label("size"),
        )
        .where(ReportSnapshotFile.snapshot_id.in_(snapshot_ids))
        .order_by(ReportSnapshotFile.snapshot_id, ReportSnapshotFile.format)
    )
    files: dict[uuid.UUID, list[SnapshotFileRead]] = {}
    for row in rows:
        files.setdefault(row.snapshot_id, []).append(
            SnapshotFileRead(
                format=row.format,
                filename=row.filename,
                content_type=row.content_type,
                size=int(row.size),
            )
        )
    return files


def _summary_fields(snapshot: ReportSnapshot, files: list[SnapshotFileRead]) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "schedule_id": snapshot.schedule_id,
        "slot_at": snapshot.slot_at,
        "report": snapshot.report,
        "params": snapshot.params,
        "lang": snapshot.lang,
        "created_at": snapshot.created_at,
        "files": files,
    }


async def get_snapshot(
    session: AsyncSession, *, snapshot_id: uuid.UUID, viewer: Principal
) -> ReportSnapshotRead:
    """A snapshot with its data, or 404 (also beyond ``viewer``'s markets)."""
    snapshot = await session.scalar(
        select(ReportSnapshot).where(ReportSnapshot.id == snapshot_id, visible_snapshots(viewer))
    )
    if snapshot is None:
        raise NotFound("report snapshot not found")
    files = await snapshot_files(session, [snapshot.id])
    return ReportSnapshotRead(
        **_summary_fields(snapshot, files.get(snapshot.id, [])), data=snapshot.data
    )


async def get_snapshot_file(
    session: AsyncSession, *, snapshot_id: uuid.UUID, file_format: str, viewer: Principal
) -> ReportSnapshotFile:
    """One file of a snapshot, or 404."""
    visible = await session.scalar(
        select(ReportSnapshot.id).where(ReportSnapshot.id == snapshot_id, visible_snapshots(viewer))
    )
    file = None
    if visible is not None:
        file = await session.get(ReportSnapshotFile, (snapshot_id, file_format))
    if file is None:
        raise NotFound(f"this snapshot has no {file_format} file")
    return file


async def list_snapshots(
    session: AsyncSession, *, filters: ReportSnapshotQuery, viewer: Principal
) -> tuple[list[ReportSnapshotSummary], str | None]:
    """A page of the snapshots ``viewer`` may see (of one schedule), newest first."""
    query = select(ReportSnapshot).where(visible_snapshots(viewer))
    if filters.schedule_id is not None:
        query = query.where(ReportSnapshot.schedule_id == filters.schedule_id)
    page = SNAPSHOT_ORDER.page(
        list(await session.scalars(SNAPSHOT_ORDER.apply(query, filters))), filters
    )
    files = await snapshot_files(session, [snapshot.id for snapshot in page.items])
    items = [
        ReportSnapshotSummary(**_summary_fields(snapshot, files.get(snapshot.id, [])))
        for snapshot in page.items
    ]
    return items, page.next_cursor


def cadence_of(value: str) -> Cadence:
    """A stored cadence as its literal type."""
    if value not in ("daily", "weekly", "monthly"):  # pragma: no cover - a CHECK holds it
        raise ValueError(value)
    return value  # type: ignore[return-value]


__all__ = [
    "RUN_JOB_KIND",
    "cadence_of",
    "check_channels",
    "check_formats",
    "check_params",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "get_snapshot",
    "get_snapshot_file",
    "list_schedules",
    "list_snapshots",
    "request_run",
    "schedule_markets",
    "schedule_read",
    "upcoming_slot",
    "update_schedule",
]
