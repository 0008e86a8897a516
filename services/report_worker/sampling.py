"""Daily audit sampling: the on-demand job and the schedule (see ``shared.sampling.selection``).

A market day is the decisions whose ``decided_at``, in the market's time zone, falls on that
date. One market day is sampled in one transaction under an advisory lock on (market, day),
so a scheduled run and an on-demand run of the same day take turns; the second finds the
first's audits and adds only what it must (usually nothing). Audits are inserted with
``ON CONFLICT (decision_id) WHERE NOT is_golden DO NOTHING``: whatever happens, a decision is
audited once (golden audits, one per auditor, are not sampled).

Speed (a day of 1,000,000 decisions): decisions are streamed from a server-side cursor in
batches straight from asyncpg (no ORM rows), each is hashed and routed in Python, only
the selected ones (and a few reserve candidates per moderator and label) are kept, and the
audits are written by one ``INSERT ... SELECT`` over arrays joined to the decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.background_jobs.service import FINAL_STATUSES, complete_job, fail_job, start_job
from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.jobs import SampleDailyAudits
from shared.markets import default_time_zone
from shared.models import SamplingPlan, SamplingRun
from shared.models.base import utcnow
from shared.sampling.selection import (
    DaySampler,
    ModeratorStanding,
    PlanRules,
    PlanSample,
    PlanSampler,
    applicable_plans,
    due_sampling_day,
    sampling_seed,
)
from shared.schemas.sampling import MarketSampleResult, PlanSampleResult, SamplingJobResult

logger = logging.getLogger(__name__)

# Rows per fetch from the day's cursor (two batches are held at once: one being offered, the
# next in flight). The batches are what sampling holds besides the sample itself, so they
# bound its peak memory: at 20,000 rows (about 11 MiB a batch) the peak grew with the day up
# to 40,000 decisions, and the report worker's resident memory, which keeps its peak, rose
# with every day's decisions sampled again (issue #12: the mixed workload samples today
# every 30 s). 2,000 rows cost a round trip per batch, which the prefetch overlaps.
FETCH_BATCH = 2_000

_LOCK_MARKET_DAY = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_MARKET_ZONE = text("SELECT time_zone FROM markets WHERE code = :market")
# Markets some active plan may apply to: its own, or its queue's when it names only a queue.
_MARKETS_WITH_PLANS = text(
    """
    SELECT m.code, m.time_zone
    FROM markets m
    WHERE EXISTS (
        SELECT 1 FROM sampling_plans p
        WHERE p.active AND (
            p.market = m.code
            OR (p.market IS NULL AND EXISTS (
                SELECT 1 FROM queues q WHERE q.name = p.queue AND q.market_code = m.code))
        )
    )
    ORDER BY m.code
    """
)
_HAS_RUN = text("SELECT EXISTS (SELECT 1 FROM sampling_runs WHERE market = :market AND day = :day)")
_AUDITED = text("SELECT decision_id FROM audits WHERE day = :day AND market = :market")

# The day's decisions. The range on decided_at lets the BRIN index skip other days; the
# date in the market's time zone is the definition. $1 market, $2/$3 range, $4 zone, $5 day,
# and $6 the queues when only queue plans apply.
_DAY_FILTER = """
    market = $1 AND decided_at >= $2 AND decided_at < $3
    AND (decided_at AT TIME ZONE $4)::date = $5
"""
_QUEUE_FILTER = " AND queue = ANY($6::text[])"
_STREAM = (
    "SELECT id, source_id::text || '/' || event_id, moderator_id, queue, action, policy_labels"
)

# The moderators of the day: when they started (their profile, else their first decision's
# day in this market's zone; only computed when a plan has a new-moderator boost).
_STANDING_START = """
    WITH moderators AS (SELECT DISTINCT moderator_id FROM decisions WHERE {filter})
    SELECT m.moderator_id, r.started_on,
           CASE WHEN {need_start}::boolean AND r.started_on IS NULL THEN (
               SELECT (d.decided_at AT TIME ZONE $4)::date FROM decisions d
               WHERE d.moderator_id = m.moderator_id ORDER BY d.id LIMIT 1
           ) END AS first_day
    FROM moderators m LEFT JOIN reviewers r ON r.id = m.moderator_id
