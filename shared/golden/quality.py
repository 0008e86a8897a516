"""Auditor quality on golden items: accuracy per auditor and ISO week, agreement, drops.

``golden_accuracy_by_week`` is the one definition of an auditor's golden accuracy: golden
verdicts judged and matched per auditor and ISO week of the verdicts' UTC time, counted in
one GROUP BY. The API's ``GET /v1/auditor-quality`` and the report worker's weekly
``auditor.accuracy_dropped`` check both read it, so the numbers a manager sees are the ones
the announcement was made on.

``announce_accuracy_drops`` (run every minute by the report worker) looks at the last
complete ISO week: an auditor with at least ``MIN_JUDGED`` golden verdicts that week whose
accuracy is below the threshold is announced once. ``auditor_accuracy_announcements`` keeps
what was announced; the insert is ``ON CONFLICT DO NOTHING``, so concurrent or repeated runs
announce an auditor's week once. The event's market is the first market (alphabetically)
of the auditor's profile, so that market's channels hear of it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import Principal
from shared.events import AuditorAccuracyDropped, EventType, record_event
from shared.models import AuditorAccuracyAnnouncement, GoldenVerdict, Reviewer
from shared.schemas.golden import AuditorQualityRow
from shared.stats.intervals import wilson_interval

DEFAULT_REPORT_WEEKS = 8
# Fewer golden verdicts in a week than this say too little to announce a drop.
MIN_JUDGED = 5


@dataclass(frozen=True, slots=True)
class GoldenWeek:
    """One auditor's golden verdicts in one ISO week (UTC): how many, how many matched."""

    auditor_id: str
    week_start: date
    judged: int
    matched: int

    @property
    def week(self) -> str:
        """The ISO week's name, e.g. ``2026-W48``."""
        return iso_week(self.week_start)[0]

    @property
    def accuracy(self) -> float:
        return self.matched / self.judged


def iso_week(day: date) -> tuple[str, date]:
    """The ISO week of a day (``2026-W48``) and its Monday."""
    year, week, weekday = day.isocalendar()
    return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)


def previous_iso_week(now: datetime) -> tuple[str, date]:
    """The ISO week before the one ``now`` (UTC) falls in: its name and its Monday."""
    return iso_week(now.astimezone(UTC).date() - timedelta(weeks=1))


def default_range(today: date) -> tuple[date, date]:
    """The last ``DEFAULT_REPORT_WEEKS`` ISO weeks, this one included."""
    _, monday = iso_week(today)
    return monday - timedelta(weeks=DEFAULT_REPORT_WEEKS - 1), today


def majority(outcomes: list[str]) -> str | None:
    """The most frequent outcome; None when there is none or a tie."""
    ranked = Counter(outcomes).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def _judged_between(from_: date, to: date) -> list[ColumnElement[bool]]:
    """Golden verdicts judged on the UTC days ``from_`` to ``to`` inclusive."""
    clauses: list[ColumnElement[bool]] = [
        GoldenVerdict.judged_at >= datetime.combine(from_, time(), UTC)
    ]
    if to < date.max:  # the last representable day has no day after it: no upper bound
        end = datetime.combine(to + timedelta(days=1), time(), UTC)
        clauses.append(GoldenVerdict.judged_at < end)
    return clauses


async def golden_accuracy_by_week(
    session: AsyncSession,
    *,
    from_: date,
    to: date,
    markets: Collection[str] | None = None,
    auditor_id: str | None = None,
    min_judged: int = 1,
) -> list[GoldenWeek]:
    """Golden verdicts judged and matched per auditor and ISO week (UTC), for verdicts judged
    on the UTC days ``from_`` to ``to`` inclusive, in ``markets`` (None: all) and of one
    auditor when asked; weeks with fewer than ``min_judged`` verdicts are left out. Sorted
    by auditor, then week."""
    week_start = cast(func.date_trunc("week", func.timezone("UTC", GoldenVerdict.judged_at)), Date)
    judged = func.count()
    matched = func.count().filter(GoldenVerdict.matched)
    query = (
        select(GoldenVerdict.auditor_id, week_start.label("week_start"), judged, matched)
        .where(*_judged_between(from_, to))
        .group_by(GoldenVerdict.auditor_id, week_start)
        .having(judged >= min_judged)
        .order_by(GoldenVerdict.auditor_id, week_start)
    )
    if markets is not None:
        query = query.where(GoldenVerdict.market.in_(list(markets)))
    if auditor_id is not None:
        query = query.where(GoldenVerdict.auditor_id == auditor_id)
    return [
        GoldenWeek(auditor_id=who, week_start=monday, judged=n, matched=hits)
        for who, monday, n, hits in await session.execute(query)
    ]


