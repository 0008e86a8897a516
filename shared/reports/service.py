"""The accuracy report, summed from the analytics rollups.

What counts is decided once, where the rollups are kept (``shared.analytics.rollups``):
non-golden verdicts, by their ``effective_outcome`` (so a verdict overturned on dispute is
correct), on their decision's market-local ``day``; by policy, under every policy the
moderator applied or the auditor expected, each once per verdict. ``accuracy_rows`` sums the
rollup rows of the slices asked for (the total rows, or the policy rows for
``group_by=policy``), so its cost grows with the number of slices, never with history;
``shared.reports.rows.accuracy_row`` turns each key's two counts into a row.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.rollups import refresh_rollups
from shared.core.errors import Forbidden, UnprocessableEntity
from shared.models import ALL_POLICIES, QualityRollup
from shared.reports.rows import accuracy_row, report_window
from shared.schemas.reports import AccuracyGroup, AccuracyQuery, AccuracyRow


class Viewer(Protocol):
    """Who asks for a report (the API's ``Principal`` is one)."""

    @property
    def role(self) -> str: ...
    @property
    def reviewer_id(self) -> str | None: ...
    @property
    def markets(self) -> tuple[str, ...] | None: ...


@dataclass(frozen=True, slots=True)
class ReportScope:
    """The verdicts a viewer may count: ``None`` means no restriction."""

    markets: tuple[str, ...] | None
    only_moderator: str | None


@dataclass(frozen=True, slots=True)
class ComputedReport:
    """The rows, and the inclusive market-local days they count (defaults resolved)."""

    rows: list[AccuracyRow]
    day_from: date
    day_to: date


def report_scope(viewer: Viewer, *, market: str | None, moderator_id: str | None) -> ReportScope:
    """What ``viewer`` may see, narrowed by the filters asked for; 403 beyond its reach.

    A moderator key counts only its own reviewer's verdicts, whatever the grouping (so
    ``group_by=moderator`` gives it its own row alone); naming another moderator is 403. A
    market-scoped key counts only its markets; naming another market is 403.
    """
    only_moderator = moderator_id
    if viewer.role == "moderator":
        if viewer.reviewer_id is None:
            raise Forbidden("this moderator key is bound to no reviewer")
        if moderator_id not in (None, viewer.reviewer_id):
            raise Forbidden("a moderator key sees only its own reviewer's scores")
        only_moderator = viewer.reviewer_id
    markets = viewer.markets
    if market is not None:
        if markets is not None and market not in markets:
            raise Forbidden(f"this key may not see market {market}")
        markets = (market,)
    return ReportScope(markets=markets, only_moderator=only_moderator)


async def accuracy_rows(
    session: AsyncSession,
    *,
    group_by: AccuracyGroup,
    day_from: date,
    day_to: date,
    markets: Collection[str] | None,
    queue: str | None,
    only_moderator: str | None,
    policy: str | None = None,
) -> list[AccuracyRow]:
    """Accuracy per slice over the market-local days ``day_from`` to ``day_to`` inclusive.

    One GROUP BY over ``quality_rollups``; Python only turns each key's two counts into a
    row. Keys without a verdict (decisions only) have no row. Rows are sorted by key in byte
    order (days chronologically). Reads the rollups as they are: call ``refresh_rollups``
    first in the same transaction to count every change committed before (as
    ``accuracy_report`` does). ``policy`` keeps the verdicts concerning that policy (the
    moderator applied it or the auditor expected it).
    """
    table = QualityRollup
    audited = func.sum(table.audited)
    correct = func.sum(table.correct)
    key: Any
    if group_by == "policy":
        # The policy rows: each verdict once under each policy it concerns, "(none)" when
        # it concerns none (shared.models.analytics).
        key = table.policy
        rows_of = table.policy != ALL_POLICIES
    else:
        key = {
            "day": table.day,
            "moderator": table.moderator_id,
            "queue": table.queue,
            "market": table.market,
        }[group_by]
        rows_of = table.policy == ALL_POLICIES
    if policy is not None:
        rows_of = table.policy == policy
    order: Any = key if group_by == "day" else key.collate("C")
    query = (
        select(key.label("key"), audited.label("audited"), correct.label("correct"))
        .where(rows_of, table.day >= day_from, table.day <= day_to)
        .group_by(key)
        .having(audited > 0)
        .order_by(order)
    )
    if markets is not None:
        query = query.where(table.market.in_(list(markets)))
    if queue is not None:
        query = query.where(table.queue == queue)
    if only_moderator is not None:
        query = query.where(table.moderator_id == only_moderator)
    result = await session.execute(query)
    return [
        accuracy_row(
            row.key.isoformat() if isinstance(row.key, date) else row.key,
            audited=int(row.audited),
            correct=int(row.correct),
        )
        for row in result
    ]


async def accuracy_report(
    session: AsyncSession, *, query: AccuracyQuery, viewer: Viewer, today: date | None = None
) -> ComputedReport:
    """The report ``viewer`` asked for, within what it may see (403 beyond, 422 if bad)."""
    scope = report_scope(viewer, market=query.market, moderator_id=query.moderator_id)
    try:
        day_from, day_to = report_window(
            query.from_, query.to, today=today or datetime.now(UTC).date()
        )
    except ValueError as exc:
        raise UnprocessableEntity(
            str(exc), errors=[{"loc": ["query", "from"], "msg": str(exc)}]
        ) from exc
    # Read-your-writes: every verdict, ruling and appeal committed before this request.
    await refresh_rollups(session)
    rows = await accuracy_rows(
        session,
        group_by=query.group_by,
        day_from=day_from,
        day_to=day_to,
        markets=scope.markets,
        queue=query.queue,
        only_moderator=scope.only_moderator,
        policy=query.policy,
    )
    return ComputedReport(rows=rows, day_from=day_from, day_to=day_to)
