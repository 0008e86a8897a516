"""Wellbeing caps: how many items of a sensitive policy category an auditor gets a day.

An auditor's exposure to a category on a day is the number of audits they claimed that day
(claimed, or claimed and since completed) whose policy labels include the category's code.
Days are UTC days: an auditor may work several markets, and one clock for everyone keeps the
cap a plain daily budget. Once the exposure reaches the cap, the claim skips items carrying
the code and hands out others.

Exposure is read from the audits themselves (``auditor_id``, ``claimed_at``): an audit whose
lease expired and that another auditor then claimed counts for its last claimant only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy import String as SqlString
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal
from shared.core.errors import Forbidden, NotFound
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.models import Audit, SensitiveCategoryCap
from shared.models.base import utcnow
from shared.reference import register_policies
from shared.schemas.audits import CapRead, ExposureRow

ENTITY = "wellbeing_cap"


def utc_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The start (inclusive) and end (exclusive) of a UTC day."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _cap_snapshot(cap: SensitiveCategoryCap | None) -> dict[str, object] | None:
    if cap is None:
        return None
    return {"policy_code": cap.policy_code, "daily_cap": cap.daily_cap}


def _refuse_market_scoped(principal: Principal) -> None:
    # Caps are per category, in every market: a key limited to some markets must not change
    # what auditors of other markets are handed.
    if principal.markets is not None:
        raise Forbidden("caps apply in every market; a market-scoped key may not change them")


async def set_cap(
    session: AsyncSession, *, principal: Principal, policy_code: str, daily_cap: int
) -> SensitiveCategoryCap:
    """Create or change the daily cap of a sensitive policy category (audit-logged)."""
    _refuse_market_scoped(principal)
    await register_policies(session, [policy_code])
    before = await session.scalar(
        select(SensitiveCategoryCap)
        .where(SensitiveCategoryCap.policy_code == policy_code)
        .with_for_update()
    )
    before_snapshot = _cap_snapshot(before)
    now = utcnow()
    # An upsert: two concurrent first settings of a code must not fail with a duplicate key.
    statement = (
        insert(SensitiveCategoryCap)
        .values(policy_code=policy_code, daily_cap=daily_cap, updated_at=now)
        .on_conflict_do_update(
            index_elements=[SensitiveCategoryCap.policy_code],
            set_={"daily_cap": daily_cap, "updated_at": now},
        )
        .returning(SensitiveCategoryCap)
        .execution_options(populate_existing=True)
    )
    cap = (await session.scalars(statement)).one()
    await record_change(
        session,
        actor=principal,
        action="wellbeing_cap.set",
        entity_type=ENTITY,
        entity_id=policy_code,
        before=before_snapshot,
        after=_cap_snapshot(cap),
    )
    return cap


async def delete_cap(session: AsyncSession, *, principal: Principal, policy_code: str) -> None:
    """Remove a category's cap: its items are handed out without limit again."""
    _refuse_market_scoped(principal)
    cap = await session.scalar(
        select(SensitiveCategoryCap)
        .where(SensitiveCategoryCap.policy_code == policy_code)
        .with_for_update()
    )
    if cap is None:
        raise NotFound(f"no cap is set for '{policy_code}'")
    before = _cap_snapshot(cap)
    await session.execute(
        delete(SensitiveCategoryCap).where(SensitiveCategoryCap.policy_code == policy_code)
    )
    await record_change(
        session,
        actor=principal,
        action="wellbeing_cap.delete",
        entity_type=ENTITY,
        entity_id=policy_code,
        before=before,
        after=None,
    )


CAP_ORDER = Keyset(SensitiveCategoryCap.policy_code)


async def list_caps(
    session: AsyncSession, *, page: PageRequest
) -> KeysetPage[SensitiveCategoryCap]:
    """A page of caps, by policy code."""
    caps = list(await session.scalars(CAP_ORDER.apply(select(SensitiveCategoryCap), page)))
    return CAP_ORDER.page(caps, page)


def cap_read(cap: SensitiveCategoryCap) -> CapRead:
    """The API view of a cap."""
    return CapRead.model_validate(cap)


