"""Disagreements: the moderator's dispute, arbitration by a POC or manager, the listings.

States: ``open`` (opened by an incorrect verdict) → ``disputed`` (by the moderator, before
the deadline) → ``upheld`` or ``overturned`` (by a policy POC or manager who is neither the
auditor nor the moderator of the case); an ``open`` one nobody disputed in time is
``closed`` by the report worker. Every change writes a ``DisagreementChange`` row and an
audit-log entry in the same transaction; rows are locked (``FOR UPDATE``) before their state
is checked, so a dispute and the scheduled close (or two rulings) cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound
from shared.models import Disagreement, DisagreementChange, Verdict
from shared.schemas.disagreements import (
    DisagreementChangeRead,
    DisagreementDetail,
    DisagreementQuery,
    DisagreementRead,
    ResolutionOutcome,
)


class DisputeWindowClosed(Conflict):
    """The dispute came after the disagreement's ``dispute_deadline``."""

    type_slug = "dispute-window-closed"
    title = "Dispute window closed"


def actor_name(actor: Principal) -> str:
    """How a change's author is recorded: the reviewer, or the API key for unbound keys."""
    return actor.reviewer_id or f"api-key:{actor.key_id}"


def disagreement_read(disagreement: Disagreement, verdict: Verdict) -> DisagreementRead:
    """The API view of a disagreement, with what its verdict says and how it counts."""
    return DisagreementRead(
        id=disagreement.id,
        audit_id=disagreement.audit_id,
        verdict_id=disagreement.verdict_id,
        decision_id=verdict.decision_id,
        moderator_id=disagreement.moderator_id,
        auditor_id=disagreement.auditor_id,
        market=disagreement.market,
        queue=verdict.queue,
        status=disagreement.status,
        verdict_outcome=verdict.outcome,
        effective_outcome=verdict.effective_outcome,
        error_type=verdict.error_type,
        severity=verdict.severity,
        expected_action=verdict.expected_action,
        dispute_deadline=disagreement.dispute_deadline,
        dispute_reason=disagreement.dispute_reason,
        disputed_at=disagreement.disputed_at,
        resolved_by=disagreement.resolved_by,
        resolution_note=disagreement.resolution_note,
        resolved_at=disagreement.resolved_at,
        sla_reminded_at=disagreement.sla_reminded_at,
        created_at=disagreement.created_at,
    )


