"""Running report schedules: the due slots (every minute) and runs asked for by hand.

A due schedule is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and run in that one
transaction: the report is computed (rollups refreshed first), its files written (in a
thread), the snapshot stored, ``next_run_at`` moved and ``report.ready`` recorded, then all
of it commits at once. So a run that crashes anywhere loses nothing: its transaction rolls
back, the row lock goes, and the slot is still due for the next minute. The lock is held
while the files are written (seconds for a briefing deck); other workers skip the locked
row and go on with other schedules meanwhile, so nothing waits on it.

Two workers never store one slot twice: the second skips the locked row, and finds it no
longer due once the first commits (PostgreSQL re-checks the condition on the row's new
version); the snapshot's unique ``(schedule_id, slot_at)``, inserted with ``ON CONFLICT DO
NOTHING``, holds even if that were bypassed. A worker that was down runs a schedule once
when it comes back, for its latest missed slot, and moves ``next_run_at`` to the first slot
after now: missed slots are not run one by one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.audit_log.record import record_change
from shared.background_jobs.service import FINAL_STATUSES, complete_job, fail_job, start_job
from shared.core.db import unit_of_work
from shared.core.errors import DomainError
from shared.core.settings import Settings
from shared.events import EventType, ReportReady, record_event
from shared.models.report_schedules import ReportSchedule, ReportSnapshot, ReportSnapshotFile
from shared.report_schedules.reports import ReportRun, compute_report, run_query
from shared.report_schedules.service import cadence_of, schedule_markets
from shared.report_schedules.slots import latest_slot, next_slot, report_period
from shared.schemas.report_schedules import ReportRunResult

logger = logging.getLogger(__name__)


async def run_report(
    session: AsyncSession,
    *,
    schedule: ReportSchedule,
    slot_at: datetime | None,
    now: datetime,
    settings: Settings,
) -> uuid.UUID | None:
    """Compute ``schedule``'s report for the period ending with ``slot_at`` (a run by hand:
    with ``now``) and store it as a snapshot with its files; record ``report.ready`` to the
    schedule's channels. None when the slot has its snapshot already. Flushes only."""
    cadence = cadence_of(schedule.cadence)
    day_from, day_to = report_period(slot_at or now, cadence=cadence, timezone=schedule.timezone)
    query = run_query(
        schedule.report, schedule.params, lang=schedule.lang, day_from=day_from, day_to=day_to
    )
    markets = schedule_markets(schedule.params)
    run = await compute_report(
        session,
        report=schedule.report,
        query=query,
        formats=list(schedule.formats),
        markets=markets,
        settings=settings,
        today=now.date(),
        now=now,
    )
    return await store_snapshot(
        session,
        schedule=schedule,
        slot_at=slot_at,
        params=query.model_dump(mode="json", by_alias=True, exclude={"format"}),
        markets=markets,
        run=run,
    )


async def store_snapshot(
    session: AsyncSession,
    *,
    schedule: ReportSchedule,
    slot_at: datetime | None,
    params: dict[str, Any],
    markets: list[str] | None,
    run: ReportRun,
) -> uuid.UUID | None:
    """Insert the snapshot (nothing when its slot has one), its files, the audit entry and
    the ``report.ready`` event; the snapshot's id, or None."""
    snapshot_id: uuid.UUID | None = await session.scalar(
        insert(ReportSnapshot)
        .values(
            id=uuid.uuid4(),
            schedule_id=schedule.id,
            slot_at=slot_at,
            report=schedule.report,
            params=params,
            lang=schedule.lang,
            data=run.data,
            markets=markets,
            created_by=schedule.created_by,
        )
        .on_conflict_do_nothing(index_elements=["schedule_id", "slot_at"])
        .returning(ReportSnapshot.id)
    )
    if snapshot_id is None:
        return None
    for file in run.files:
        session.add(
            ReportSnapshotFile(
                snapshot_id=snapshot_id,
                format=file.format,
                filename=file.filename,
                content_type=file.content_type,
                content=file.content,
            )
        )
    await session.flush()
    formats = [file.format for file in run.files]
    await record_change(
        session,
        actor=None,
        action="report_snapshot.created",
        entity_type="report_snapshot",
        entity_id=snapshot_id,
        after={
            "schedule_id": str(schedule.id),
            "slot_at": slot_at.isoformat() if slot_at else None,
            "report": schedule.report,
            "params": params,
            "formats": formats,
        },
    )
    if schedule.channel_ids:
        # The files are not copied into the event: fan-out attaches them to e-mails from
        # report_snapshot_files, and chat channels get the link.
        await record_event(
            session,
            type=EventType.REPORT_READY,
            data=ReportReady(
                id=snapshot_id,
                schedule_id=schedule.id,
                title=schedule.name,
                report=schedule.report,
                period_from=run.day_from.isoformat(),
                period_to=run.day_to.isoformat(),
                formats=formats,
            ),
            market=markets[0] if markets else None,
            channel_ids=list(schedule.channel_ids),
        )
    return snapshot_id