"""
# Recent accuracy (overturned verdicts count as correct: effective_outcome), golden items
# excluded, through the audits' (moderator_id, day) index.
_RECENT_ACCURACY = """
    SELECT a.moderator_id, count(*) AS audited,
           count(*) FILTER (WHERE v.effective_outcome = 'correct') AS correct
    FROM audits a JOIN verdicts v ON v.audit_id = a.id
    WHERE a.moderator_id = ANY($1::text[]) AND a.day >= $2 AND a.day < $3 AND NOT a.is_golden
    GROUP BY a.moderator_id
"""
# New audits copy the decision's facts; ordered by decision id so that concurrent inserts
# into the unique index take their locks in one order.
_INSERT_AUDITS = """
    WITH inserted AS (
        INSERT INTO audits (id, decision_id, sampling_run_id, plan_id, reason, market, queue,
                            language, moderator_id, policy_labels, day, status, priority,
                            created_at)
        SELECT gen_random_uuid(), d.id, $1, s.plan_id, s.reason, d.market, d.queue,
               d.language, d.moderator_id, d.policy_labels, $2, 'pending', s.priority, now()
        FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::float8[])
             AS s(decision_id, plan_id, reason, priority)
        JOIN decisions d ON d.id = s.decision_id
        ORDER BY d.id
        ON CONFLICT (decision_id) WHERE NOT is_golden DO NOTHING
        RETURNING plan_id, reason, moderator_id
    )
    SELECT plan_id, reason, moderator_id, count(*) AS created
    FROM inserted GROUP BY plan_id, reason, moderator_id
"""


_collector_pauses = 0
_collector_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a day is selected (nestable).

    Selecting keeps a few hundred thousand tuples alive while allocating millions more; with
    the default thresholds the collector traverses the survivors again and again: measured,
    4.5 s of an 8 s selection of 1,000,000 decisions. Nothing here forms reference cycles, so
    reference counting frees everything anyway.
    """
    global _collector_pauses, _collector_was_enabled
    if _collector_pauses == 0:
        _collector_was_enabled = gc.isenabled()
        gc.disable()
    _collector_pauses += 1
    try:
        yield
    finally:
        _collector_pauses -= 1
        if _collector_pauses == 0 and _collector_was_enabled:
            gc.enable()


def plan_rules(plan: SamplingPlan) -> PlanRules:
    """The selection's view of a stored plan."""
    return PlanRules(
        plan_id=plan.id,
        rate=plan.rate,
        min_per_moderator=plan.min_per_moderator,
        queue=plan.queue,
        market=plan.market,
        new_moderator_days=plan.new_moderator_days,
        new_moderator_multiplier=plan.new_moderator_multiplier,
        low_accuracy_threshold=plan.low_accuracy_threshold,
        low_accuracy_multiplier=plan.low_accuracy_multiplier,
        low_accuracy_window_days=plan.low_accuracy_window_days,
        label_boosts=dict(plan.label_boosts or {}),
        label_quotas=dict(plan.label_quotas or {}),
        action_boosts=dict(plan.action_boosts or {}),
        daily_cap=plan.daily_cap,
    )