async def auditor_quality(
    session: AsyncSession,
    *,
    principal: Principal,
    from_: date,
    to: date,
    auditor_id: str | None,
) -> list[AuditorQualityRow]:
    """Per auditor per ISO week: golden verdicts judged and matched, accuracy with its Wilson
    interval, and agreement with the other auditors' majority on the same golden decisions.

    Weeks are of the verdicts' UTC time; ``from`` and ``to`` are UTC days, inclusive. A
    market-scoped key sees the golden verdicts of its markets only.
    """
    weeks = await golden_accuracy_by_week(
        session, from_=from_, to=to, markets=principal.markets, auditor_id=auditor_id
    )
    agreement = await _agreement_by_week(
        session, from_=from_, to=to, markets=principal.markets, auditor_id=auditor_id
    )
    rows = []
    for week in weeks:
        low, high = wilson_interval(week.matched, week.judged)
        compared, agreeing = agreement.get((week.auditor_id, week.week_start), (0, 0))
        rows.append(
            AuditorQualityRow(
                auditor_id=week.auditor_id,
                week=week.week,
                week_start=week.week_start,
                golden_judged=week.judged,
                golden_matched=week.matched,
                accuracy=week.accuracy,
                ci_low=low,
                ci_high=high,
                agreement=agreeing / compared if compared else None,
                agreement_compared=compared,
            )
        )
    return rows


async def _agreement_by_week(
    session: AsyncSession,
    *,
    from_: date,
    to: date,
    markets: Collection[str] | None,
    auditor_id: str | None,
) -> dict[tuple[str, date], tuple[int, int]]:
    """Per (auditor, week): verdicts compared with the other auditors' majority on the same
    golden decision (a tie or nobody else compares nothing), and how many agreed."""
    query = select(
        GoldenVerdict.auditor_id,
        GoldenVerdict.decision_id,
        GoldenVerdict.outcome,
        GoldenVerdict.judged_at,
    ).where(*_judged_between(from_, to))
    if markets is not None:
        query = query.where(GoldenVerdict.market.in_(list(markets)))
    if auditor_id is not None:
        query = query.where(GoldenVerdict.auditor_id == auditor_id)
    verdicts = (await session.execute(query)).all()
    outcomes_of: dict[int, list[tuple[str, str]]] = defaultdict(list)
    decision_ids = sorted({row.decision_id for row in verdicts})
    if decision_ids:
        others = select(
            GoldenVerdict.decision_id, GoldenVerdict.auditor_id, GoldenVerdict.outcome
        ).where(GoldenVerdict.decision_id.in_(decision_ids))
        for decision_id, who, outcome in await session.execute(others):
            outcomes_of[decision_id].append((who, outcome))
    counts: dict[tuple[str, date], tuple[int, int]] = {}
    for who, decision_id, outcome, judged_at in verdicts:
        consensus = majority([o for other, o in outcomes_of[decision_id] if other != who])
        if consensus is None:
            continue
        key = (who, iso_week(judged_at.astimezone(UTC).date())[1])
        compared, agreeing = counts.get(key, (0, 0))
        counts[key] = (compared + 1, agreeing + (outcome == consensus))
    return counts


async def announce_accuracy_drops(
    session: AsyncSession, *, now: datetime, threshold: float, min_judged: int = MIN_JUDGED
) -> int:
    """Announce each auditor whose last-week golden accuracy is below ``threshold`` (with at
    least ``min_judged`` golden verdicts), once per week; returns how many were announced."""
    week_name, monday = previous_iso_week(now)
    weeks = await golden_accuracy_by_week(
        session, from_=monday, to=monday + timedelta(days=6), min_judged=min_judged
    )
    announced = 0
    for week in weeks:
        if week.accuracy >= threshold:
            continue
        inserted = await session.scalar(
            insert(AuditorAccuracyAnnouncement)
            .values(
                auditor_id=week.auditor_id,
                week_start=monday,
                judged=week.judged,
                matched=week.matched,
                accuracy=week.accuracy,
                threshold=threshold,
                announced_at=now,
            )
            .on_conflict_do_nothing()
            .returning(AuditorAccuracyAnnouncement.auditor_id)
        )
        if inserted is None:
            continue
        markets = await session.scalar(
            select(Reviewer.markets).where(Reviewer.id == week.auditor_id)
        )
        ordered = sorted(markets or [])
        event = await record_event(
            session,
            type=EventType.AUDITOR_ACCURACY_DROPPED,
            data=AuditorAccuracyDropped(
                auditor_id=week.auditor_id,
                week=week_name,
                judged=week.judged,
                matched=week.matched,
                accuracy=week.accuracy,
                threshold=threshold,
            ),
            market=ordered[0] if ordered else None,
        )
        announcement = await session.get(AuditorAccuracyAnnouncement, (week.auditor_id, monday))
        if announcement is not None:
            announcement.event_id = event.id
        announced += 1
    await session.flush()
    return announced
