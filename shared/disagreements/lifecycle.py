"""Every state change of a disagreement, for the API and the report worker alike.

States: ``open`` (``open_disagreement``, by an incorrect verdict) → ``disputed``
(``dispute``, by the moderator, before the deadline) → ``upheld`` or ``overturned``
(``resolve``, by a policy POC or manager who is neither the auditor nor the moderator of
the case); an ``open`` one nobody disputed in time is ``closed`` (``close_expired``, on the
report worker's schedule). ``remind_overdue`` marks a dispute waiting too long for
arbitration as reminded and emits its event.

Every transition goes through ``_transition``: it writes the ``DisagreementChange`` row and
the audit-log entry in the caller's transaction, so the history and the audit log read the
same whoever made the change (a scheduled change has no actor). Rows are locked
(``FOR UPDATE``) before their state is checked, so a dispute and the scheduled close (or two
rulings) cannot both win; the schedule skips rows locked by a request (``SKIP LOCKED``) and
looks again on its next run. Functions flush, never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, Table, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.analytics.rollups import Slice, mark_slices_dirty, mark_verdict_slices_dirty
from shared.audit_log.record import CHANGE_COLUMNS, change_values, record_change
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound
from shared.core.outbox import OUTBOX_CHANNEL
from shared.disagreements.service import disagreement_detail, visible_disagreement
from shared.events import (
    DecisionCorrected,
    DisagreementOpened,
    DisputeAwaitingArbitration,
    EventType,
    event_and_fan_out_inserts,
    record_event,
)
from shared.jobs import FanOutEvent
from shared.models import (
    Audit,
    AuditLogEntry,
    Decision,
    Disagreement,
    DisagreementChange,
    Verdict,
)
from shared.schemas.disagreements import (
    DisagreementDetail,
    DisagreementStatus,
    ResolutionOutcome,
)

# A scheduled run handles at most this many rows per transaction; a backlog drains over runs.
BATCH = 1000
CLOSE_NOTE = "not disputed before the deadline; the verdict stands"


class DisputeWindowClosed(Conflict):
    """The dispute came after the disagreement's ``dispute_deadline``."""

    type_slug = "dispute-window-closed"
    title = "Dispute window closed"


def actor_name(actor: Principal) -> str:
    """How a change's author is recorded: the reviewer, or the API key for unbound keys."""
    return actor.reviewer_id or f"api-key:{actor.key_id}"


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


async def _transition(
    session: AsyncSession,
    disagreement: Disagreement,
    *,
    to_status: DisagreementStatus,
    actor: Principal | None,
    note: str | None,
    now: datetime,
    changes: dict[str, Any] | None = None,
) -> None:
    """Move ``disagreement`` to ``to_status`` (setting ``changes`` too) and keep the change."""
    from_status = disagreement.status
    before = _state(disagreement)
    disagreement.status = to_status
    for name, value in (changes or {}).items():
        setattr(disagreement, name, value)
    await _keep_change(
        session,
        disagreement,
        from_status=from_status,
        actor=actor,
        note=note,
        now=now,
        before=before,
        after=_state(disagreement),
    )


async def _keep_change(
    session: AsyncSession,
    disagreement: Disagreement,
    *,
    from_status: str | None,
    actor: Principal | None,
    note: str | None,
    now: datetime,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    """The history row and the audit-log entry (``disagreement.<new status>``) of a change
    already made to ``disagreement``; a scheduled change has no actor."""
    session.add(
        DisagreementChange(
            disagreement_id=disagreement.id,
            from_status=from_status,
            to_status=disagreement.status,
            actor=actor_name(actor) if actor is not None else None,
            note=note,
            created_at=now,
        )
    )
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action=f"disagreement.{disagreement.status}",
        entity_type="disagreement",
        entity_id=disagreement.id,
        before=before,
        after=after,
    )


def _slice_of(verdict: Verdict) -> Slice:
    """The rollup slice a verdict counts in (``shared.analytics.rollups``)."""
    return Slice(verdict.day, verdict.market, verdict.queue, verdict.moderator_id)


async def _verdict(session: AsyncSession, verdict_id: uuid.UUID, *, lock: bool) -> Verdict:
    verdict = await session.get(Verdict, verdict_id, with_for_update=lock, populate_existing=lock)
    if verdict is None:  # pragma: no cover - a foreign key guarantees it
        raise NotFound("verdict not found")
    return verdict


