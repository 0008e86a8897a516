"""Keeping the day rollups (``queue_day_rollups``, ``population_day_rollups``) true.

Both tables are functions of the slice totals (``ALL_POLICIES`` rows) of ``quality_rollups``
of one market-local day: the counters summed per (day, market, queue), and the population
estimate's strata sums per day, over every market and over each market
(``shared.models.analytics``). The briefing reads them instead of the finer rows.

Whatever changes the ``quality_rollups`` rows of some days recomputes those days here, at
its end and in its own transaction (``shared.analytics.rollups``: the dirty slices, the
intake batches, a rebuild). The recomputation first takes one transaction-scoped advisory
lock, so the last transaction to recompute a day started its statements after every other
one that changed the day had committed (each of them held the lock until its commit) and
reads their rows as well as its own (READ COMMITTED: each statement sees what was committed
when it began): a day's rows always end as the function of its committed rollups. The lock
is taken after the rollup work, with nothing waited for after it but the commit.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Table,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.strata import strata_sum_columns
from shared.models.analytics import (
    ALL_MARKETS,
    ALL_POLICIES,
    ROLLUP_COUNTERS,
    PopulationDayRollup,
    QualityRollup,
    QueueDayRollup,
)

if TYPE_CHECKING:
    # Annotations only: shared.analytics.filters reaches shared.analytics.rollups, which
    # imports this module.
    from shared.analytics.filters import AnalyticsScope

_QUALITY: Table = QualityRollup.__table__  # type: ignore[assignment]  # a mapped class's table
_QUEUE_DAY: Table = QueueDayRollup.__table__  # type: ignore[assignment]
_POPULATION_DAY: Table = PopulationDayRollup.__table__  # type: ignore[assignment]

# Taken exclusively by every recomputation of day rollups, held to the commit.
_DAY_ROLLUPS_LOCK = 0x706C756D_62000002  # "plumb" + 2
_LOCK = text(f"SELECT pg_advisory_xact_lock({_DAY_ROLLUPS_LOCK})")

_POPULATION_COLUMNS = (
    "decisions",
    "covered_decisions",
    "weighted_correct",
    "variance_sum",
    "audited",
    "correct",
)


def queue_day_rollups_cover(scope: AnalyticsScope) -> bool:
    """Whether ``queue_day_rollups`` hold the sums of ``scope`` (no moderator or policy
    filter: their rows sum every moderator's totals)."""
    return scope.moderator_id is None and scope.policy is None


def population_day_rollups_cover(scope: AnalyticsScope) -> bool:
    """Whether ``population_day_rollups`` hold the strata sums of ``scope``: every market or
    a single one, and no other filter (a set of markets has strata of its own)."""
    return (
        queue_day_rollups_cover(scope)
        and scope.queue is None
        and (scope.markets is None or len(scope.markets) == 1)
    )


def _strata_sums(day_filter: ColumnElement[bool], *, per_market: bool) -> Any:
    """Per day (and market), the strata sums of the totals rows ``day_filter`` keeps: the
    strata (moderator, day) of every market, or (moderator, market, day) of each."""
    keys: list[Any] = [_QUALITY.c.day, _QUALITY.c.moderator_id]
    if per_market:
        keys.insert(1, _QUALITY.c.market)
    strata = (
        select(
            *keys,
            # Summed as float8, as the reports' strata are (shared.analytics.queries).
            *(
                func.sum(cast(_QUALITY.c[name], Float)).label(name)
                for name in ("decisions", "audited", "correct")
            ),
        )
        .where(_QUALITY.c.policy == ALL_POLICIES, day_filter)
        .group_by(*keys)
        .subquery("strata")
    )
    market: Any = strata.c.market if per_market else literal(ALL_MARKETS)
    group: list[Any] = [strata.c.day, strata.c.market] if per_market else [strata.c.day]
    return select(strata.c.day, market, *strata_sum_columns(strata)).group_by(*group)


async def _recompute(session: AsyncSession, day_of: Any) -> None:
    """Replace the day rollups of the days that ``day_of(table)`` keeps by a recomputation
    from ``quality_rollups``, under the lock."""
    await session.execute(_LOCK)
    await session.execute(delete(_QUEUE_DAY).where(day_of(_QUEUE_DAY)))
    await session.execute(delete(_POPULATION_DAY).where(day_of(_POPULATION_DAY)))
    keys = [_QUALITY.c.day, _QUALITY.c.market, _QUALITY.c.queue]
    totals = (
        select(*keys, *(func.sum(_QUALITY.c[name]) for name in ROLLUP_COUNTERS))
        .where(_QUALITY.c.policy == ALL_POLICIES, day_of(_QUALITY))
        .group_by(*keys)
    )
    await session.execute(
        insert(_QUEUE_DAY).from_select(["day", "market", "queue", *ROLLUP_COUNTERS], totals)
    )
    for per_market in (False, True):
        await session.execute(
            insert(_POPULATION_DAY).from_select(
                ["day", "market", *_POPULATION_COLUMNS],
                _strata_sums(day_of(_QUALITY), per_market=per_market),
            )
        )


async def recompute_day_rollups(session: AsyncSession, *, days: Collection[date]) -> None:
    """Recompute the day rollups of ``days`` from their ``quality_rollups`` totals, in the
    caller's transaction (call it after changing those rows, as the last rollup work of the
    transaction: the lock it takes is held to the commit)."""
    if not days:
        return
    # One array parameter, not IN (...): the statements' text is the same whatever the
    # number of days, so each connection prepares them once (an IN list is new SQL, and a
    # new prepared statement on every connection, for each count).
    listed = bindparam("days", sorted(set(days)), type_=ARRAY(Date))
    await _recompute(session, lambda table: table.c.day == any_(listed))


async def rebuild_day_rollups(session: AsyncSession, *, day_from: date, day_to: date) -> None:
    """Recompute the day rollups of the days ``day_from`` to ``day_to`` inclusive (the
    rebuild of ``quality_rollups`` calls it at its end)."""
    await _recompute(session, lambda table: table.c.day.between(day_from, day_to))


__all__ = [
    "population_day_rollups_cover",
    "queue_day_rollups_cover",
    "rebuild_day_rollups",
    "recompute_day_rollups",
]
