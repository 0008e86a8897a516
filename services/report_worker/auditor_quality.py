"""Scheduled auditor-quality check: ``auditor.accuracy_dropped`` once per auditor and week.

Run every minute, it looks at the last complete ISO week (UTC): an auditor with at least
``MIN_JUDGED`` golden verdicts that week whose share matched is below
``auditor_accuracy_threshold`` is announced once. ``auditor_accuracy_announcements`` keeps
what was announced (auditor, week, numbers, event); the insert is ``ON CONFLICT DO NOTHING``,
so concurrent or repeated runs announce an auditor's week once.

The event's market is the first market (alphabetically) of the auditor's profile, so that
market's channels hear of it; an auditor without one gives an event about no market.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.queue import Context
from shared.events import AuditorAccuracyDropped, EventType, record_event
from shared.models import AuditorAccuracyAnnouncement, GoldenVerdict, Reviewer
from shared.models.base import utcnow

logger = logging.getLogger(__name__)

MIN_JUDGED = 5


def previous_iso_week(now: datetime) -> tuple[str, date]:
    """The ISO week before the one ``now`` (UTC) falls in: its name and its Monday."""
    today = now.astimezone(UTC).date()
    monday = today - timedelta(days=today.isoweekday() - 1, weeks=1)
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}", monday


async def announce_accuracy_drops(
    session: AsyncSession, *, now: datetime, threshold: float, min_judged: int = MIN_JUDGED
) -> int:
    """Announce each auditor whose last-week golden accuracy is below ``threshold`` (with at
    least ``min_judged`` golden verdicts), once per week; returns how many were announced."""
    week, monday = previous_iso_week(now)
    start = datetime.combine(monday, time(), tzinfo=UTC)
    end = start + timedelta(weeks=1)
    matched_count = func.count().filter(GoldenVerdict.matched)
    rows = (
        await session.execute(
            select(GoldenVerdict.auditor_id, func.count(), matched_count)
            .where(GoldenVerdict.judged_at >= start, GoldenVerdict.judged_at < end)
            .group_by(GoldenVerdict.auditor_id)
            .having(func.count() >= min_judged)
            .order_by(GoldenVerdict.auditor_id)
        )
    ).all()
    announced = 0
    for auditor_id, judged, matched in rows:
        accuracy = matched / judged
        if accuracy >= threshold:
            continue
        inserted = await session.scalar(
            insert(AuditorAccuracyAnnouncement)
            .values(
                auditor_id=auditor_id,
                week_start=monday,
                judged=judged,
                matched=matched,
                accuracy=accuracy,
                threshold=threshold,
                announced_at=now,
            )
            .on_conflict_do_nothing()
            .returning(AuditorAccuracyAnnouncement.auditor_id)
        )
        if inserted is None:
            continue
        markets = await session.scalar(select(Reviewer.markets).where(Reviewer.id == auditor_id))
        ordered = sorted(markets or [])
        event = await record_event(
            session,
            type=EventType.AUDITOR_ACCURACY_DROPPED,
            data=AuditorAccuracyDropped(
                auditor_id=auditor_id,
                week=week,
                judged=judged,
                matched=matched,
                accuracy=accuracy,
                threshold=threshold,
            ),
            market=ordered[0] if ordered else None,
        )
        announcement = await session.get(AuditorAccuracyAnnouncement, (auditor_id, monday))
        if announcement is not None:
            announcement.event_id = event.id
        announced += 1
    await session.flush()
    return announced


async def run_announce_accuracy_drops(ctx: Context) -> int:
    """Scheduled: one unit of work announcing last week's auditor accuracy drops."""
    settings = ctx["settings"]
    async with ctx["sessionmaker"]() as session, session.begin():
        announced = await announce_accuracy_drops(
            session, now=utcnow(), threshold=settings.auditor_accuracy_threshold
        )
    if announced:
        logger.info("auditor accuracy drops announced", extra={"announced": announced})
    return announced