def day_bounds(day: date, time_zone: str) -> tuple[datetime, datetime]:
    """A UTC range holding the local day (with a margin; the date test is exact)."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        # Wide enough for any zone (UTC-12 to UTC+14).
        start = datetime.combine(day, time(), UTC)
        return start - timedelta(days=1), start + timedelta(days=2)
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start - timedelta(hours=3), end + timedelta(hours=3)


async def _driver_connection(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's open transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    # Cursors need a transaction, and writes must not escape the unit of work.
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError("sampling must run inside the session's transaction")
    return driver


async def _market_zone(session: AsyncSession, market: str) -> str:
    zone = await session.scalar(_MARKET_ZONE, {"market": market})
    return zone or default_time_zone(market)


async def _active_plans(session: AsyncSession, market: str) -> list[SamplingPlan]:
    """Active plans that may apply to the market, oldest first (the tie-break order)."""
    query = (
        select(SamplingPlan)
        .where(
            SamplingPlan.active.is_(True),
            (SamplingPlan.market == market)
            | (SamplingPlan.market.is_(None) & SamplingPlan.queue.is_not(None)),
        )
        .order_by(SamplingPlan.created_at, SamplingPlan.id)
    )
    return list(await session.scalars(query))


async def _standings(
    driver: Any,
    *,
    plans: Sequence[PlanRules],
    day: date,
    day_args: Sequence[Any],
    day_filter: str,
) -> dict[object, Mapping[str, ModeratorStanding]]:
    """Per plan that boosts moderators, each of the day's moderators' standing."""
    boosting = [p for p in plans if p.uses_new_moderator_boost or p.uses_low_accuracy_boost]
    if not boosting:
        return {}
    need_start = any(p.uses_new_moderator_boost for p in boosting)
    query = _STANDING_START.format(filter=day_filter, need_start=f"${len(day_args) + 1}")
    rows = await driver.fetch(query, *day_args, need_start)
    started: dict[str, date | None] = {
        row["moderator_id"]: row["started_on"] or row["first_day"] for row in rows
    }
    moderators = sorted(started)
    accuracy_by_window: dict[int, dict[str, float]] = {}
    for window in sorted({p.low_accuracy_window_days for p in boosting}):
        if not any(
            p.uses_low_accuracy_boost and p.low_accuracy_window_days == window for p in boosting
        ):
            continue
        counts = await driver.fetch(_RECENT_ACCURACY, moderators, day - timedelta(days=window), day)
        accuracy_by_window[window] = {
            row["moderator_id"]: row["correct"] / row["audited"] for row in counts
        }
    standings: dict[object, Mapping[str, ModeratorStanding]] = {}
    for plan in boosting:
        accuracy = accuracy_by_window.get(plan.low_accuracy_window_days, {})
        standings[plan.plan_id] = {
            moderator: ModeratorStanding(
                days_active=(day - start).days if start is not None else None,
                recent_accuracy=accuracy.get(moderator),
            )
            for moderator, start in started.items()
        }
    return standings


async def sample_market_day(
    session: AsyncSession,
    *,
    market: str,
    day: date,
    seed_base: str,
    job_id: uuid.UUID | None = None,
) -> MarketSampleResult:
    """Sample one market day and record the run, in the session's transaction."""
    await session.execute(_LOCK_MARKET_DAY, {"key": f"sampling:{market}:{day.isoformat()}"})
    zone = await _market_zone(session, market)
    seed = sampling_seed(seed_base, market=market, day=day.isoformat())
    run = SamplingRun(id=uuid.uuid4(), day=day, market=market, job_id=job_id, seed=seed)
    session.add(run)
    await session.flush()

    stored_plans = await _active_plans(session, market)
    stored_by_id: dict[object, SamplingPlan] = {plan.id: plan for plan in stored_plans}
    applicable, queues = applicable_plans([plan_rules(plan) for plan in stored_plans], market)
    samples: dict[object, PlanSample] = {}
    created_rows: list[Any] = []
    timings: dict[str, float] = {}
    if applicable:
        clock = perf_counter()
        driver = await _driver_connection(session)
        low, high = day_bounds(day, zone)
        day_filter = _DAY_FILTER
        day_args: list[Any] = [market, low, high, zone, day]
        if queues is not None:
            # Only queue plans apply: read only their queues' decisions.
            day_filter += _QUEUE_FILTER
            day_args.append(queues)
        standings = await _standings(
            driver, plans=applicable, day=day, day_args=day_args, day_filter=day_filter
        )
        sampler = DaySampler(applicable, market=market, seed=seed, standings=standings)
        audited = set(await session.scalars(_AUDITED, {"day": day, "market": market}))
        timings["prepare_s"], clock = perf_counter() - clock, perf_counter()
        with collector_paused():
            await _offer_decisions(driver, sampler, day_filter, day_args, audited)
            timings["stream_s"], clock = perf_counter() - clock, perf_counter()
            samples = sampler.finish()
        timings["select_s"], clock = perf_counter() - clock, perf_counter()
        created_rows = await _insert_audits(driver, run_id=run.id, day=day, samples=samples)
        timings["insert_s"] = perf_counter() - clock

    result = _market_result(
        market=market,
        day=day,
        zone=zone,
        run=run,
        samples=samples,
        stored_by_id=stored_by_id,
        created_rows=created_rows,
    )
    run.decisions_considered = result.decisions_considered
    run.audits_created = result.audits_created
    run.finished_at = utcnow()
    await session.flush()
    logger.info(
        "market day sampled",
        extra={
            "market": market,
            "day": day.isoformat(),
            "decisions_considered": result.decisions_considered,
            "audits_created": result.audits_created,
            **{name: round(seconds, 3) for name, seconds in timings.items()},
        },
    )
    return result


