"""Escalations' state changes: opened by a breach or by hand, the RCA workflow, corrective
actions, overdue reminders. Each function flushes, never commits, and records its change in
the audit log (a worker's changes with no actor).

One unresolved escalation per rule and slice: a breach inserts with ``ON CONFLICT DO
NOTHING`` on the partial unique index ``uq_escalations_rule_slice_unresolved``, so of two
evaluations at once one inserts and the other (waiting on the index entry until the first
commits) finds the row and adds its breach to the history. Re-opening is a conditional
``UPDATE ... WHERE status = 'resolved'``, which only one of two can win.

Workflow: ``open -> investigating -> actions_pending -> resolved``, and back from
``actions_pending`` to ``investigating``; any other move is a 409 (an unknown status is a
422 from the schema). Resolving while an action is open is a 409. The escalation row is
locked for every change, so an action added while it is being resolved waits for the one
or the other.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound
from shared.escalations.queries import actions_of, escalation_read, get_escalation
from shared.events import EscalationActionOverdue, EscalationOpened, EventType, record_event
from shared.models import Escalation, EscalationAction, EscalationBreach, EscalationRule, Queue
from shared.reference import register_markets
from shared.schemas.escalations import ActionCreate, EscalationCreate, EscalationUpdate

SLICE_ORDER = ("market", "queue", "policy", "moderator")
ALLOWED_MOVES = frozenset(
    {
        ("open", "investigating"),
        ("investigating", "actions_pending"),
        ("actions_pending", "investigating"),
        ("actions_pending", "resolved"),
    }
)
_UNRESOLVED = text("status <> 'resolved' AND rule_id IS NOT NULL")
OVERDUE_BATCH = 500


def slice_key(parts: dict[str, str]) -> str:
    """The canonical text of a slice (``market=DE;queue=de-video``); ``all`` for none."""
    given = [f"{name}={parts[name]}" for name in SLICE_ORDER if name in parts]
    return ";".join(given) if given else "all"


async def slice_market(session: AsyncSession, parts: dict[str, str]) -> str | None:
    """The market an escalation of this slice belongs to: its own, or its queue's."""
    if "market" in parts:
        return parts["market"]
    if "queue" in parts:
        market: str | None = await session.scalar(
            select(Queue.market_code).where(Queue.name == parts["queue"])
        )
        return market
    return None


def _snapshot(escalation: Escalation, actions: list[EscalationAction]) -> dict[str, Any]:
    return escalation_read(escalation, actions).model_dump(mode="json")


async def _announce(
    session: AsyncSession, escalation: Escalation, rule: EscalationRule | None
) -> None:
    evidence = escalation.evidence or {}
    await record_event(
        session,
        type=EventType.ESCALATION_OPENED,
        data=EscalationOpened(
            id=escalation.id,
            title=escalation.title,
            slice=dict(escalation.slice),
            metric=evidence.get("metric"),
            value=evidence.get("observed"),
            threshold=None if rule is None else rule.threshold,
            baseline=evidence.get("baseline"),
            p_value=evidence.get("p_value"),
            audits=evidence.get("audited"),
            rule_id=escalation.rule_id,
            opened_at=escalation.opened_at,
        ),
        market=escalation.market,
        queue=escalation.slice.get("queue"),
    )


async def _add_breach(
    session: AsyncSession, *, escalation_id: uuid.UUID, evidence: dict[str, Any], now: datetime
) -> None:
    session.add(
        EscalationBreach(
            id=uuid.uuid4(), escalation_id=escalation_id, evaluated_at=now, evidence=evidence
        )
    )
    await session.flush()


