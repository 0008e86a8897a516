"""Keeping the analytics rollups (``quality_rollups``, ``action_confusion_rollups``) true.

Two sides, two ways of staying idempotent under at-least-once delivery:

- Decision side (``decisions``, ``handling_time_ms_sum``, ``handling_time_count``): counted
  incrementally from intake batches. Every intake transaction leaves an ``IntakeBatch``;
  ``apply_pending_intake_batches`` claims pending batches (``FOR UPDATE SKIP LOCKED``),
  adds their decisions to the slice's total row (``ALL_POLICIES``) and to one row per
  policy label (``NO_POLICY`` for none), and marks them applied in the same transaction:
  each batch is counted exactly once, however many jobs run. Intake itself pays nothing
  per event.
- Verdict side (every other counter, and the action-confusion table): recomputed for a
  whole slice (day, market, queue, moderator) from the raw tables, never incremented, so
  recomputing twice changes nothing. Whatever changes a slice's verdicts, disagreements or
  appeals calls ``mark_slices_dirty`` (or one of its variants) in its own transaction: a
  ``DirtyRollupSlice`` row, plus one ``ApplyQualityRollups`` outbox job per transaction.
  ``apply_dirty_slices`` claims dirty rows (``FOR UPDATE SKIP LOCKED``), takes a
  transaction-scoped advisory lock per slice in sorted order (two jobs never interleave on
  one slice, and never deadlock on each other), recomputes the slices, deletes the rows.

The report worker's sweeps run both every minute (the safety net when Redis lost a job);
``refresh_rollups`` runs both, bounded, in a report's own transaction, so a report reflects
every change committed before it was asked. ``rebuild_quality_rollups`` recomputes both
tables from scratch for a range of days, in SQL, for operators (``plumbline rollups
rebuild``) and for the tests that prove the incremental rows equal the rebuilt ones.

Each of them ends by recomputing the day rollups (``shared.analytics.day_rollups``: the
totals per market, queue and day, the population strata sums per day) of the days it
changed, in the same transaction, so what the briefing reads from them is always what the
rows here add up to.

A slice's ``day`` is the decision's market-local day: for decisions and appeals
``(decided_at AT TIME ZONE markets.time_zone)::date`` (UTC for an unknown market), for
verdicts the audit's ``day``, which the sampler computed the same way.
"""

# The statements are assembled at import time from this module's constants only; every value
# is a bound parameter, so none of them can carry input.
# ruff: noqa: S608

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.day_rollups import rebuild_day_rollups, recompute_day_rollups
from shared.core.outbox import add_job
from shared.jobs import ApplyQualityRollups
from shared.models.analytics import (
    ALL_POLICIES,
    DECISION_COUNTERS,
    NO_POLICY,
    VERDICT_COUNTERS,
)

logger = logging.getLogger(__name__)

# Intake batches claimed per transaction: bounds the transaction, the rest is left to the
# next job.
MAX_BATCHES_PER_RUN = 500
# Dirty rows claimed per transaction.
MAX_DIRTY_PER_RUN = 500
# What a report applies before it reads (the sweep and the jobs keep the backlog smaller).
REFRESH_DIRTY_LIMIT = 1000
REFRESH_BATCH_LIMIT = 50

# Taken shared by every intake apply (which skips its turn when it cannot have it at once)
# and exclusively by a rebuild, so that a rebuild never deletes counts an intake job is adding
# (and no batch is counted twice or lost).
_INTAKE_LOCK = 0x706C756D_62000001  # "plumb" + 1
# Prefix of a slice's advisory lock key.
_SLICE_LOCK_PREFIX = "quality_rollups:"

# Deadlock detected, serialization failure.
_RETRYABLE = frozenset({"40P01", "40001"})

_SESSION_JOB_KEY = "plumbline.analytics.rollup_job_transaction"

_ENFORCING = "('remove', 'restrict')"