def _state(disagreement: Disagreement) -> dict[str, Any]:
    """The audit log's before/after picture of a disagreement."""
    return {
        "status": disagreement.status,
        "dispute_reason": disagreement.dispute_reason,
        "disputed_at": _iso(disagreement.disputed_at),
        "resolved_by": disagreement.resolved_by,
        "resolution_note": disagreement.resolution_note,
        "resolved_at": _iso(disagreement.resolved_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _check_visible(
    disagreement: Disagreement,
    *,
    only_moderator: str | None,
    only_markets: Sequence[str] | None,
) -> None:
    if only_moderator is not None and disagreement.moderator_id != only_moderator:
        raise Forbidden("a moderator key sees only its own reviewer's disagreements")
    if only_markets is not None and disagreement.market not in only_markets:
        raise Forbidden(f"this key may not see market {disagreement.market}")


async def _locked(session: AsyncSession, disagreement_id: uuid.UUID) -> Disagreement:
    disagreement = await session.get(
        Disagreement, disagreement_id, with_for_update=True, populate_existing=True
    )
    if disagreement is None:
        raise NotFound("disagreement not found")
    return disagreement


async def _verdict(session: AsyncSession, verdict_id: uuid.UUID, *, lock: bool) -> Verdict:
    verdict = await session.get(Verdict, verdict_id, with_for_update=lock, populate_existing=lock)
    if verdict is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound("verdict not found")
    return verdict


async def _history(
    session: AsyncSession, disagreement_id: uuid.UUID
) -> list[DisagreementChangeRead]:
    changes = await session.scalars(
        select(DisagreementChange)
        .where(DisagreementChange.disagreement_id == disagreement_id)
        .order_by(DisagreementChange.id)
    )
    return [DisagreementChangeRead.model_validate(change) for change in changes]


async def _detail(
    session: AsyncSession, disagreement: Disagreement, verdict: Verdict
) -> DisagreementDetail:
    return DisagreementDetail(
        **disagreement_read(disagreement, verdict).model_dump(),
        history=await _history(session, disagreement.id),
    )


async def _record_change(
    session: AsyncSession,
    disagreement: Disagreement,
    *,
    from_status: str,
    before: dict[str, Any],
    actor: Principal,
    note: str | None,
    now: datetime,
    action: str,
) -> None:
    """Keep a change already made to ``disagreement``: its history row and audit-log entry."""
    session.add(
        DisagreementChange(
            disagreement_id=disagreement.id,
            from_status=from_status,
            to_status=disagreement.status,
            actor=actor_name(actor),
            note=note,
            created_at=now,
        )
    )
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action=action,
        entity_type="disagreement",
        entity_id=disagreement.id,
        before=before,
        after=_state(disagreement),
    )


async def dispute_disagreement(
    session: AsyncSession,
    *,
    disagreement_id: uuid.UUID,
    reason: str,
    actor: Principal,
    now: datetime,
) -> DisagreementDetail:
    """The moderator of the case contests the verdict, before the dispute deadline.

    403 for anyone but that moderator's key; 409 when already disputed or resolved, and a
    409 ``dispute-window-closed`` problem once the deadline has passed (the request is
    well-formed; it is the disagreement's state that refuses it).
    """
    disagreement = await _locked(session, disagreement_id)
    if actor.reviewer_id is None or actor.reviewer_id != disagreement.moderator_id:
        raise Forbidden("only the moderator whose decision was audited may dispute it")
    _check_visible(disagreement, only_moderator=None, only_markets=actor.markets)
    if disagreement.status == "disputed":
        raise Conflict("this disagreement is disputed already")
    if disagreement.status in ("upheld", "overturned"):
        raise Conflict(f"this disagreement was resolved already ({disagreement.status})")
    if disagreement.status == "closed" or now > disagreement.dispute_deadline:
        raise DisputeWindowClosed(
            "the dispute window closed at "
            f"{disagreement.dispute_deadline.isoformat()}; the verdict stands"
        )
    verdict = await _verdict(session, disagreement.verdict_id, lock=False)
    before = _state(disagreement)
    disagreement.status = "disputed"
    disagreement.dispute_reason = reason
    disagreement.disputed_at = now
    await _record_change(
        session,
        disagreement,
        from_status="open",
        before=before,
        actor=actor,
        note=reason,
        now=now,
        action="disagreement.disputed",
    )
    return await _detail(session, disagreement, verdict)


async def resolve_disagreement(
    session: AsyncSession,
    *,
    disagreement_id: uuid.UUID,
    outcome: ResolutionOutcome,
    note: str,
    actor: Principal,
    now: datetime,
) -> DisagreementDetail:
    """Rule on a disputed verdict: ``upheld`` or ``overturned``.

    The arbiter must be neither the auditor nor the moderator of the case (403). Only a
    disputed disagreement can be resolved (409). Overturning sets the verdict's
    ``effective_outcome`` to ``correct`` in this same transaction, so every report counts it
    correct from the commit on; its ``outcome`` stays as the auditor gave it (history kept).
    """
    disagreement = await _locked(session, disagreement_id)
    _check_visible(disagreement, only_moderator=None, only_markets=actor.markets)
    verdict = await _verdict(session, disagreement.verdict_id, lock=True)
    if actor.reviewer_id is not None:
        if actor.reviewer_id in (verdict.auditor_id, disagreement.auditor_id):
            raise Forbidden("the auditor of the case may not arbitrate it")
        if actor.reviewer_id == disagreement.moderator_id:
            raise Forbidden("the moderator of the case may not arbitrate it")
    if disagreement.status != "disputed":
        state = {
            "open": "it has not been disputed",
            "closed": "it was closed undisputed",
        }.get(disagreement.status, f"it was resolved already ({disagreement.status})")
        raise Conflict(f"only a disputed disagreement can be resolved; {state}")
    before = _state(disagreement)
    disagreement.status = outcome
    disagreement.resolved_by = actor_name(actor)
    disagreement.resolution_note = note
    disagreement.resolved_at = now
    await _record_change(
        session,
        disagreement,
        from_status="disputed",
        before=before,
        actor=actor,
        note=note,
        now=now,
        action=f"disagreement.{outcome}",
    )
    if outcome == "overturned" and verdict.effective_outcome != "correct":
        verdict.effective_outcome = "correct"
        await record_change(
            session,
            actor=actor,
            action="verdict.overturned",
            entity_type="verdict",
            entity_id=verdict.id,
            before={"outcome": verdict.outcome, "effective_outcome": "incorrect"},
            after={"outcome": verdict.outcome, "effective_outcome": "correct"},
        )
    await session.flush()
    return await _detail(session, disagreement, verdict)


async def get_disagreement(
    session: AsyncSession,
    *,
    disagreement_id: uuid.UUID,
    only_moderator: str | None,
    only_markets: Sequence[str] | None,
) -> DisagreementDetail:
    """A disagreement with its history; 403 outside the key's moderator or markets."""
    row = (
        await session.execute(
            select(Disagreement, Verdict)
            .join(Verdict, Verdict.id == Disagreement.verdict_id)
            .where(Disagreement.id == disagreement_id)
        )
    ).first()
    if row is None:
        raise NotFound("disagreement not found")
    disagreement, verdict = row
    _check_visible(disagreement, only_moderator=only_moderator, only_markets=only_markets)
    return await _detail(session, disagreement, verdict)


async def list_disagreements(
    session: AsyncSession,
    *,
    filters: DisagreementQuery,
    before: tuple[datetime, uuid.UUID] | None,
    only_moderator: str | None,
    only_markets: Sequence[str] | None,
) -> list[DisagreementRead]:
    """Newest first, ``filters.limit + 1`` of them (the extra one says another page exists).

    Asking for another moderator's (with a moderator key) or for a market outside the key's
    markets is a 403, not an empty page: the caller is told the question is not theirs.
    """
    if only_moderator is not None and filters.moderator_id not in (None, only_moderator):
        raise Forbidden("a moderator key sees only its own reviewer's disagreements")
    if only_markets is not None and filters.market not in (None, *only_markets):
        raise Forbidden(f"this key may not see market {filters.market}")
    query = select(Disagreement, Verdict).join(Verdict, Verdict.id == Disagreement.verdict_id)
    if only_moderator is not None:
        query = query.where(Disagreement.moderator_id == only_moderator)
    if only_markets is not None:
        query = query.where(Disagreement.market.in_(only_markets))
    if filters.status is not None:
        query = query.where(Disagreement.status == filters.status)
    if filters.moderator_id is not None:
        query = query.where(Disagreement.moderator_id == filters.moderator_id)
    if filters.market is not None:
        query = query.where(Disagreement.market == filters.market)
    if before is not None:
        query = query.where(tuple_(Disagreement.created_at, Disagreement.id) < tuple_(*before))
    query = query.order_by(Disagreement.created_at.desc(), Disagreement.id.desc())
    rows = (await session.execute(query.limit(filters.limit + 1))).all()
    return [disagreement_read(disagreement, verdict) for disagreement, verdict in rows]
