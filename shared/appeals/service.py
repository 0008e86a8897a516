"""Appeal outcomes from the appeals platform, and the appeal-overturn rate.

An appeal is linked to the decision it concerns: by ``original_event_id`` (an event id of
the same source) when the appeal names one, otherwise to the source's latest decision on
the same ``content_id``. An appeal naming an ``original_event_id`` that was never received
stays unlinked rather than being pinned on another decision of the same content (which
could be another moderator's). Unlinked appeals are stored but count in no report.

The overturn rate of a slice is reversed / appealed over *decisions* (a decision appealed
twice counts once; it counts as reversed when any of its appeals reversed it), selected by
the decision's day in its market's time zone, like the accuracy report.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Date, cast, distinct, func, select
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.rollups import mark_decision_slices_dirty
from shared.core.auth import Principal, Role
from shared.core.errors import BadRequest, DomainError, Forbidden, UnprocessableEntity
from shared.decisions.queries import visible_decisions
from shared.models import Appeal, Decision, DecisionEventKey, Market
from shared.schemas.appeals import (
    AppealBatch,
    AppealEvent,
    AppealOverturnQuery,
    AppealOverturnRow,
)
from shared.schemas.decisions import MAX_BATCH_EVENTS, IntakeResult
from shared.stats.intervals import wilson_interval

_BATCH = TypeAdapter(AppealBatch)
_EVENT = TypeAdapter(AppealEvent)

DEFAULT_WINDOW_DAYS = 30


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(error["loc"]), "msg": error["msg"]} for error in exc.errors()]


def _invalid(exc: ValidationError) -> DomainError:
    """The 400 (not JSON) or 422 (not valid, naming the event's index) for a bad body."""
    errors = _errors(exc)
    first = errors[0]
    if exc.errors()[0]["type"] == "json_invalid":
        return BadRequest(f"body is not valid JSON: {first['msg']}")
    loc = first["loc"]
    if loc[:1] == ["events"] and len(loc) > 1:
        where = ".".join(str(part) for part in loc[2:])
        detail = f"event {loc[1]} is invalid: {where + ': ' if where else ''}{first['msg']}"
    elif loc == ["events"]:
        detail = f"'events' must be a list of 1 to {MAX_BATCH_EVENTS} appeal events: {first['msg']}"
    elif not loc:
        detail = 'body must be a JSON object: one appeal event, or {"events": [...]}'
    else:
        detail = f"invalid appeal event: {'.'.join(str(p) for p in loc)}: {first['msg']}"
    return UnprocessableEntity(detail, errors=errors)


def parse_appeal_events(body: bytes, *, max_events: int) -> list[AppealEvent]:
    """One appeal event or ``{"events": [...]}``, all valid, or a 400/422 naming what is wrong.

    An ``event_id`` repeated inside one batch is refused (422 naming the later index): two
    different appeals under one idempotency key would silently lose one.
    """
    if b'"events"' in body:
        try:
            events = _BATCH.validate_json(body).events
        except ValidationError as exc:
            batch_without_events = any(
                error["type"] == "missing" and tuple(error["loc"]) == ("events",)
                for error in exc.errors()
            )
            if not batch_without_events:
                raise _invalid(exc) from exc
        else:
            if len(events) > max_events:
                raise UnprocessableEntity(
                    f"'events' must be a list of 1 to {max_events} appeal events",
                    errors=[{"loc": ["events"], "msg": f"must hold 1 to {max_events} events"}],
                )
            first_index: dict[str, int] = {}
            for index, event in enumerate(events):
                seen = first_index.setdefault(event.event_id, index)
                if seen != index:
                    raise UnprocessableEntity(
                        f"event {index} repeats the event_id of event {seen}",
                        errors=[
                            {"loc": ["events", index, "event_id"], "msg": "repeated in this batch"}
                        ],
                    )
            return events
    try:
        return [_EVENT.validate_json(body)]
    except ValidationError as exc:
        raise _invalid(exc) from exc


async def store_appeals(
    session: AsyncSession, *, source_id: uuid.UUID, events: Sequence[AppealEvent]
) -> IntakeResult:
    """Store each appeal once per ``(source, event_id)``, linked to its decision.

    Concurrent requests carrying the same appeal store it once (``ON CONFLICT DO NOTHING``
    on the unique key); rows are inserted in ``event_id`` order so that two such requests
    cannot deadlock.
    """
    event_ids = sorted({e.original_event_id for e in events if e.original_event_id is not None})
    content_ids = sorted({e.content_id for e in events if e.original_event_id is None})
    by_event: dict[str, tuple[int, str, str]] = {}
    if event_ids:
        # Through the idempotency key: its primary key finds the event, and (id, decided_at)
        # the one partition that holds the decision.
        rows = await session.execute(
            select(Decision.event_id, Decision.id, Decision.moderator_id, Decision.action)
            .join(
                DecisionEventKey,
                (DecisionEventKey.decision_id == Decision.id)
                & (DecisionEventKey.decided_at == Decision.decided_at),
            )
            .where(
                DecisionEventKey.source_id == source_id, DecisionEventKey.event_id.in_(event_ids)
            )
        )
        by_event = {row.event_id: (row.id, row.moderator_id, row.action) for row in rows}
    by_content: dict[str, tuple[int, str, str]] = {}
    if content_ids:
        rows = await session.execute(
            select(Decision.content_id, Decision.id, Decision.moderator_id, Decision.action)
            .where(Decision.source_id == source_id, Decision.content_id.in_(content_ids))
            .order_by(Decision.content_id, Decision.decided_at.desc(), Decision.id.desc())
            .ext(distinct_on(Decision.content_id))
        )
        by_content = {row.content_id: (row.id, row.moderator_id, row.action) for row in rows}
    values = []
    for event in sorted(events, key=lambda e: e.event_id):
        if event.original_event_id is not None:
            linked = by_event.get(event.original_event_id)
        else:
            linked = by_content.get(event.content_id)
        values.append(
            {
                "id": uuid.uuid4(),
                "source_id": source_id,
                "event_id": event.event_id,
                "content_id": event.content_id,
                "original_event_id": event.original_event_id,
                "decision_id": linked[0] if linked else None,
                "moderator_id": linked[1] if linked else None,
                "original_action": event.original_action or (linked[2] if linked else None),
                "outcome": event.outcome,
                "decided_at": event.decided_at,
            }
        )
    inserted = (
        await session.execute(
            insert(Appeal)
            .values(values)
            .on_conflict_do_nothing(index_elements=[Appeal.source_id, Appeal.event_id])
            .returning(Appeal.id, Appeal.decision_id)
        )
    ).all()
    accepted = len(inserted)
    # The appealed decisions' slices count appeals and reversals (unlinked ones count nowhere).
    await mark_decision_slices_dirty(
        session, decision_ids=[row.decision_id for row in inserted if row.decision_id is not None]
    )
    return IntakeResult(accepted=accepted, duplicates=len(values) - accepted)


def overturn_row(key: str, *, appealed: int, reversed_: int) -> AppealOverturnRow:
    """A report row from a slice's counts: the overturn rate and its Wilson 95 % interval
    (DESIGN.md: every proportion is shown with it)."""
    low, high = wilson_interval(reversed_, appealed)
    return AppealOverturnRow(
        key=key,
        appealed=appealed,
        reversed=reversed_,
        rate=reversed_ / appealed,
        ci_low=low,
        ci_high=high,
    )


def report_days(query: AppealOverturnQuery, *, today: date) -> tuple[date, date]:
    """The inclusive days counted: by default the 30 days ending ``to`` (default today)."""
    day_to = query.to or today
    day_from = query.from_ or day_to - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    if day_from > day_to:
        raise UnprocessableEntity(
            "'from' must not be after 'to'",
            errors=[{"loc": ["query", "from"], "msg": "must not be after 'to'"}],
        )
    return day_from, day_to


async def appeal_overturn_report(
    session: AsyncSession,
    *,
    query: AppealOverturnQuery,
    today: date,
    viewer: Principal,
) -> list[AppealOverturnRow]:
    """Appealed and reversed decisions per moderator, queue or market, with Wilson bounds.

    Counted over the decisions ``viewer`` may see (``visible_decisions``): a moderator key
    its own appeals (asking for another's is a 403), a market-scoped key its markets
    (asking for another market is a 403).
    """
    if viewer.role == Role.MODERATOR and query.moderator_id not in (None, viewer.reviewer_id):
        raise Forbidden("a moderator key sees only its own reviewer's appeals")
    if query.market is not None and not viewer.can_see_market(query.market):
        raise Forbidden(f"this key may not see market {query.market}")
    day_from, day_to = report_days(query, today=today)
    key = {
        "moderator": Decision.moderator_id,
        "queue": Decision.queue,
        "market": Decision.market,
    }[query.group_by]
    day = cast(func.timezone(func.coalesce(Market.time_zone, "UTC"), Decision.decided_at), Date)
    appealed = func.count(distinct(Appeal.decision_id))
    reversed_ = func.count(distinct(Appeal.decision_id)).filter(Appeal.outcome == "reversed")
    statement = (
        select(key.label("key"), appealed.label("appealed"), reversed_.label("reversed"))
        .select_from(Appeal)
        .join(Decision, Decision.id == Appeal.decision_id)
        .outerjoin(Market, Market.code == Decision.market)
        .where(day >= day_from, day <= day_to, visible_decisions(viewer))
        .group_by(key)
        .order_by(key)
    )
    if query.market is not None:
        statement = statement.where(Decision.market == query.market)
    if query.queue is not None:
        statement = statement.where(Decision.queue == query.queue)
    if query.moderator_id is not None:
        statement = statement.where(Decision.moderator_id == query.moderator_id)
    rows = await session.execute(statement)
    return [
        overturn_row(row.key, appealed=int(row.appealed), reversed_=int(row.reversed))
        for row in rows
    ]