# The rows a fact counts under: the slice's total row, and each distinct policy of
# ``labels`` once (NO_POLICY when there is none). Neither marker can be a policy code.
_POLICIES = f"""
    CROSS JOIN LATERAL (
        SELECT '{ALL_POLICIES}'::text AS policy
        UNION ALL
        SELECT DISTINCT label::text FROM unnest(
            CASE WHEN coalesce(cardinality({{labels}}), 0) > 0 THEN {{labels}}
                 ELSE ARRAY['{NO_POLICY}']::varchar[] END
        ) AS label
    ) AS p"""

_LOCAL_DAY = "(d.decided_at AT TIME ZONE coalesce(m.time_zone, 'UTC'))::date"

_KEY = "day, market, queue, moderator_id, policy"


def _verdict_ctes(
    *, verdict_source: str, verdict_where: str, appeal_source: str, appeal_where: str
) -> str:
    """CTEs ``verdict_facts``, ``verdict_counts``, ``appeal_counts``, ``confusion_counts``
    and ``verdict_side`` (verdict and appeal counts per rollup key) over the audits named by
    ``verdict_source`` (aliased ``a``) and the appeals of ``appeal_source`` (``ap``)."""
    enforced = f"(f.action IN {_ENFORCING} AND p.policy = ANY(f.labels))"
    truth = (
        f"((f.effective_outcome = 'correct' AND {enforced}) OR"
        f" (f.effective_outcome = 'incorrect' AND f.expected_action IN {_ENFORCING}"
        " AND p.policy = ANY(coalesce(f.expected_labels, '{}'))))"
    )
    still_incorrect = "f.effective_outcome = 'incorrect'"
    verdict_policies = _POLICIES.format(labels="array_cat(f.labels, f.expected_labels)")
    return f"""
    verdict_facts AS (
        SELECT a.day, a.market, a.queue, a.moderator_id, a.policy_labels AS labels,
               d.action, v.outcome, v.effective_outcome, v.expected_action,
               v.expected_labels, v.error_type, v.severity,
               floor(extract(epoch FROM v.created_at - d.decided_at))::bigint AS delay_seconds,
               g.disputed_at IS NOT NULL AS disputed,
               coalesce(g.status = 'overturned', false) AS overturned
        {verdict_source}
        JOIN verdicts v ON v.audit_id = a.id
        JOIN decisions d ON d.id = a.decision_id
        LEFT JOIN disagreements g ON g.audit_id = a.id
        WHERE NOT a.is_golden AND {verdict_where}
    ),
    verdict_counts AS (
        SELECT f.day, f.market, f.queue, f.moderator_id, p.policy,
               count(*) AS audited,
               count(*) FILTER (WHERE f.effective_outcome = 'correct') AS correct,
               count(*) FILTER (WHERE f.outcome = 'incorrect') AS judged_incorrect,
               count(*) FILTER (WHERE {still_incorrect} AND f.error_type = 'missed_violation')
                   AS missed_violation,
               count(*) FILTER (WHERE {still_incorrect} AND f.error_type = 'over_enforcement')
                   AS over_enforcement,
               count(*) FILTER (WHERE {still_incorrect} AND f.error_type = 'wrong_policy')
                   AS wrong_policy,
               count(*) FILTER (WHERE {still_incorrect} AND f.error_type = 'wrong_action')
                   AS wrong_action,
               count(*) FILTER (WHERE {still_incorrect} AND f.severity = 'critical') AS critical,
               count(*) FILTER (WHERE {still_incorrect} AND f.severity = 'major') AS major,
               count(*) FILTER (WHERE {still_incorrect} AND f.severity = 'minor') AS minor,
               count(*) FILTER (WHERE f.disputed) AS disputed,
               count(*) FILTER (WHERE f.overturned) AS overturned,
               coalesce(sum(f.delay_seconds), 0) AS audit_delay_seconds_sum,
               count(*) FILTER (WHERE {enforced} AND {truth}) AS enforcement_tp,
               count(*) FILTER (WHERE {enforced} AND NOT {truth}) AS enforcement_fp,
               count(*) FILTER (WHERE {truth} AND NOT {enforced}) AS enforcement_fn
        FROM verdict_facts f
        {verdict_policies}
        GROUP BY 1, 2, 3, 4, 5
    ),
    confusion_counts AS (
        SELECT f.day, f.market, f.queue, f.moderator_id, p.policy, f.action,
               CASE WHEN f.effective_outcome = 'correct' THEN f.action
                    ELSE coalesce(f.expected_action, f.action) END AS expected_action,
               count(*) AS verdicts
        FROM verdict_facts f
        {verdict_policies}
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ),
    appeal_facts AS (
        SELECT {_LOCAL_DAY} AS day, d.market, d.queue, d.moderator_id,
               d.policy_labels AS labels, bool_or(ap.outcome = 'reversed') AS reversed
        {appeal_source}
        JOIN decisions d ON d.id = ap.decision_id
        LEFT JOIN markets m ON m.code = d.market
        WHERE {appeal_where}
        GROUP BY d.id, d.decided_at, m.time_zone, d.market, d.queue, d.moderator_id,
                 d.policy_labels
    ),
    appeal_counts AS (
        SELECT f.day, f.market, f.queue, f.moderator_id, p.policy,
               count(*) AS appealed,
               count(*) FILTER (WHERE f.reversed) AS appeal_reversed
        FROM appeal_facts f
        {_POLICIES.format(labels="f.labels")}
        GROUP BY 1, 2, 3, 4, 5
    ),
    verdict_side AS (
        SELECT {_KEY},
               {", ".join(f"coalesce({c}, 0) AS {c}" for c in VERDICT_COUNTERS)}
        FROM verdict_counts FULL JOIN appeal_counts USING ({_KEY})
    )"""