async def record_breach(
    session: AsyncSession,
    *,
    rule: EscalationRule,
    parts: dict[str, str],
    evidence: dict[str, Any],
    now: datetime,
    reopen: Escalation | None,
) -> str:
    """A breach of ``rule`` in the slice ``parts``: re-open ``reopen`` (a resolved
    escalation of this rule and slice within its cool-down), else open one unless one is
    unresolved, else add the breach to that one's history. Returns ``reopened``, ``opened``
    or ``recorded``."""
    key = slice_key(parts)
    if reopen is not None:
        reopened = await session.scalar(
            update(Escalation)
            .where(Escalation.id == reopen.id, Escalation.status == "resolved")
            .values(
                status="open",
                reopened_count=Escalation.reopened_count + 1,
                resolved_at=None,
                recovered_at=None,
                evidence=evidence,
            )
            .returning(Escalation.id)
        )
        if reopened is not None:
            escalation = await session.get(Escalation, reopened, populate_existing=True)
            assert escalation is not None
            await _add_breach(session, escalation_id=escalation.id, evidence=evidence, now=now)
            await record_change(
                session,
                actor=None,
                action="escalation.reopened",
                entity_type="escalation",
                entity_id=escalation.id,
                after={"status": "open", "reopened_count": escalation.reopened_count},
            )
            await _announce(session, escalation, rule)
            return "reopened"
    market = await slice_market(session, parts)
    inserted = await session.scalar(
        insert(Escalation)
        .values(
            id=uuid.uuid4(),
            rule_id=rule.id,
            slice=parts,
            slice_key=key,
            market=market,
            title=f"{rule.name}: {rule.metric} in {key}",
            description=None,
            status="open",
            evidence=evidence,
            opened_at=now,
            analysis=[],
            reopened_count=0,
        )
        .on_conflict_do_nothing(index_elements=["rule_id", "slice_key"], index_where=_UNRESOLVED)
        .returning(Escalation.id)
    )
    if inserted is not None:
        escalation = await session.get(Escalation, inserted)
        assert escalation is not None
        await _add_breach(session, escalation_id=escalation.id, evidence=evidence, now=now)
        await record_change(
            session,
            actor=None,
            action="escalation.opened",
            entity_type="escalation",
            entity_id=escalation.id,
            after=_snapshot(escalation, []),
        )
        await _announce(session, escalation, rule)
        return "opened"
    existing = await session.scalar(
        select(Escalation.id).where(
            Escalation.rule_id == rule.id,
            Escalation.slice_key == key,
            Escalation.status != "resolved",
        )
    )
    if existing is None:  # resolved between the insert and this read: the next run sees it
        return "recorded"
    await _add_breach(session, escalation_id=existing, evidence=evidence, now=now)
    return "recorded"


async def record_recovery(session: AsyncSession, *, escalation: Escalation, now: datetime) -> bool:
    """Mark a resolved escalation recovered (once): the slice stayed healthy after it."""
    recovered = await session.scalar(
        update(Escalation)
        .where(
            Escalation.id == escalation.id,
            Escalation.status == "resolved",
            Escalation.recovered_at.is_(None),
        )
        .values(recovered_at=now)
        .returning(Escalation.id)
    )
    if recovered is None:
        return False
    await record_change(
        session,
        actor=None,
        action="escalation.recovered",
        entity_type="escalation",
        entity_id=escalation.id,
        after={"recovered_at": now.isoformat()},
    )
    return True


async def open_manual_escalation(
    session: AsyncSession, *, data: EscalationCreate, actor: Principal, now: datetime
) -> Escalation:
    """An escalation opened by hand about a slice; 403 for a slice outside a market-scoped
    key's markets (a market-scoped key must name a market, or a queue of one)."""
    parts = data.slice.parts()
    if "market" in parts:
        await register_markets(session, [parts["market"]])
    market = await slice_market(session, parts)
    if actor.markets is not None and (market is None or market not in actor.markets):
        raise Forbidden("a market-scoped key opens escalations only in its markets")
    escalation = Escalation(
        id=uuid.uuid4(),
        rule_id=None,
        slice=parts,
        slice_key=slice_key(parts),
        market=market,
        title=data.title,
        description=data.description or None,
        status="open",
        evidence=None,
        opened_at=now,
        opened_by=actor.reviewer_id or actor.key_id,
        analysis=[],
        reopened_count=0,
    )
    session.add(escalation)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="escalation.opened",
        entity_type="escalation",
        entity_id=escalation.id,
        after=_snapshot(escalation, []),
    )
    await _announce(session, escalation, None)
    return escalation


async def _open_actions(session: AsyncSession, escalation_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(EscalationAction)
            .where(
                EscalationAction.escalation_id == escalation_id,
                EscalationAction.completed_at.is_(None),
            )
        )
        or 0
    )