async def run_due_schedules(
    sessionmaker: async_sessionmaker[AsyncSession], *, settings: Settings, now: datetime
) -> int:
    """Run every schedule due at ``now``, one transaction each; the snapshots stored.

    A schedule whose report the domain refuses (a 4xx: its query no longer fits, say the
    period is longer than allowed) gives up that slot (logged) and moves on, rather than
    failing every minute; any other failure leaves the slot due for the next run.
    """
    stored = 0
    tried: list[uuid.UUID] = []
    while True:
        try:
            async with unit_of_work(sessionmaker) as session:
                query = (
                    select(ReportSchedule)
                    .where(ReportSchedule.enabled, ReportSchedule.next_run_at <= now)
                    .order_by(ReportSchedule.next_run_at, ReportSchedule.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if tried:
                    query = query.where(ReportSchedule.id.not_in(tried))
                schedule = await session.scalar(query)
                if schedule is None:
                    return stored
                tried.append(schedule.id)
                cadence = cadence_of(schedule.cadence)
                slot = latest_slot(now, cadence=cadence, at=schedule.at, timezone=schedule.timezone)
                try:
                    async with session.begin_nested():
                        snapshot_id = await run_report(
                            session, schedule=schedule, slot_at=slot, now=now, settings=settings
                        )
                except DomainError as exc:
                    snapshot_id = None
                    logger.warning(
                        "scheduled report refused; slot skipped",
                        extra={"schedule_id": str(schedule.id), "error": exc.detail},
                    )
                schedule.next_run_at = next_slot(
                    now, cadence=cadence, at=schedule.at, timezone=schedule.timezone
                )
                await session.flush()
        except Exception:
            logger.exception("scheduled report failed; its slot stays due")
            continue
        if snapshot_id is not None:
            stored += 1
            logger.info(
                "scheduled report stored",
                extra={"snapshot_id": str(snapshot_id), "slot_at": slot.isoformat()},
            )


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return f"the report was refused: {exc.detail}"
    return f"the report failed ({type(exc).__name__}); the report worker's log has the details"


async def run_schedule_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    job_id: uuid.UUID,
    schedule_id: uuid.UUID,
    settings: Settings,
    now: datetime,
) -> ReportRunResult | None:
    """Run a schedule now (``POST /v1/report-schedules/{id}/run``): a snapshot without a
    slot, the job's state on its BackgroundJob. A job found complete or failed is not run
    again; the snapshot and the job's completion commit together."""
    async with unit_of_work(sessionmaker) as session:
        record = await start_job(session, job_id=job_id, now=now)
    if record is None or record.status in FINAL_STATUSES:
        return None
    try:
        async with unit_of_work(sessionmaker) as session:
            schedule = await session.get(ReportSchedule, schedule_id)
            if schedule is None:
                raise LookupError("the schedule was deleted")
            snapshot_id = await run_report(
                session, schedule=schedule, slot_at=None, now=now, settings=settings
            )
            assert snapshot_id is not None  # a run by hand has no slot to conflict on
            result = ReportRunResult(snapshot_id=snapshot_id, schedule_id=schedule_id)
            await complete_job(
                session, job_id=job_id, result=result.model_dump(mode="json"), now=now
            )
    except Exception as exc:
        logger.exception("report run failed", extra={"job_id": str(job_id)})
        message = (
            "the schedule was deleted" if isinstance(exc, LookupError) else _failure_message(exc)
        )
        async with unit_of_work(sessionmaker) as session:
            await fail_job(session, job_id=job_id, error=message, now=now)
        return None
    return result


__all__ = ["run_due_schedules", "run_report", "run_schedule_job", "store_snapshot"]