def _decision_facts(where: str) -> str:
    """CTE ``decision_counts``: decision-side counts per rollup key of the decisions
    (``d``) matching ``where``.

    Decisions are first counted per slice and label set, then each group is spread over
    its policies: the rows to aggregate by policy are the groups, not the decisions.
    """
    return f"""
    decision_groups AS (
        SELECT {_LOCAL_DAY} AS day, d.market, d.queue, d.moderator_id,
               d.policy_labels AS labels,
               count(*) AS decisions,
               coalesce(sum(d.handling_time_ms), 0) AS handling_time_ms_sum,
               count(d.handling_time_ms) AS handling_time_count
        FROM decisions d
        LEFT JOIN markets m ON m.code = d.market
        WHERE {where}
        GROUP BY 1, 2, 3, 4, 5
    ),
    decision_counts AS (
        SELECT f.day, f.market, f.queue, f.moderator_id, p.policy,
               sum(f.decisions)::bigint AS decisions,
               sum(f.handling_time_ms_sum)::bigint AS handling_time_ms_sum,
               sum(f.handling_time_count)::bigint AS handling_time_count
        FROM decision_groups f
        {_POLICIES.format(labels="f.labels")}
        GROUP BY 1, 2, 3, 4, 5
    )"""


# ------------------------------------------------------------------------- dirty slices


@dataclass(frozen=True, slots=True, order=True)
class Slice:
    """What the verdict side recomputes at once: one market-local day of one moderator in
    one market and queue."""

    day: date
    market: str
    queue: str
    moderator_id: str


_MARK = text(
    """
    INSERT INTO dirty_rollup_slices (day, market, queue, moderator_id)
    SELECT * FROM unnest(
        CAST(:days AS date[]), CAST(:markets AS text[]), CAST(:queues AS text[]),
        CAST(:moderators AS text[])
    )
    """
)
_MARK_VERDICTS = text(
    """
    INSERT INTO dirty_rollup_slices (day, market, queue, moderator_id)
    SELECT DISTINCT day, market, queue, moderator_id FROM verdicts
    WHERE id = ANY(CAST(:verdict_ids AS uuid[]))
    """
)
_MARK_DECISIONS = text(
    f"""
    INSERT INTO dirty_rollup_slices (day, market, queue, moderator_id)
    SELECT DISTINCT {_LOCAL_DAY}, d.market, d.queue, d.moderator_id
    FROM decisions d
    LEFT JOIN markets m ON m.code = d.market
    WHERE d.id = ANY(CAST(:decision_ids AS bigint[]))
    """
)