def _exposed_audit(
    auditor_id: ColumnElement[str],
    start: datetime | ColumnElement[datetime],
    end: datetime | ColumnElement[datetime],
) -> ColumnElement[bool]:
    """Audits that count towards ``auditor_id``'s exposure from ``start`` to ``end`` (a UTC
    day) to the joined cap."""
    return and_(
        Audit.auditor_id == auditor_id,
        Audit.claimed_at >= start,
        Audit.claimed_at < end,
        SensitiveCategoryCap.policy_code == any_(Audit.policy_labels),
    )


# The sensitive codes whose cap the auditor (bound as ``auditor``) has reached in the UTC day
# from ``day_start`` to ``day_end``. Built once: a claim binds values only (and reads it
# along with the auditor's other state, ``shared.audits.service``).
CAPPED_CODES = (
    select(SensitiveCategoryCap.policy_code)
    .outerjoin(
        Audit,
        _exposed_audit(
            bindparam("auditor", type_=SqlString), bindparam("day_start"), bindparam("day_end")
        ),
    )
    .group_by(SensitiveCategoryCap.policy_code, SensitiveCategoryCap.daily_cap)
    .having(func.count(Audit.id) >= SensitiveCategoryCap.daily_cap)
)


def capped_codes_values(*, auditor_id: str, day: date) -> dict[str, object]:
    """The values ``CAPPED_CODES`` binds for ``auditor_id`` on ``day`` (UTC)."""
    start, end = utc_day_bounds(day)
    return {"auditor": auditor_id, "day_start": start, "day_end": end}


async def capped_codes(session: AsyncSession, *, auditor_id: str, day: date) -> list[str]:
    """The sensitive codes whose cap ``auditor_id`` has reached on ``day`` (UTC)."""
    values = capped_codes_values(auditor_id=auditor_id, day=day)
    return list(await session.scalars(CAPPED_CODES, values))


def _auditors_of_day(
    *, day: date, auditor_id: str | None, markets: Sequence[str] | None
) -> Select[str | None]:
    if auditor_id is not None:
        return select(literal(auditor_id, SqlString).label("auditor_id"))
    start, end = utc_day_bounds(day)
    query = (
        select(Audit.auditor_id.label("auditor_id"))
        .where(Audit.auditor_id.is_not(None), Audit.claimed_at >= start, Audit.claimed_at < end)
        .distinct()
    )
    if markets is not None:
        query = query.where(Audit.market.in_(markets))
    return query


async def list_exposure(
    session: AsyncSession,
    *,
    principal: Principal,
    auditor_id: str | None,
    day: date | None,
    page: PageRequest,
) -> KeysetPage[ExposureRow]:
    """Exposure per auditor and sensitive category on a UTC day, against each cap.

    Without ``auditor_id``: every auditor who claimed work that day (for a market-scoped key,
    work in its markets; the counts stay the auditor's whole day, as the cap is per person).
    A QA auditor sees only their own exposure. A page, ordered by (auditor, policy code).
    """
    if principal.role == "qa_auditor":
        if auditor_id is not None and auditor_id != principal.reviewer_id:
            raise Forbidden("a QA auditor sees only their own exposure")
        if principal.reviewer_id is None:
            return KeysetPage(items=[], next_cursor=None)
        auditor_id = principal.reviewer_id
    day = day or utcnow().date()
    auditors = _auditors_of_day(day=day, auditor_id=auditor_id, markets=principal.markets).subquery(
        "auditors"
    )
    exposure = func.count(Audit.id).label("exposure")
    # The auditors of the day are a subquery made for this call, so is the key.
    order = Keyset(auditors.c.auditor_id, SensitiveCategoryCap.policy_code)
    query = (
        select(
            auditors.c.auditor_id, SensitiveCategoryCap.policy_code, SensitiveCategoryCap.daily_cap
        )
        .add_columns(exposure)
        .select_from(auditors)
        .join(SensitiveCategoryCap, literal(True))
        .outerjoin(Audit, _exposed_audit(auditors.c.auditor_id, *utc_day_bounds(day)))
        .group_by(
            auditors.c.auditor_id,
            SensitiveCategoryCap.policy_code,
            SensitiveCategoryCap.daily_cap,
        )
    )
    rows = (await session.execute(order.apply(query, page))).all()
    items = [
        ExposureRow(
            auditor_id=row.auditor_id,
            day=day,
            policy_code=row.policy_code,
            exposure=row.exposure,
            daily_cap=row.daily_cap,
            remaining=max(0, row.daily_cap - row.exposure),
            capped=row.exposure >= row.daily_cap,
        )
        for row in rows
    ]
    return order.page(items, page)
