"""Calibration sessions: creation, blind labeling, close, results, notes and the trend.

Who may do what:

* create: qa_auditor, manager, admin (a market-scoped key only in its markets);
* label: a participant (the key's reviewer is in the session), whatever the key's role;
* see the session and (after close) its results: participants, the creator, managers and
  admins (market-scoped keys only in their markets);
* close and write item notes: the creator, managers and admins.

The creator is the key that created the session, or any key of the same reviewer.

Results are computed once, at close (labels cannot change afterwards), and stored; item
notes, which can still be written after close, are read fresh.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, any_, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.events import CalibrationClosed, CalibrationOpened, EventType, record_event
from shared.models import CalibrationItem, CalibrationLabel, CalibrationSession, Decision
from shared.models.base import utcnow
from shared.reference import register_markets, register_policies, register_reviewers
from shared.schemas.agreement import AgreementResult
from shared.schemas.calibration import (
    CONSENSUS_THRESHOLD,
    NO_VIOLATION,
    CalibrationCreate,
    CalibrationItemRead,
    CalibrationListItem,
    CalibrationQuery,
    CalibrationRead,
    CalibrationResults,
    CategoryAgreement,
    ItemResult,
    LabelRead,
    LabelsPut,
    ParticipantProgress,
    ParticipantResult,
    TrendPoint,
)
from shared.stats.agreement import encode_labels, summarize_ratings

OVERSEER_ROLES = frozenset({"admin", "manager"})


# --- who may do what --------------------------------------------------------------------


def is_participant(calibration: CalibrationSession, principal: Principal) -> bool:
    """Whether the caller's key is bound to one of the session's participants."""
    return principal.reviewer_id is not None and principal.reviewer_id in calibration.participants


def is_creator(calibration: CalibrationSession, principal: Principal) -> bool:
    """Whether the caller created the session (the same key, or the same reviewer)."""
    if principal.key_id == calibration.created_by_key_id:
        return True
    return (
        principal.reviewer_id is not None
        and principal.reviewer_id == calibration.created_by_reviewer_id
    )


def _is_overseer(calibration: CalibrationSession, principal: Principal) -> bool:
    return principal.role in OVERSEER_ROLES and principal.can_see_market(calibration.market)


def visible_calibrations(viewer: Principal) -> ColumnElement[bool]:
    """Which sessions ``viewer`` may see (list and read alike): those they take part in or
    created, and for managers and admins every session of their markets."""
    seen: list[ColumnElement[bool]] = [CalibrationSession.created_by_key_id == viewer.key_id]
    if viewer.reviewer_id is not None:
        seen.append(literal(viewer.reviewer_id) == any_(CalibrationSession.participants))
        seen.append(CalibrationSession.created_by_reviewer_id == viewer.reviewer_id)
    if viewer.role in OVERSEER_ROLES:
        seen.append(
            true() if viewer.markets is None else CalibrationSession.market.in_(viewer.markets)
        )
    return or_(*seen)


async def _check_can_view(
    session: AsyncSession, calibration: CalibrationSession, principal: Principal
) -> None:
    """403 (404 outside a market-scoped key's markets) unless ``visible_calibrations`` lets
    ``principal`` see the session; asked of the database so the rule is written once."""
    seen = await session.scalar(
        select(visible_calibrations(principal))
        .select_from(CalibrationSession)
        .where(CalibrationSession.id == calibration.id)
    )
    if not seen:
        if not principal.can_see_market(calibration.market):
            # Another market's session must not be revealed to exist: as if there were none.
            raise NotFound("calibration session not found")
        raise Forbidden(
            "only the session's participants, its creator, managers and admins may see it"
        )


async def _check_can_manage(
    session: AsyncSession, calibration: CalibrationSession, principal: Principal
) -> None:
    if not (is_creator(calibration, principal) or _is_overseer(calibration, principal)):
        await _check_can_view(session, calibration, principal)
        raise Forbidden("only the session's creator, managers and admins may do this")


def check_market_scope(principal: Principal, market: str) -> None:
    """A market-scoped key acts only on its markets: 403 otherwise."""
    if not principal.can_see_market(market):
        raise Forbidden(f"this key may not act on market '{market}'")


# --- reading ----------------------------------------------------------------------------


async def _load(
    session: AsyncSession, calibration_id: uuid.UUID, *, lock: str | None = None
) -> CalibrationSession:
    query = select(CalibrationSession).where(CalibrationSession.id == calibration_id)
    if lock == "update":
        query = query.with_for_update()
    elif lock == "share":
        query = query.with_for_update(read=True)
    calibration = await session.scalar(query)
    if calibration is None:
        raise NotFound("calibration session not found")
    return calibration


async def _items(session: AsyncSession, calibration_id: uuid.UUID) -> list[CalibrationItem]:
    return list(
        await session.scalars(
            select(CalibrationItem)
            .where(CalibrationItem.session_id == calibration_id)
            .order_by(CalibrationItem.position)
        )
    )


async def _labels(
    session: AsyncSession, calibration_id: uuid.UUID, *, reviewer_id: str | None = None
) -> list[CalibrationLabel]:
    query = select(CalibrationLabel).where(CalibrationLabel.session_id == calibration_id)
    if reviewer_id is not None:
        query = query.where(CalibrationLabel.reviewer_id == reviewer_id)
    # populate_existing: an upsert bypasses the identity map, so reload what is stored.
    query = query.order_by(CalibrationLabel.reviewer_id, CalibrationLabel.content_id)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


def _label_read(label: CalibrationLabel) -> LabelRead:
    return LabelRead(
        reviewer_id=label.reviewer_id,
        content_id=label.content_id,
        label=label.label,
        labeled_at=label.labeled_at,
    )


async def _read(
    session: AsyncSession, calibration: CalibrationSession, viewer: Principal
) -> CalibrationRead:
    """The session as ``viewer`` may see it: blind while open."""
    items = await _items(session, calibration.id)
    closed = calibration.status == "closed"
    all_labels = await _labels(session, calibration.id)
    per_item = Counter(label.content_id for label in all_labels)
    per_participant = Counter(label.reviewer_id for label in all_labels)
    hide_golden = not closed and is_participant(calibration, viewer)
    visible = (
        all_labels
        if closed
        else [label for label in all_labels if label.reviewer_id == viewer.reviewer_id]
    )
    return CalibrationRead(
        id=calibration.id,
        title=calibration.title,
        market=calibration.market,
        categories=list(calibration.categories),
        participants=list(calibration.participants),
        deadline=calibration.deadline,
        status="closed" if closed else "open",
        created_at=calibration.created_at,
        created_by_reviewer_id=calibration.created_by_reviewer_id,
        closed_at=calibration.closed_at,
        items=[
            CalibrationItemRead(
                content_id=item.content_id,
                decision_id=item.decision_id,
                golden=None if hide_golden else item.golden,
                golden_hidden=hide_golden and item.golden is not None,
                note=item.note,
                labeled=per_item[item.content_id],
            )
            for item in items
        ],
        progress=[
            ParticipantProgress(reviewer_id=reviewer, labeled=per_participant[reviewer])
            for reviewer in calibration.participants
        ],
        labels=[_label_read(label) for label in visible],
    )


async def get_calibration(
    session: AsyncSession, *, calibration_id: uuid.UUID, viewer: Principal
) -> CalibrationRead:
    """The session, its items and progress; labels as blindness allows (see `_read`)."""
    calibration = await _load(session, calibration_id)
    await _check_can_view(session, calibration, viewer)
    return await _read(session, calibration, viewer)


# --- creating ---------------------------------------------------------------------------


async def _check_decisions(session: AsyncSession, data: CalibrationCreate) -> None:
    """Every ``decision_id`` names an existing decision on the item's content: 422 otherwise."""
    wanted = {
        item.decision_id: (index, item.content_id)
        for index, item in enumerate(data.items)
        if item.decision_id is not None
    }
    if not wanted:
        return
    rows = await session.execute(
        select(Decision.id, Decision.content_id).where(Decision.id.in_(list(wanted)))
    )
    found: dict[int, str] = {row[0]: row[1] for row in rows}
    errors: list[dict[str, Any]] = []
    for decision_id, (index, content_id) in sorted(wanted.items(), key=lambda kv: kv[1][0]):
        loc: list[str | int] = ["body", "items", index, "decision_id"]
        if decision_id not in found:
            errors.append({"loc": loc, "msg": f"decision {decision_id} does not exist"})
        elif found[decision_id] != content_id:
            errors.append(
                {
                    "loc": loc,
                    "msg": f"decision {decision_id} is about content {found[decision_id]!r},"
                    f" not {content_id!r}",
                }
            )
    if errors:
        raise UnprocessableEntity(errors[0]["msg"], errors=errors)


async def create_calibration(
    session: AsyncSession, *, data: CalibrationCreate, actor: Principal
) -> CalibrationRead:
    """Open a session, register what it names, and notify its participants (an event)."""
    check_market_scope(actor, data.market)
    if data.deadline is not None and data.deadline <= utcnow():
        raise UnprocessableEntity(
            "the deadline is in the past",
            errors=[{"loc": ["body", "deadline"], "msg": "must be in the future"}],
        )
    await _check_decisions(session, data)
    await register_markets(session, [data.market])
    await register_policies(session, [c for c in data.categories if c != NO_VIOLATION])
    await register_reviewers(session, data.participants)
    calibration = CalibrationSession(
        id=uuid.uuid4(),
        title=data.title,
        market=data.market,
        categories=list(data.categories),
        participants=list(data.participants),
        deadline=data.deadline,
        status="open",
        created_by_key_id=actor.key_id,
        created_by_reviewer_id=actor.reviewer_id,
        created_at=utcnow(),
    )
    session.add(calibration)
    await session.flush()
    session.add_all(
        CalibrationItem(
            session_id=calibration.id,
            content_id=item.content_id,
            position=position,
            decision_id=item.decision_id,
            golden=item.golden,
        )
        for position, item in enumerate(data.items)
    )
    await session.flush()
    await record_event(
        session,
        type=EventType.CALIBRATION_OPENED,
        data=CalibrationOpened(
            id=calibration.id,
            title=calibration.title,
            market=calibration.market,
            participants=list(calibration.participants),
            deadline=calibration.deadline,
        ),
        market=calibration.market,
    )
    await record_change(
        session,
        actor=actor,
        action="calibration.created",
        entity_type="calibration",
        entity_id=calibration.id,
        after=data.model_dump(mode="json"),
    )
    return await _read(session, calibration, actor)


# --- labeling ---------------------------------------------------------------------------


async def save_labels(
    session: AsyncSession, *, calibration_id: uuid.UUID, labels: LabelsPut, actor: Principal
) -> list[LabelRead]:
    """Upsert the caller's labels item by item; returns all of the caller's labels.

    403 for a non-participant, 409 once the session is closed or past its deadline, 422 for
    an item not in the session or a label outside its categories; all or nothing.
    """
    # A share lock: a concurrent close waits for this request, and this one for a close.
    calibration = await _load(session, calibration_id, lock="share")
    if not is_participant(calibration, actor):
        raise Forbidden("only the session's participants may label (with a key bound to them)")
    if calibration.status == "closed":
        raise Conflict("the session is closed: labels can no longer change")
    if calibration.deadline is not None and utcnow() >= calibration.deadline:
        raise Conflict("the session's deadline has passed: labels can no longer change")
    item_ids = set(
        await session.scalars(
            select(CalibrationItem.content_id).where(CalibrationItem.session_id == calibration.id)
        )
    )
    categories = set(calibration.categories)
    errors: list[dict[str, Any]] = []
    for index, label in enumerate(labels.labels):
        if label.content_id not in item_ids:
            errors.append(
                {
                    "loc": ["body", "labels", index, "content_id"],
                    "msg": f"content {label.content_id!r} is not an item of this session",
                }
            )
        if label.label not in categories:
            errors.append(
                {
                    "loc": ["body", "labels", index, "label"],
                    "msg": f"label {label.label!r} is not one of the session's categories",
                }
            )
    if errors:
        raise UnprocessableEntity(errors[0]["msg"], errors=errors)
    assert actor.reviewer_id is not None  # a participant's key is bound to a reviewer
    reviewer_id = actor.reviewer_id
    changed = [label.content_id for label in labels.labels]
    before = {
        label.content_id: label.label
        for label in await _labels(session, calibration.id, reviewer_id=reviewer_id)
        if label.content_id in set(changed)
    }
    statement = insert(CalibrationLabel).values(
        [
            {
                "session_id": calibration.id,
                "content_id": label.content_id,
                "reviewer_id": reviewer_id,
                "label": label.label,
            }
            for label in labels.labels
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["session_id", "content_id", "reviewer_id"],
            set_={"label": statement.excluded.label, "labeled_at": func.now()},
        )
    )
    await record_change(
        session,
        actor=actor,
        action="calibration.labels_saved",
        entity_type="calibration",
        entity_id=calibration.id,
        before={"reviewer_id": reviewer_id, "labels": before},
        after={
            "reviewer_id": reviewer_id,
            "labels": {label.content_id: label.label for label in labels.labels},
        },
    )
    return [
        _label_read(label)
        for label in await _labels(session, calibration.id, reviewer_id=reviewer_id)
    ]


# --- results ----------------------------------------------------------------------------


def consensus(labels: Sequence[str]) -> tuple[str | None, float | None]:
    """The most chosen label and its share of the labels; a tie goes to the alphabetically
    first label. ``(None, None)`` when nobody labeled."""
    if not labels:
        return None, None
    votes = Counter(labels)
    label, count = min(votes.items(), key=lambda pair: (-pair[1], pair[0]))
    return label, count / len(labels)


def compute_results(
    *,
    categories: Sequence[str],
    participants: Sequence[str],
    items: Sequence[tuple[str, str | None]],
    labels: dict[tuple[str, str], str],
) -> CalibrationResults:
    """A closed session's results. No I/O.

    ``items`` are ``(content_id, golden)`` in the session's order; ``labels`` maps
    ``(reviewer_id, content_id)`` to the label. The overall agreement is
    `summarize_ratings` at the nominal level on the participants x items matrix (null where
    a participant left an item unlabeled) over the session's categories: exactly what
    ``POST /v1/metrics/agreement`` answers for the same ratings and categories. Per
    category, each label is recoded 1 (this category) or 0 (another) and the same
    statistics are taken of that binary matrix. Item notes are left empty.
    """
    rows: list[list[str | None]] = [
        [labels.get((reviewer, content_id)) for content_id, _ in items] for reviewer in participants
    ]
    codes, _ = encode_labels(rows, list(categories))
    overall = summarize_ratings(codes, "nominal", values=np.arange(len(categories)))

    item_results: list[ItemResult] = []
    for unit, (content_id, golden) in enumerate(items):
        given = [row[unit] for row in rows if row[unit] is not None]
        label, share = consensus([g for g in given if g is not None])
        flagged = label is not None and (
            (share is not None and share < CONSENSUS_THRESHOLD)
            or (golden is not None and label != golden)
        )
        item_results.append(
            ItemResult(
                content_id=content_id,
                consensus_label=label,
                consensus_share=share,
                golden=golden,
                flagged=flagged,
                note=None,
            )
        )

    participant_results: list[ParticipantResult] = []
    for reviewer, row in zip(participants, rows, strict=True):
        labeled = [unit for unit, value in enumerate(row) if value is not None]
        with_golden = [unit for unit in labeled if items[unit][1] is not None]
        right = sum(1 for unit in with_golden if row[unit] == items[unit][1])
        with_consensus = sum(
            1 for unit in labeled if row[unit] == item_results[unit].consensus_label
        )
        participant_results.append(
            ParticipantResult(
                reviewer_id=reviewer,
                labeled=len(labeled),
                accuracy_vs_golden=right / len(with_golden) if with_golden else None,
                agreement_with_consensus=with_consensus / len(labeled) if labeled else None,
            )
        )

    per_category: list[CategoryAgreement] = []
    for code, category in enumerate(categories):
        binary = np.where(np.isnan(codes), np.nan, (codes == code).astype(np.float64))
        summary = summarize_ratings(binary, "nominal", values=np.array([0.0, 1.0]))
        per_category.append(
            CategoryAgreement(
                category=category,
                chosen=int(np.nansum(binary)),
                krippendorff_alpha=summary.krippendorff_alpha,
                percent_agreement=summary.percent_agreement,
                notes=list(summary.notes),
            )
        )
    return CalibrationResults(
        agreement=AgreementResult.from_summary(overall),
        participants=participant_results,
        items=item_results,
        per_category=per_category,
    )


async def _compute_results(
    session: AsyncSession, calibration: CalibrationSession
) -> CalibrationResults:
    items = await _items(session, calibration.id)
    labels = await _labels(session, calibration.id)
    return compute_results(
        categories=calibration.categories,
        participants=calibration.participants,
        items=[(item.content_id, item.golden) for item in items],
        labels={(label.reviewer_id, label.content_id): label.label for label in labels},
    )


async def close_calibration(
    session: AsyncSession, *, calibration_id: uuid.UUID, actor: Principal
) -> CalibrationRead:
    """Close the session (409 when already closed), store its results, send the summary."""
    calibration = await _load(session, calibration_id, lock="update")
    await _check_can_manage(session, calibration, actor)
    if calibration.status == "closed":
        raise Conflict("the session is already closed")
    results = await _compute_results(session, calibration)
    flagged = sum(1 for item in results.items if item.flagged)
    calibration.status = "closed"
    calibration.closed_at = utcnow()
    calibration.closed_by_key_id = actor.key_id
    calibration.krippendorff_alpha = results.agreement.krippendorff_alpha
    calibration.percent_agreement = results.agreement.percent_agreement
    calibration.n_units = results.agreement.n_units
    calibration.n_raters = results.agreement.n_raters
    calibration.flagged_items = flagged
    calibration.results = results.model_dump(mode="json")
    await session.flush()
    await record_event(
        session,
        type=EventType.CALIBRATION_CLOSED,
        data=CalibrationClosed(
            id=calibration.id,
            title=calibration.title,
            market=calibration.market,
            krippendorff_alpha=results.agreement.krippendorff_alpha,
            percent_agreement=results.agreement.percent_agreement,
            flagged_items=flagged,
            n_items=len(results.items),
            participants=len(calibration.participants),
        ),
        market=calibration.market,
    )
    await record_change(
        session,
        actor=actor,
        action="calibration.closed",
        entity_type="calibration",
        entity_id=calibration.id,
        before={"status": "open"},
        after={
            "status": "closed",
            "krippendorff_alpha": calibration.krippendorff_alpha,
            "percent_agreement": calibration.percent_agreement,
            "flagged_items": flagged,
        },
    )
    return await _read(session, calibration, actor)


async def get_results(
    session: AsyncSession, *, calibration_id: uuid.UUID, viewer: Principal
) -> CalibrationResults:
    """A closed session's results, with the items' current notes; 409 while open."""
    calibration = await _load(session, calibration_id)
    await _check_can_view(session, calibration, viewer)
    if calibration.status != "closed" or calibration.results is None:
        raise Conflict("results are available once the session is closed")
    results = CalibrationResults.model_validate(calibration.results)
    notes = {item.content_id: item.note for item in await _items(session, calibration.id)}
    for item in results.items:
        item.note = notes.get(item.content_id)
    return results


# --- notes ------------------------------------------------------------------------------


async def set_item_note(
    session: AsyncSession,
    *,
    calibration_id: uuid.UUID,
    content_id: str,
    note: str | None,
    actor: Principal,
) -> CalibrationItemRead:
    """Write (or clear, with None) the discussion note of an item; open or closed."""
    calibration = await _load(session, calibration_id)
    await _check_can_manage(session, calibration, actor)
    item = await session.get(CalibrationItem, (calibration.id, content_id), with_for_update=True)
    if item is None:
        raise NotFound(f"content {content_id!r} is not an item of this session")
    before = item.note
    item.note = note
    item.note_updated_at = utcnow()
    await session.flush()
    labeled = await session.scalar(
        select(func.count())
        .select_from(CalibrationLabel)
        .where(
            CalibrationLabel.session_id == calibration.id,
            CalibrationLabel.content_id == content_id,
        )
    )
    await record_change(
        session,
        actor=actor,
        action="calibration.item_note_set",
        entity_type="calibration",
        entity_id=calibration.id,
        before={"content_id": content_id, "note": before},
        after={"content_id": content_id, "note": note},
    )
    hide_golden = calibration.status == "open" and is_participant(calibration, actor)
    return CalibrationItemRead(
        content_id=item.content_id,
        decision_id=item.decision_id,
        golden=None if hide_golden else item.golden,
        golden_hidden=hide_golden and item.golden is not None,
        note=item.note,
        labeled=labeled or 0,
    )


# --- lists ------------------------------------------------------------------------------


CALIBRATION_ORDER = Keyset(CalibrationSession.created_at, CalibrationSession.id, descending=True)
TREND_ORDER = Keyset(CalibrationSession.closed_at, CalibrationSession.id)


async def list_calibrations(
    session: AsyncSession,
    *,
    filters: CalibrationQuery,
    viewer: Principal,
) -> KeysetPage[CalibrationListItem]:
    """A page of sessions, newest first, with their item counts.

    Those ``visible_calibrations`` lets the viewer see: the sessions they take part in or
    created, and for managers and admins every session of their markets.
    """
    item_count = (
        select(func.count())
        .select_from(CalibrationItem)
        .where(CalibrationItem.session_id == CalibrationSession.id)
        .scalar_subquery()
    )
    query = select(CalibrationSession, item_count)
    if filters.market is not None:
        query = query.where(CalibrationSession.market == filters.market)
    if filters.status is not None:
        query = query.where(CalibrationSession.status == filters.status)
    query = query.where(visible_calibrations(viewer))
    rows = (await session.execute(CALIBRATION_ORDER.apply(query, filters))).all()
    return CALIBRATION_ORDER.page([list_item(row[0], row[1]) for row in rows], filters)


def list_item(calibration: CalibrationSession, n_items: int) -> CalibrationListItem:
    """A session as a list row."""
    return CalibrationListItem(
        id=calibration.id,
        title=calibration.title,
        market=calibration.market,
        status="closed" if calibration.status == "closed" else "open",
        deadline=calibration.deadline,
        created_at=calibration.created_at,
        closed_at=calibration.closed_at,
        n_items=n_items,
        n_participants=len(calibration.participants),
    )


async def calibration_trend(
    session: AsyncSession,
    *,
    market: str,
    page: PageRequest,
    viewer: Principal,
) -> KeysetPage[TrendPoint]:
    """A page of the market's closed sessions, oldest close first."""
    check_market_scope(viewer, market)
    query = select(CalibrationSession).where(
        CalibrationSession.market == market, CalibrationSession.status == "closed"
    )
    points: list[TrendPoint] = []
    for calibration in await session.scalars(TREND_ORDER.apply(query, page)):
        assert calibration.closed_at is not None
        points.append(
            TrendPoint(
                id=calibration.id,
                title=calibration.title,
                closed_at=calibration.closed_at,
                krippendorff_alpha=calibration.krippendorff_alpha,
                percent_agreement=calibration.percent_agreement,
                n_units=calibration.n_units or 0,
                n_raters=calibration.n_raters or 0,
            )
        )
    return TREND_ORDER.page(points, page)


async def closed_calibrations(
    session: AsyncSession,
    *,
    viewer: Principal,
    market: str | None,
    closed_from: datetime,
    closed_before: datetime,
) -> list[CalibrationSession]:
    """The sessions closed in ``[closed_from, closed_before)`` that ``viewer`` may see
    (``visible_calibrations``), of ``market`` when given, oldest close first. Their agreement
    is the one stored at close: what ``get_results`` answers for each."""
    query = select(CalibrationSession).where(
        CalibrationSession.status == "closed",
        CalibrationSession.closed_at >= closed_from,
        CalibrationSession.closed_at < closed_before,
        visible_calibrations(viewer),
    )
    if market is not None:
        query = query.where(CalibrationSession.market == market)
    return list(
        await session.scalars(query.order_by(CalibrationSession.closed_at, CalibrationSession.id))
    )