async def _queue_job_once(session: AsyncSession) -> None:
    """One ``ApplyQualityRollups`` outbox job per transaction, however many changes it made.

    The root transaction object identifies the transaction: a session reused after a commit
    or a rollback queues a new job in its next transaction.
    """
    transaction = session.sync_session.get_transaction()
    if transaction is not None and session.info.get(_SESSION_JOB_KEY) is transaction:
        return
    await add_job(session, ApplyQualityRollups())
    session.info[_SESSION_JOB_KEY] = transaction


async def queue_rollup_job(session: AsyncSession) -> None:
    """Queue the rollup job of this transaction (once), for a caller that wrote its
    ``DirtyRollupSlice`` row within a statement of its own (a verdict: one round trip)."""
    await _queue_job_once(session)


async def mark_slices_dirty(session: AsyncSession, slices: Iterable[Slice]) -> None:
    """Mark ``slices`` for recomputation, in the caller's transaction (and queue the job)."""
    unique = sorted(set(slices))
    if not unique:
        return
    await session.execute(
        _MARK,
        {
            "days": [s.day for s in unique],
            "markets": [s.market for s in unique],
            "queues": [s.queue for s in unique],
            "moderators": [s.moderator_id for s in unique],
        },
    )
    await _queue_job_once(session)


async def mark_verdict_slices_dirty(session: AsyncSession, *, verdict_ids: Sequence[Any]) -> None:
    """Mark the slices of these verdicts (their disagreements changed, say)."""
    if not verdict_ids:
        return
    await session.flush()
    await session.execute(_MARK_VERDICTS, {"verdict_ids": list(verdict_ids)})
    await _queue_job_once(session)


async def mark_decision_slices_dirty(session: AsyncSession, *, decision_ids: Sequence[int]) -> None:
    """Mark the slices of these decisions (an appeal outcome about them arrived)."""
    if not decision_ids:
        return
    await session.execute(_MARK_DECISIONS, {"decision_ids": sorted(set(decision_ids))})
    await _queue_job_once(session)


def _claim_dirty(*, wait: bool) -> Any:
    return text(
        f"""
        SELECT id, day, market, queue, moderator_id FROM dirty_rollup_slices
        ORDER BY id
        LIMIT :limit
        FOR UPDATE{"" if wait else " SKIP LOCKED"}
        """
    )


_CLAIM_DIRTY_SKIP = _claim_dirty(wait=False)
_CLAIM_DIRTY_WAIT = _claim_dirty(wait=True)

_NO_JIT = text("SET LOCAL jit = off")
# Lock keys sorted numerically: every transaction takes its slices' locks in one order.
_LOCK_SLICES = text(
    f"""
    SELECT count(pg_advisory_xact_lock(k)) FROM (
        SELECT DISTINCT hashtextextended(
            '{_SLICE_LOCK_PREFIX}' || s.day || '|' || s.market || '|' || s.queue || '|'
            || s.moderator_id, 0) AS k
        FROM unnest(
            CAST(:days AS date[]), CAST(:markets AS text[]), CAST(:queues AS text[]),
            CAST(:moderators AS text[])
        ) AS s(day, market, queue, moderator_id)
        ORDER BY k
    ) AS sorted_keys
    """
)

_SLICES = """
    slices AS (
        SELECT DISTINCT * FROM unnest(
            CAST(:days AS date[]), CAST(:markets AS text[]), CAST(:queues AS text[]),
            CAST(:moderators AS text[])
        ) AS s(day, market, queue, moderator_id)
    )"""