# Opening a disagreement writes, in one statement (one round trip instead of seven): the
# disagreement, its first history row, its audit-log entry, the two events and their
# fan-out jobs in the outbox (with the NOTIFY that wakes the relay at commit). The rows are
# those ``_keep_change``, ``record_change``, ``record_event`` and ``add_job`` write.
_DISAGREEMENTS: Table = Disagreement.__table__  # type: ignore[assignment]
_CHANGES: Table = DisagreementChange.__table__  # type: ignore[assignment]
_AUDIT_LOG: Table = AuditLogEntry.__table__  # type: ignore[assignment]


def _event_and_job(name: str, *, source_id: bool) -> tuple[Insert, Insert]:
    """The insert of event ``name`` and of its fan-out job (bound as ``{name}_...``)."""
    event, job = event_and_fan_out_inserts(
        id=f"{name}_id",
        type=f"{name}_type",
        occurred_at="now",
        market=f"{name}_market",
        data=f"{name}_data",
        request_id="entry_request_id",
        source_id="corrected_source_id" if source_id else None,
        job_id=f"{name}_job_id",
        job=f"{name}_job",
    )
    return event, job.returning(func.pg_notify(OUTBOX_CHANNEL, ""))


def _open_statement() -> Insert:
    opened_event, opened_job = _event_and_job("opened", source_id=False)
    corrected_event, corrected_job = _event_and_job("corrected", source_id=True)
    parts = {
        "disagreement": insert(_DISAGREEMENTS).values(
            id=bindparam("opened_disagreement_id"),
            audit_id=bindparam("opened_audit_id"),
            verdict_id=bindparam("opened_verdict_id"),
            moderator_id=bindparam("opened_moderator_id"),
            auditor_id=bindparam("opened_auditor_id"),
            market=bindparam("opened_disagreement_market"),
            status="open",
            dispute_deadline=bindparam("opened_deadline"),
            created_at=bindparam("now"),
        ),
        "change": insert(_CHANGES).values(
            disagreement_id=bindparam("opened_disagreement_id"),
            from_status=None,
            to_status="open",
            actor=bindparam("change_actor"),
            note=None,
            created_at=bindparam("now"),
        ),
        "opened_event": opened_event,
        "opened_job": opened_job,
        "corrected_event": corrected_event,
        "corrected_job": corrected_job,
    }
    log = insert(_AUDIT_LOG).values({name: bindparam(f"log_{name}") for name in CHANGE_COLUMNS})
    # Data-modifying CTEs run once and to completion, read or not; the foreign keys between
    # them are checked at the end of the statement, when every row is in.
    return log.add_cte(*(part.cte(name) for name, part in parts.items()))


_OPEN_DISAGREEMENT = _open_statement()


async def open_disagreement(
    session: AsyncSession,
    *,
    actor: Principal,
    audit: Audit,
    decision: Decision,
    verdict: Verdict,
    dispute_window: timedelta,
) -> uuid.UUID:
    """Open the disagreement of an incorrect verdict, tell the moderator's team
    (``disagreement.opened``) and send the correction to the decision's source platform
    (``decision.corrected``, to that source's own channels only); returns its id.

    One statement (``_OPEN_DISAGREEMENT``) writes the disagreement, its history row, its
    audit-log entry (``disagreement.open``), both events and their fan-out jobs.
    """
    now = verdict.created_at
    disagreement_id = uuid.uuid4()
    dispute_deadline = now + dispute_window
    opened = DisagreementOpened(
        id=disagreement_id,
        audit_id=audit.id,
        decision_id=decision.id,
        moderator_id=audit.moderator_id,
        market=audit.market,
        queue=audit.queue,
        error_type=verdict.error_type,
        severity=verdict.severity,
        expected_action=verdict.expected_action,
        dispute_deadline=dispute_deadline,
    )
    # The downstream half of the labeling loop: the platform can re-action the content.
    corrected = DecisionCorrected(
        decision_id=decision.id,
        event_id=decision.event_id,
        content_id=decision.content_id,
        original_action=decision.action,
        corrected_action=verdict.expected_action,
        corrected_labels=verdict.expected_labels,
        severity=verdict.severity,
        error_type=verdict.error_type,
        verdict_id=verdict.id,
        corrected_at=now,
    )
    log = change_values(
        actor=actor,
        action="disagreement.open",
        entity_type="disagreement",
        entity_id=disagreement_id,
        before=None,
        after={
            "status": "open",
            "audit_id": str(audit.id),
            "verdict_id": str(verdict.id),
            "moderator_id": audit.moderator_id,
            "dispute_deadline": dispute_deadline.isoformat(),
        },
    )
    values: dict[str, Any] = {
        "opened_disagreement_id": disagreement_id,
        "opened_audit_id": audit.id,
        "opened_verdict_id": verdict.id,
        "opened_moderator_id": audit.moderator_id,
        "opened_auditor_id": verdict.auditor_id,
        "opened_disagreement_market": audit.market,
        "opened_deadline": dispute_deadline,
        "now": now,
        "change_actor": actor_name(actor),
        "entry_request_id": log["request_id"],
        "corrected_source_id": decision.source_id,
        **{f"log_{name}": value for name, value in log.items()},
    }
    for name, type_, event, market in (
        ("opened", EventType.DISAGREEMENT_OPENED, opened, audit.market),
        ("corrected", EventType.DECISION_CORRECTED, corrected, decision.market),
    ):
        event_id = uuid.uuid4()
        values |= {
            f"{name}_id": event_id,
            f"{name}_type": type_.value,
            f"{name}_market": market,
            f"{name}_data": event.model_dump(mode="json"),
            f"{name}_job_id": uuid.uuid4(),
            f"{name}_job": FanOutEvent(event_id=event_id).model_dump(mode="json"),
        }
    await session.execute(_OPEN_DISAGREEMENT, values)
    return disagreement_id


