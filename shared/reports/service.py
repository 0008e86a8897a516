"""The accuracy report, counted in SQL from the verdicts.

``accuracy_rows`` is the one place that decides what counts: non-golden verdicts, by their
``effective_outcome`` (so a verdict overturned on dispute is correct), on their decision's
market-local ``day``; by policy, under every policy the moderator applied or the auditor
expected, each once per verdict. A scheduled rollup can later keep the same counts per (day, market,
queue, moderator) and per policy label and feed them to ``shared.reports.rows.accuracy_row``:
the answers stay the same because the rows are made from counts alone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import func, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.errors import Forbidden, UnprocessableEntity
from shared.models import Audit, Verdict
from shared.reports.rows import NO_POLICY_KEY, accuracy_row, report_window
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
) -> list[AccuracyRow]:
    """Accuracy per slice over the market-local days ``day_from`` to ``day_to`` inclusive.

    One GROUP BY query; Python only turns each slice's two counts into a row. Golden audits
    never count; ``effective_outcome`` makes an overturned verdict correct. Rows are sorted
    by key in byte order (days chronologically).
    """
    audited = func.count().label("audited")
    correct = func.count().filter(Verdict.effective_outcome == "correct").label("correct")
    source = Verdict.__table__.join(Audit.__table__, Audit.id == Verdict.audit_id)
    if group_by == "policy":
        # The policies the moderator applied and those the auditor expected, each once: an
        # approve that should have been a hate_speech removal counts under hate_speech, so
        # under-enforcement shows where it happened instead of under "(none)".
        # (array_cat with a NULL array, a correct verdict's expected labels, is the other.)
        concerned = func.array_cat(Audit.policy_labels, Verdict.expected_labels)
        label = (
            select(func.unnest(concerned).label("label"))
            .distinct()
            .correlate(Audit, Verdict)
            .lateral("policy_label")
        )
        key: Any = func.coalesce(label.c.label, literal(NO_POLICY_KEY)).label("key")
        # LEFT JOIN: a verdict about no policy at all yields one NULL label, "(none)".
        source = source.outerjoin(label, true())
        order: Any = key.collate("C")
    elif group_by == "day":
        key = Verdict.day.label("key")
        order = key
    else:
        column = {"moderator": Verdict.moderator_id, "queue": Verdict.queue}.get(
            group_by, Verdict.market
        )
        key = column.label("key")
        order = key.collate("C")
    query = (
        select(key, audited, correct)
        .select_from(source)
        .where(
            Audit.is_golden.is_(False),
            Verdict.day >= day_from,
            Verdict.day <= day_to,
        )
    )
    if markets is not None:
        query = query.where(Verdict.market.in_(list(markets)))
    if queue is not None:
        query = query.where(Verdict.queue == queue)
    if only_moderator is not None:
        query = query.where(Verdict.moderator_id == only_moderator)
    query = query.group_by(key).order_by(order)
    result = await session.execute(query)
    return [
        accuracy_row(
            row.key.isoformat() if isinstance(row.key, date) else row.key,
            audited=row.audited,
            correct=row.correct,
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
    rows = await accuracy_rows(
        session,
        group_by=query.group_by,
        day_from=day_from,
        day_to=day_to,
        markets=scope.markets,
        queue=query.queue,
        only_moderator=scope.only_moderator,
    )
    return ComputedReport(rows=rows, day_from=day_from, day_to=day_to)