# Each slice looks up its own audits (ix_audits_moderator_id_day) and its moderator's appeals
# (ix_appeals_moderator_id): the LATERAL subqueries, fenced by OFFSET 0 so the planner keeps
# them, stop it from scanning every audit of the days involved to join them to the slices.
_SLICE_VERDICT_CTES = _verdict_ctes(
    verdict_source="""FROM slices s
        CROSS JOIN LATERAL (
            SELECT * FROM audits x
            WHERE x.moderator_id = s.moderator_id AND x.day = s.day
              AND x.market = s.market AND x.queue = s.queue
            OFFSET 0
        ) AS a""",
    verdict_where="true",
    appeal_source="""FROM slices s
        CROSS JOIN LATERAL (
            SELECT * FROM appeals y WHERE y.moderator_id = s.moderator_id OFFSET 0
        ) AS ap""",
    appeal_where=f"""d.market = s.market AND d.queue = s.queue
            AND d.moderator_id = s.moderator_id AND {_LOCAL_DAY} = s.day""",
)
_IN_SLICES = (
    "EXISTS (SELECT 1 FROM slices s WHERE s.day = q.day AND s.market = q.market"
    " AND s.queue = q.queue AND s.moderator_id = q.moderator_id)"
)
_COMPUTED = (
    "EXISTS (SELECT 1 FROM verdict_side c WHERE "
    + " AND ".join(
        f"c.{column} = q.{column}"
        for column in ("day", "market", "queue", "moderator_id", "policy")
    )
    + ")"
)
_ANY_VERDICT_SIDE = "(q.audited > 0 OR q.appealed > 0)"
_DECISION_SIDE_EMPTY = "q.decisions = 0 AND q.handling_time_count = 0"

# One statement: upsert the recomputed verdict-side counts (decision-side counts are left
# alone), and for the slices' rows that no longer have any (none today: verdicts, their
# policies and appeals are never removed, but the rule must not depend on it) zero them, or
# delete the row when it has no decisions either. The three touch disjoint rows.
_RECOMPUTE_QUALITY = text(
    f"""
    WITH {_SLICES},
    {_SLICE_VERDICT_CTES},
    upserted AS (
        INSERT INTO quality_rollups ({_KEY}, {", ".join(VERDICT_COUNTERS)})
        SELECT {_KEY}, {", ".join(VERDICT_COUNTERS)} FROM verdict_side
        ORDER BY {_KEY}
        ON CONFLICT ({_KEY}) DO UPDATE SET
            {", ".join(f"{c} = excluded.{c}" for c in VERDICT_COUNTERS)},
            updated_at = now()
        RETURNING 1
    ),
    emptied AS (
        DELETE FROM quality_rollups q
        WHERE {_IN_SLICES} AND NOT {_COMPUTED} AND {_DECISION_SIDE_EMPTY}
        RETURNING 1
    ),
    zeroed AS (
        UPDATE quality_rollups q
        SET {", ".join(f"{c} = 0" for c in VERDICT_COUNTERS)}, updated_at = now()
        WHERE {_IN_SLICES} AND NOT {_COMPUTED} AND NOT ({_DECISION_SIDE_EMPTY})
          AND {_ANY_VERDICT_SIDE}
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM upserted) + (SELECT count(*) FROM emptied)
           + (SELECT count(*) FROM zeroed)
    """
)
_DELETE_CONFUSION = text(
    f"""
    WITH {_SLICES}
    DELETE FROM action_confusion_rollups q WHERE {_IN_SLICES}
    """
)
_INSERT_CONFUSION = text(
    f"""
    WITH {_SLICES},
    {_SLICE_VERDICT_CTES}
    INSERT INTO action_confusion_rollups ({_KEY}, action, expected_action, verdicts)
    SELECT {_KEY}, action, expected_action, verdicts FROM confusion_counts
    ORDER BY {_KEY}, action, expected_action
    """
)
_DELETE_DIRTY = text("DELETE FROM dirty_rollup_slices WHERE id = ANY(CAST(:ids AS bigint[]))")


async def recompute_slices(session: AsyncSession, slices: Iterable[Slice]) -> int:
    """Recompute the verdict side of ``slices`` from the raw tables, then the day rollups of
    their days; returns how many slices.

    Takes each slice's advisory lock (transaction-scoped, in one global order) first, so
    that two transactions recomputing one slice run one after the other and the second
    reads what the first committed.
    """
    unique = sorted(set(slices))
    await _recompute_slices(session, unique)
    await recompute_day_rollups(session, days={s.day for s in unique})
    return len(unique)