async def dispute(
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
    disagreement = await visible_disagreement(
        session, disagreement_id=disagreement_id, viewer=actor, lock=True
    )
    if actor.reviewer_id is None or actor.reviewer_id != disagreement.moderator_id:
        raise Forbidden("only the moderator whose decision was audited may dispute it")
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
    await _transition(
        session,
        disagreement,
        to_status="disputed",
        actor=actor,
        note=reason,
        now=now,
        changes={"dispute_reason": reason, "disputed_at": now},
    )
    await mark_slices_dirty(session, [_slice_of(verdict)])  # its disputed count changed
    return await disagreement_detail(session, disagreement, verdict)


async def resolve(
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
    disagreement = await visible_disagreement(
        session, disagreement_id=disagreement_id, viewer=actor, lock=True
    )
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
    await _transition(
        session,
        disagreement,
        to_status=outcome,
        actor=actor,
        note=note,
        now=now,
        changes={"resolved_by": actor_name(actor), "resolution_note": note, "resolved_at": now},
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
    # Upheld or overturned: the slice's overturned (and, overturned, its correct) counts.
    await mark_slices_dirty(session, [_slice_of(verdict)])
    return await disagreement_detail(session, disagreement, verdict)


async def close_expired(session: AsyncSession, *, now: datetime, limit: int = BATCH) -> int:
    """Close ``open`` disagreements whose dispute deadline has passed (the verdict stands);
    returns how many. Rows a request holds right now are skipped until the next run."""
    expired = list(
        await session.scalars(
            select(Disagreement)
            .where(Disagreement.status == "open", Disagreement.dispute_deadline < now)
            .order_by(Disagreement.dispute_deadline, Disagreement.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for disagreement in expired:
        await _transition(
            session, disagreement, to_status="closed", actor=None, note=CLOSE_NOTE, now=now
        )
    # No counter reads "closed" today; marking keeps the rollups true if one ever does.
    await mark_verdict_slices_dirty(session, verdict_ids=[d.verdict_id for d in expired])
    return len(expired)


async def remind_overdue(
    session: AsyncSession, *, now: datetime, sla: timedelta, limit: int = BATCH
) -> int:
    """Emit ``dispute.awaiting_arbitration`` once per dispute waiting longer than ``sla``
    (market set, so the market's policy POC channels hear of it); returns how many."""
    rows = (
        await session.execute(
            select(Disagreement, Verdict)
            .join(Verdict, Verdict.id == Disagreement.verdict_id)
            .where(
                Disagreement.status == "disputed",
                Disagreement.sla_reminded_at.is_(None),
                Disagreement.disputed_at <= now - sla,
            )
            .order_by(Disagreement.disputed_at, Disagreement.id)
            .limit(limit)
            .with_for_update(of=Disagreement, skip_locked=True)
        )
    ).all()
    for disagreement, verdict in rows:
        assert disagreement.disputed_at is not None
        disagreement.sla_reminded_at = now
        await record_event(
            session,
            type=EventType.DISPUTE_AWAITING_ARBITRATION,
            data=DisputeAwaitingArbitration(
                id=disagreement.id,
                audit_id=disagreement.audit_id,
                decision_id=verdict.decision_id,
                moderator_id=disagreement.moderator_id,
                auditor_id=disagreement.auditor_id,
                market=disagreement.market,
                queue=verdict.queue,
                dispute_reason=disagreement.dispute_reason,
                disputed_at=disagreement.disputed_at,
                waiting_hours=int((now - disagreement.disputed_at).total_seconds() // 3600),
                sla_hours=int(sla.total_seconds() // 3600),
            ),
            market=disagreement.market,
        )
    await session.flush()
    return len(rows)
