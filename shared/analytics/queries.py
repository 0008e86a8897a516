"""Reading the rollups: every analytics report's numbers are sums of rollup rows.

One GROUP BY over ``quality_rollups`` (or ``action_confusion_rollups``) per question, bounded
by the scope's days, so a report costs what its slices cost and never scans decisions or
verdicts. Which policy rows to read is decided here, once: the slice totals
(``ALL_POLICIES``) unless the report groups or filters by policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import ColumnElement, Date, Float, Select, Table, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.filters import AnalyticsScope
from shared.models.analytics import (
    ALL_POLICIES,
    ROLLUP_COUNTERS,
    ActionConfusionRollup,
    QualityRollup,
    QueueDayRollup,
)

Dimension = Literal[
    "day", "week", "month", "market", "queue", "moderator", "policy", "action", "expected_action"
]
KeyPart = str | date

_QUALITY: Table = QualityRollup.__table__  # type: ignore[assignment]  # a mapped class's table
_CONFUSION: Table = ActionConfusionRollup.__table__  # type: ignore[assignment]
_QUEUE_DAY: Table = QueueDayRollup.__table__  # type: ignore[assignment]

# The counters a report may sum (``shared.models.analytics.RollupCounters``).
QUALITY_COUNTERS: tuple[str, ...] = ROLLUP_COUNTERS


@dataclass(frozen=True, slots=True)
class RollupSum:
    """One group: its key parts (in ``group_by`` order) and the summed counters."""

    key: tuple[KeyPart, ...]
    counts: Mapping[str, int]

    def __getitem__(self, counter: str) -> int:
        return self.counts[counter]


def _dimension(table: Table, dimension: Dimension) -> ColumnElement[Any]:
    columns = table.c
    if dimension in ("week", "month"):
        # ISO weeks start on Monday, which is what date_trunc('week') gives.
        return cast(func.date_trunc(dimension, columns.day), Date)
    if dimension == "moderator":
        return columns.moderator_id
    return columns[dimension]


def _sums_select(
    table: Table,
    *,
    scope: AnalyticsScope,
    group_by: Sequence[Dimension],
    counters: Sequence[str],
) -> Select[Any]:
    keys = [
        _dimension(table, dimension).label(f"k{index}") for index, dimension in enumerate(group_by)
    ]
    # Summed as float8: exact for whole numbers below 2**53 (every count and millisecond total
    # kept here), and much cheaper than sum(bigint)'s numeric, whose variable-size state also
    # keeps PostgreSQL from hashing tens of thousands of groups in work_mem (it sorts instead).
    sums = [
        func.coalesce(func.sum(cast(table.c[name], Float)), 0.0).label(name) for name in counters
    ]
    query = select(*keys, *sums).where(table.c.day >= scope.day_from, table.c.day <= scope.day_to)
    if table is _QUEUE_DAY:
        # Every moderator's slice totals, summed: nothing to choose between policy rows.
        if scope.moderator_id is not None or scope.policy is not None:
            raise ValueError("queue_day_rollups have no moderator or policy to filter by")
        if {"moderator", "policy"} & set(group_by):
            raise ValueError("queue_day_rollups have no moderator or policy to group by")
    elif "policy" in group_by:
        query = query.where(table.c.policy != ALL_POLICIES)
        if scope.policy is not None:
            query = query.where(table.c.policy == scope.policy)
    else:
        query = query.where(table.c.policy == (scope.policy or ALL_POLICIES))
    if scope.markets is not None:
        query = query.where(table.c.market.in_(scope.markets))
    if scope.queue is not None:
        query = query.where(table.c.queue == scope.queue)
    if scope.moderator_id is not None and table is not _QUEUE_DAY:
        query = query.where(table.c.moderator_id == scope.moderator_id)
    if keys:
        query = query.group_by(*keys)
    return query


async def _sum_rollups(
    session: AsyncSession,
    table: Table,
    *,
    scope: AnalyticsScope,
    group_by: Sequence[Dimension],
    counters: Sequence[str],
) -> list[RollupSum]:
    query = _sums_select(table, scope=scope, group_by=group_by, counters=counters)
    if group_by:
        query = query.order_by(
            *(
                column if dimension in ("day", "week", "month") else column.collate("C")
                for column, dimension in zip(query.selected_columns, group_by, strict=False)
            )
        )
    result = await session.execute(query)
    width = len(group_by)
    return [
        RollupSum(
            key=tuple(row[:width]),
            counts={name: int(value) for name, value in zip(counters, row[width:], strict=True)},
        )
        for row in result
    ]


def quality_sums_select(
    *,
    scope: AnalyticsScope,
    group_by: Sequence[Dimension],
    counters: Sequence[str] = QUALITY_COUNTERS,
) -> Select[Any]:
    """The query behind ``sum_quality_rollups``, unordered, for a report that aggregates its
    groups further in SQL (as a subquery): key columns ``k0``, ``k1``, ... in ``group_by``
    order, then the summed ``counters`` under their own names."""
    unknown = set(counters) - set(QUALITY_COUNTERS)
    if unknown:
        raise ValueError(f"not quality_rollups counters: {sorted(unknown)}")
    return _sums_select(_QUALITY, scope=scope, group_by=group_by, counters=counters)


async def sum_quality_rollups(
    session: AsyncSession,
    *,
    scope: AnalyticsScope,
    group_by: Sequence[Dimension] = (),
    counters: Sequence[str] = QUALITY_COUNTERS,
) -> list[RollupSum]:
    """The ``counters`` of ``quality_rollups`` summed per ``group_by`` within ``scope``.

    Without ``group_by`` one row (all zeros when nothing matches). Groups come sorted by their
    key parts: periods chronologically, text in byte order. Grouping by ``policy`` reads the
    policy rows (a verdict counts under each policy it concerns), anything else the totals.
    """
    unknown = set(counters) - set(QUALITY_COUNTERS)
    if unknown:
        raise ValueError(f"not quality_rollups counters: {sorted(unknown)}")
    return await _sum_rollups(session, _QUALITY, scope=scope, group_by=group_by, counters=counters)


async def sum_queue_day_rollups(
    session: AsyncSession,
    *,
    scope: AnalyticsScope,
    group_by: Sequence[Dimension] = (),
    counters: Sequence[str] = QUALITY_COUNTERS,
) -> list[RollupSum]:
    """What ``sum_quality_rollups`` gives for the slice totals, read from
    ``queue_day_rollups`` (every moderator's totals per market, queue and day): for a scope
    with no moderator or policy filter, grouped by periods, market or queue (ValueError
    otherwise; ``shared.analytics.day_rollups.queue_day_rollups_cover`` says which)."""
    unknown = set(counters) - set(QUALITY_COUNTERS)
    if unknown:
        raise ValueError(f"not quality_rollups counters: {sorted(unknown)}")
    return await _sum_rollups(
        session, _QUEUE_DAY, scope=scope, group_by=group_by, counters=counters
    )


async def sum_action_confusion(
    session: AsyncSession,
    *,
    scope: AnalyticsScope,
    group_by: Sequence[Dimension] = ("action", "expected_action"),
) -> list[RollupSum]:
    """Verdicts of ``action_confusion_rollups`` summed per ``group_by`` within ``scope``."""
    return await _sum_rollups(
        session,
        _CONFUSION,
        scope=scope,
        group_by=group_by,
        counters=("verdicts",),
    )