async def _recompute_slices(session: AsyncSession, unique: Sequence[Slice]) -> None:
    """``recompute_slices`` of distinct sorted ``unique`` without the day rollups."""
    if not unique:
        return
    values = {
        "days": [s.day for s in unique],
        "markets": [s.market for s in unique],
        "queues": [s.queue for s in unique],
        "moderators": [s.moderator_id for s in unique],
    }
    # Compiling these statements (JIT, which large tables' estimates can trigger) costs more
    # than running them for a few hundred slices.
    await session.execute(_NO_JIT)
    await session.execute(_LOCK_SLICES, values)
    await session.execute(_RECOMPUTE_QUALITY, values)
    await session.execute(_DELETE_CONFUSION, values)
    await session.execute(_INSERT_CONFUSION, values)


async def apply_dirty_slices(
    session: AsyncSession, *, limit: int = MAX_DIRTY_PER_RUN, wait: bool = False
) -> int:
    """Claim up to ``limit`` dirty rows, recompute their slices, delete the rows.

    Returns the number of slices recomputed (0 when another job got there first). Jobs skip
    rows another transaction holds (``wait=False``); a report (``wait=True``) waits for
    them, so that what it then reads includes that transaction's work.
    """
    done, days = await _apply_dirty_slices(session, limit=limit, wait=wait)
    await recompute_day_rollups(session, days=days)
    return done


async def _apply_dirty_slices(
    session: AsyncSession, *, limit: int, wait: bool
) -> tuple[int, set[date]]:
    """``apply_dirty_slices`` without the day rollups; also returns the slices' days."""
    claim = _CLAIM_DIRTY_WAIT if wait else _CLAIM_DIRTY_SKIP
    claimed = (await session.execute(claim, {"limit": limit})).all()
    if not claimed:
        return 0, set()
    unique = sorted({Slice(row.day, row.market, row.queue, row.moderator_id) for row in claimed})
    await _recompute_slices(session, unique)
    await session.execute(_DELETE_DIRTY, {"ids": [row.id for row in claimed]})
    return len(unique), {s.day for s in unique}


# ------------------------------------------------------------------------- intake batches

_CLAIM_BATCHES = text(
    """
    SELECT batch_id, first_decision_id, last_decision_id
    FROM intake_batches
    WHERE applied_at IS NULL
    ORDER BY created_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_TRY_LOCK_INTAKE_SHARED = text(f"SELECT pg_try_advisory_xact_lock_shared({_INTAKE_LOCK})")
_LOCK_INTAKE_EXCLUSIVE = text(f"SELECT pg_advisory_xact_lock({_INTAKE_LOCK})")
# The id range lets the primary key find the batches' rows; rows are upserted in key order
# so that concurrent jobs cannot deadlock.
_APPLY_BATCHES = text(
    f"""
    WITH {
        _decision_facts(
            "d.id BETWEEN :first_id AND :last_id"
            " AND d.intake_batch_id = ANY(CAST(:batch_ids AS uuid[]))"
        )
    },
    upserted AS (
        INSERT INTO quality_rollups ({_KEY}, {", ".join(DECISION_COUNTERS)})
        SELECT {_KEY}, {", ".join(DECISION_COUNTERS)} FROM decision_counts
        ORDER BY {_KEY}
        ON CONFLICT ({_KEY}) DO UPDATE SET
            {", ".join(f"{c} = quality_rollups.{c} + excluded.{c}" for c in DECISION_COUNTERS)},
            updated_at = now()
        RETURNING 1
    )
    SELECT coalesce(sum(decisions) FILTER (WHERE policy = '{ALL_POLICIES}'), 0) AS counted,
           coalesce(array_agg(DISTINCT day), '{{}}') AS days
    FROM decision_counts
    """
)
_MARK_APPLIED = text(
    "UPDATE intake_batches SET applied_at = now() WHERE batch_id = ANY(CAST(:batch_ids AS uuid[]))"
)


async def apply_pending_intake_batches(
    session: AsyncSession, *, limit: int = MAX_BATCHES_PER_RUN
) -> int:
    """Count pending intake batches into the decision side of ``quality_rollups``, each
    exactly once, then recompute the day rollups of their days; returns the number of
    decisions counted (0 when another job got there first, or while a rebuild runs: the
    batches wait for the next job or sweep)."""
    counted, days = await _apply_pending_intake_batches(session, limit=limit)
    await recompute_day_rollups(session, days=days)
    return counted


async def _apply_pending_intake_batches(
    session: AsyncSession, *, limit: int
) -> tuple[int, set[date]]:
    """``apply_pending_intake_batches`` without the day rollups; also returns the days the
    batches' decisions counted under."""
    if not await session.scalar(_TRY_LOCK_INTAKE_SHARED):
        return 0, set()
    claimed = (await session.execute(_CLAIM_BATCHES, {"limit": limit})).all()
    if not claimed:
        return 0, set()
    batch_ids = [row.batch_id for row in claimed]
    applied = await session.execute(
        _APPLY_BATCHES,
        {
            "first_id": min(row.first_decision_id for row in claimed),
            "last_id": max(row.last_decision_id for row in claimed),
            "batch_ids": batch_ids,
        },
    )
    counted, days = applied.one()
    await session.execute(_MARK_APPLIED, {"batch_ids": batch_ids})
    return int(counted), set(days)


# ------------------------------------------------------------------------- reports


# Reports bind the day range and the policy marker as parameters. After five executions on
# one connection PostgreSQL may switch to a cached generic plan that expects ~1,000 rollup
# rows where there are 100,000 and walks the primary key instead (measured at 10 M decisions:
# 0.5 s became 1.2 s); and a report's estimated cost crosses the JIT threshold, where
# compiling took 50-275 ms of a query that runs in less. Both settings end with the
# transaction, so nothing else on the connection is affected.
_REPORT_TRANSACTION_SETTINGS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('jit', 'off', true)"
)