async def update_escalation(
    session: AsyncSession,
    *,
    escalation_id: uuid.UUID,
    data: EscalationUpdate,
    actor: Principal,
    now: datetime,
) -> Escalation:
    """Set the owner, root cause, analysis and status sent; 409 for a move the workflow
    forbids and for resolving while an action is open."""
    escalation = await get_escalation(session, escalation_id=escalation_id, viewer=actor, lock=True)
    actions = (await actions_of(session, [escalation.id]))[escalation.id]
    before = _snapshot(escalation, actions)
    changes = data.model_dump(exclude_unset=True)
    status = changes.pop("status", None)
    if status is not None and status != escalation.status:
        if (escalation.status, status) not in ALLOWED_MOVES:
            raise Conflict(
                f"an escalation cannot move from {escalation.status} to {status} "
                "(open -> investigating -> actions_pending -> resolved, or back from "
                "actions_pending to investigating)"
            )
        if status == "resolved":
            still_open = await _open_actions(session, escalation.id)
            if still_open:
                raise Conflict(f"{still_open} corrective action(s) still open: complete them first")
            escalation.resolved_at = now
            escalation.recovered_at = None
        escalation.status = status
    for name, value in changes.items():
        if name == "analysis":
            escalation.analysis = list(value or [])
        else:
            setattr(escalation, name, value)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="escalation.updated",
        entity_type="escalation",
        entity_id=escalation.id,
        before=before,
        after=_snapshot(escalation, actions),
    )
    return escalation


async def add_action(
    session: AsyncSession,
    *,
    escalation_id: uuid.UUID,
    data: ActionCreate,
    actor: Principal,
) -> EscalationAction:
    """A corrective action with its owner and due date; 409 on a resolved escalation."""
    escalation = await get_escalation(session, escalation_id=escalation_id, viewer=actor, lock=True)
    if escalation.status == "resolved":
        raise Conflict("the escalation is resolved: re-open it by a new breach or open a new one")
    action = EscalationAction(
        id=uuid.uuid4(),
        escalation_id=escalation.id,
        title=data.title,
        owner_id=data.owner_id,
        due_on=data.due_on,
    )
    session.add(action)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="escalation.action_added",
        entity_type="escalation_action",
        entity_id=action.id,
        after={
            "escalation_id": str(escalation.id),
            "title": action.title,
            "owner_id": action.owner_id,
            "due_on": action.due_on.isoformat(),
        },
    )
    return action


async def complete_action(
    session: AsyncSession,
    *,
    escalation_id: uuid.UUID,
    action_id: uuid.UUID,
    actor: Principal,
    now: datetime,
) -> EscalationAction:
    """Mark an action complete; 404 for an action of another escalation, 409 when done."""
    escalation = await get_escalation(session, escalation_id=escalation_id, viewer=actor, lock=True)
    action = await session.scalar(
        select(EscalationAction).where(
            EscalationAction.id == action_id, EscalationAction.escalation_id == escalation.id
        )
    )
    if action is None:
        raise NotFound("action not found")
    if action.completed_at is not None:
        raise Conflict("the action is complete already")
    action.completed_at = now
    action.completed_by = actor.reviewer_id or actor.key_id
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="escalation.action_completed",
        entity_type="escalation_action",
        entity_id=action.id,
        before={"completed_at": None},
        after={"completed_at": now.isoformat(), "completed_by": action.completed_by},
    )
    return action


async def announce_overdue_actions(
    session: AsyncSession, *, now: datetime, limit: int = OVERDUE_BATCH
) -> int:
    """Send ``escalation.action_overdue`` for each open action past its due date, once per
    action and UTC day: the rows are claimed ``FOR UPDATE SKIP LOCKED`` and stamped with the
    day in the event's transaction, so two workers never send one twice."""
    today: date = now.astimezone(UTC).date()
    rows = (
        await session.execute(
            select(EscalationAction, Escalation)
            .join(Escalation, Escalation.id == EscalationAction.escalation_id)
            .where(
                EscalationAction.completed_at.is_(None),
                EscalationAction.due_on < today,
                (EscalationAction.overdue_notified_on.is_(None))
                | (EscalationAction.overdue_notified_on < today),
                Escalation.status != "resolved",
            )
            .order_by(EscalationAction.due_on, EscalationAction.id)
            .limit(limit)
            .with_for_update(of=EscalationAction, skip_locked=True)
        )
    ).all()
    for action, escalation in rows:
        action.overdue_notified_on = today
        await record_event(
            session,
            type=EventType.ESCALATION_ACTION_OVERDUE,
            data=EscalationActionOverdue(
                id=escalation.id,
                title=escalation.title,
                action_id=action.id,
                action=action.title,
                owner=action.owner_id,
                # Due on a day: due by its end (UTC), so overdue from the next day.
                due_at=datetime.combine(action.due_on, time.max, tzinfo=UTC),
            ),
            market=escalation.market,
            queue=escalation.slice.get("queue"),
            recipients=[action.owner_id],
        )
    await session.flush()
    return len(rows)