async def _offer_decisions(
    driver: Any,
    sampler: DaySampler,
    day_filter: str,
    day_args: Sequence[Any],
    audited: set[int],
) -> None:
    """Stream the day's decisions to their plans' samplers (the hot loop).

    The next batch is requested before this one is processed, so PostgreSQL produces it
    (on the other core) while Python hashes and selects.
    """
    by_queue: dict[str, PlanSampler | None] = {}
    sampler_for = sampler.sampler_for
    cursor = await driver.cursor(f"{_STREAM} FROM decisions WHERE {day_filter}", *day_args)
    pending = asyncio.ensure_future(cursor.fetch(FETCH_BATCH))
    try:
        while rows := await pending:
            pending = asyncio.ensure_future(cursor.fetch(FETCH_BATCH))
            await asyncio.sleep(0)  # lets the request go out before the CPU-bound loop
            _offer_batch(rows, sampler, by_queue, sampler_for, audited)
    finally:
        if not pending.done():
            # Only after a failure mid-stream: let the connection finish the request.
            with contextlib.suppress(Exception):
                await pending


def _offer_batch(
    rows: Sequence[Any],
    sampler: DaySampler,
    by_queue: dict[str, PlanSampler | None],
    sampler_for: Callable[[str], PlanSampler | None],
    audited: set[int],
) -> None:
    for decision_id, sample_key, moderator_id, queue, action, labels in rows:
        try:
            plan_sampler = by_queue[queue]
        except KeyError:
            plan_sampler = by_queue[queue] = sampler_for(queue)
        if plan_sampler is None:  # the query reads only covered queues; kept for safety
            continue
        plan_sampler.add(
            decision_id, sample_key, moderator_id, action, labels, decision_id in audited
        )


async def _insert_audits(
    driver: Any, *, run_id: uuid.UUID, day: date, samples: Mapping[object, PlanSample]
) -> list[Any]:
    decision_ids: list[int] = []
    plan_ids: list[object] = []
    reasons: list[str] = []
    priorities: list[float] = []
    for plan_id, sample in samples.items():
        for selection in sample.selected:
            decision_ids.append(selection.decision_id)
            plan_ids.append(plan_id)
            reasons.append(selection.reason)
            priorities.append(selection.priority)
    if not decision_ids:
        return []
    rows: list[Any] = await driver.fetch(
        _INSERT_AUDITS, run_id, day, decision_ids, plan_ids, reasons, priorities
    )
    return rows


def _market_result(
    *,
    market: str,
    day: date,
    zone: str,
    run: SamplingRun,
    samples: Mapping[object, PlanSample],
    stored_by_id: Mapping[object, SamplingPlan],
    created_rows: Sequence[Any],
) -> MarketSampleResult:
    created_by_plan: Counter[object] = Counter()
    per_moderator: Counter[str] = Counter()
    for row in created_rows:
        created_by_plan[row["plan_id"]] += row["created"]
        per_moderator[row["moderator_id"]] += row["created"]
    plans = [
        PlanSampleResult(
            plan_id=stored_by_id[plan_id].id,
            plan_version=stored_by_id[plan_id].version,
            decisions_considered=sample.considered,
            already_audited=sample.already_audited,
            audits_selected=len(sample.selected),
            audits_created=created_by_plan[plan_id],
            dropped_by_cap=sample.dropped_by_cap,
            by_reason=sample.count_by_reason(),
        )
        for plan_id, sample in samples.items()
    ]
    return MarketSampleResult(
        market=market,
        day=day,
        time_zone=zone,
        sampling_run_id=run.id,
        seed=run.seed,
        decisions_considered=sum(plan.decisions_considered for plan in plans),
        audits_created=sum(plan.audits_created for plan in plans),
        plans=plans,
        audits_per_moderator=dict(sorted(per_moderator.items())),
    )


async def markets_with_plans(session: AsyncSession) -> list[tuple[str, str]]:
    """``(market, time zone)`` of every market an active plan may apply to."""
    rows = (await session.execute(_MARKETS_WITH_PLANS)).all()
    return [(row.code, row.time_zone) for row in rows]