async def tune_report_transaction(session: AsyncSession) -> None:
    """Plan the rest of this transaction's report queries for their actual parameters."""
    await session.execute(_REPORT_TRANSACTION_SETTINGS)


async def refresh_rollups(session: AsyncSession) -> None:
    """Bring the rollups up to date before a report reads them, in its transaction.

    Applies the pending dirty slices first, waiting for rows a job is recomputing right now
    (so every verdict, ruling and appeal committed before the report was asked is counted),
    then pending intake batches (skipping those a job is applying; their decisions appear
    when it commits). Both bounded (``REFRESH_DIRTY_LIMIT``, ``REFRESH_BATCH_LIMIT``): a
    backlog beyond them is the jobs' and the sweep's. Dirty slices come first and hold no
    lock while they wait; should PostgreSQL still find a deadlock with a job, the refresh
    (a savepoint) gives way and the report reads the rollups as they are.
    """
    # Every report calls this first: its transaction plans for the actual parameters too.
    await tune_report_transaction(session)
    try:
        async with session.begin_nested():
            _, verdict_days = await _apply_dirty_slices(
                session, limit=REFRESH_DIRTY_LIMIT, wait=True
            )
            _, decision_days = await _apply_pending_intake_batches(
                session, limit=REFRESH_BATCH_LIMIT
            )
            # Once, last: the day rollups' lock is then held with nothing more to wait for.
            await recompute_day_rollups(session, days=verdict_days | decision_days)
    except DBAPIError as exc:
        # A deadlock with a job (PostgreSQL picked this side) must not fail the report: the
        # savepoint is gone, the job goes on, the report reads the rollups as they are.
        if getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
            raise
        logger.warning("rollup refresh gave way to a concurrent job", extra={"error": str(exc)})


# ------------------------------------------------------------------------- rebuild

_RANGE = "a.day BETWEEN :day_from AND :day_to"
# Decisions of a market-local day D lie in UTC within [D - 14 h, D + 1 day + 12 h) (time zones
# are between UTC-12 and UTC+14): the bounds let the decided_at index and the partitions
# narrow the scan before the exact local day is compared.
_DECISION_RANGE = f"""
    d.decided_at >= CAST(:day_from AS date)::timestamp AT TIME ZONE 'UTC' - interval '14 hours'
    AND d.decided_at < (CAST(:day_to AS date) + 1)::timestamp AT TIME ZONE 'UTC'
        + interval '12 hours'
    AND {_LOCAL_DAY} BETWEEN :day_from AND :day_to"""

_REBUILD_WORK_MEM = text("SET LOCAL work_mem = '64MB'")
_REBUILD_DELETE_QUALITY = text(
    "DELETE FROM quality_rollups WHERE day BETWEEN :day_from AND :day_to"
)
_REBUILD_DELETE_CONFUSION = text(
    "DELETE FROM action_confusion_rollups WHERE day BETWEEN :day_from AND :day_to"
)
_REBUILD_VERDICT_CTES = _verdict_ctes(
    verdict_source="FROM audits a",
    verdict_where=_RANGE,
    appeal_source="FROM appeals ap",
    appeal_where=f"ap.decision_id IS NOT NULL AND {_DECISION_RANGE}",
)
# Decisions of batches not applied yet are left to the intake job that will count them.
_REBUILD_QUALITY = text(
    f"""
    WITH {
        _decision_facts(
            _DECISION_RANGE + " AND d.intake_batch_id NOT IN"
            " (SELECT batch_id FROM intake_batches WHERE applied_at IS NULL)"
        )
    },
    {_REBUILD_VERDICT_CTES}
    INSERT INTO quality_rollups ({_KEY}, {", ".join(DECISION_COUNTERS + VERDICT_COUNTERS)})
    SELECT {_KEY}, {", ".join(f"coalesce({c}, 0)" for c in DECISION_COUNTERS + VERDICT_COUNTERS)}
    FROM decision_counts FULL JOIN verdict_side USING ({_KEY})
    """
)
_REBUILD_CONFUSION = text(
    f"""
    WITH {_REBUILD_VERDICT_CTES}
    INSERT INTO action_confusion_rollups ({_KEY}, action, expected_action, verdicts)
    SELECT {_KEY}, action, expected_action, verdicts FROM confusion_counts
    """
)


async def rebuild_quality_rollups(
    session: AsyncSession, *, day_from: date | None = None, day_to: date | None = None
) -> int:
    """Recompute both rollup tables from the raw tables for the market-local days
    ``day_from`` to ``day_to`` inclusive (every day when ``None``), and the day rollups of
    those days from them (``shared.analytics.day_rollups``); returns the number of
    ``quality_rollups`` rows written.

    DELETE and INSERT ... SELECT, set-based. Holds the intake lock exclusively, so no intake
    job adds to the rows while they are rebuilt; decisions of batches still pending are
    left to their job. Dirty rows are left in place: recomputing a slice again is harmless.
    """
    low = day_from or date.min
    high = day_to or date.max
    if low > high:
        raise ValueError(f"day_from {low} is after day_to {high}")
    values = {"day_from": low, "day_to": high}
    # One big aggregation: compiling it (JIT) costs more than it saves at a day's size, and
    # its sorts and hashes should stay in memory.
    await session.execute(_NO_JIT)
    await session.execute(_REBUILD_WORK_MEM)
    await session.execute(_LOCK_INTAKE_EXCLUSIVE)
    await session.execute(_REBUILD_DELETE_QUALITY, values)
    await session.execute(_REBUILD_DELETE_CONFUSION, values)
    written = await session.execute(_REBUILD_QUALITY, values)
    await session.execute(_REBUILD_CONFUSION, values)
    await rebuild_day_rollups(session, day_from=low, day_to=high)
    return int(written.rowcount)  # type: ignore[attr-defined]  # CursorResult of an INSERT


__all__ = [
    "MAX_BATCHES_PER_RUN",
    "MAX_DIRTY_PER_RUN",
    "Slice",
    "apply_dirty_slices",
    "apply_pending_intake_batches",
    "mark_decision_slices_dirty",
    "mark_slices_dirty",
    "mark_verdict_slices_dirty",
    "rebuild_quality_rollups",
    "recompute_slices",
    "refresh_rollups",
]