async def sample_day(
    session: AsyncSession,
    *,
    day: date,
    market: str | None,
    seed_base: str,
    job_id: uuid.UUID | None = None,
) -> SamplingJobResult:
    """Sample ``day`` of one market, or of every market with a plan (markets in code order,
    which is also the order their locks are taken in)."""
    markets = [market] if market else [code for code, _ in await markets_with_plans(session)]
    results = [
        await sample_market_day(session, market=code, day=day, seed_base=seed_base, job_id=job_id)
        for code in markets
    ]
    return SamplingJobResult(
        day=day,
        decisions_considered=sum(result.decisions_considered for result in results),
        audits_created=sum(result.audits_created for result in results),
        markets=results,
    )


def _failure_message(exc: BaseException) -> str:
    # The job's error is shown to API clients: say what failed, not how (that is logged).
    return f"sampling failed ({type(exc).__name__}); the report worker's log has the details"


async def sample_daily_audits(state: WorkerState, job: SampleDailyAudits) -> dict[str, Any] | None:
    """arq entry point: run a requested sampling and keep its state on the BackgroundJob.

    Idempotent: a job found complete or failed is not run again (its stored result stands),
    and a job that runs twice anyway creates no second audit for any decision.
    """
    sessionmaker = state.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        record = await start_job(session, job_id=job.job_id, now=utcnow())
    if record is None:
        logger.warning("sampling job without its row, skipped", extra={"job_id": job.job_id})
        return None
    if record.status in FINAL_STATUSES:
        return {"status": record.status, "already_done": True}
    try:
        async with unit_of_work(sessionmaker) as session:
            result = await sample_day(
                session,
                day=job.day,
                market=job.market,
                seed_base=state.settings.sampling_seed,
                job_id=job.job_id,
            )
            await complete_job(
                session, job_id=job.job_id, result=result.model_dump(mode="json"), now=utcnow()
            )
    except Exception as exc:
        logger.exception("sampling job failed", extra={"job_id": str(job.job_id)})
        async with unit_of_work(sessionmaker) as session:
            await fail_job(session, job_id=job.job_id, error=_failure_message(exc), now=utcnow())
        return None
    logger.info(
        "sampling job complete",
        extra={
            "job_id": str(job.job_id),
            "day": job.day.isoformat(),
            "audits_created": result.audits_created,
            "decisions_considered": result.decisions_considered,
        },
    )
    return {"audits_created": result.audits_created}


async def sample_due_markets(
    sessionmaker: async_sessionmaker[AsyncSession], *, seed_base: str, now: datetime
) -> int:
    """Sample each market's last finished day (from 01:00 local time) unless sampled already.

    Each market day is its own transaction; the check is repeated under the day's lock so a
    concurrent on-demand run is not doubled. Returns the number of audits created.
    """
    async with sessionmaker() as session:
        markets = await markets_with_plans(session)
    created = 0
    for market, zone in markets:
        try:
            day = due_sampling_day(now, zone)
        except (ZoneInfoNotFoundError, ValueError):
            day = due_sampling_day(now, "UTC")
        async with unit_of_work(sessionmaker) as session:
            if await session.scalar(_HAS_RUN, {"market": market, "day": day}):
                continue
            await session.execute(_LOCK_MARKET_DAY, {"key": f"sampling:{market}:{day.isoformat()}"})
            if await session.scalar(_HAS_RUN, {"market": market, "day": day}):
                continue
            result = await sample_market_day(session, market=market, day=day, seed_base=seed_base)
        created += result.audits_created
        logger.info(
            "scheduled sampling done",
            extra={
                "market": market,
                "day": day.isoformat(),
                "audits_created": result.audits_created,
                "decisions_considered": result.decisions_considered,
            },
        )
    return created


async def sample_due_market_days(state: WorkerState) -> int:
    """Scheduled (every minute): sample every market day that is due and not yet sampled."""
    return await sample_due_markets(
        state.sessionmaker, seed_base=state.settings.sampling_seed, now=utcnow()
    )


__all__ = [
    "day_bounds",
    "markets_with_plans",
    "plan_rules",
    "sample_daily_audits",
    "sample_day",
    "sample_due_market_days",
    "sample_due_markets",
    "sample_market_day",
]
