"""Builders for disagreements: the rows an incorrect verdict leaves behind (a decision posted
through the signed webhook, its completed Audit, Verdict, open Disagreement and first
DisagreementChange), and moving a disagreement straight into a status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.rollups import Slice, mark_slices_dirty, mark_verdict_slices_dirty
from shared.models import Audit, Decision, Disagreement, DisagreementChange, Verdict
from shared.models.base import utcnow
from tests.conftest import SignedSender, decision_event

Sessionmaker = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Case:
    """An audited decision judged incorrect, and the disagreement it opened."""

    decision_id: int
    audit_id: uuid.UUID
    verdict_id: uuid.UUID
    disagreement_id: uuid.UUID
    moderator_id: str
    auditor_id: str
    market: str


async def post_decision(
    sender: SignedSender, sessionmaker: Sessionmaker, n: int, **fields: Any
) -> Decision:
    """Post one decision through the signed webhook and return it as stored."""
    response = await sender.post(decision_event(n, **fields))
    assert response.status_code == 202, response.text
    async with sessionmaker() as session:
        decision = await session.scalar(select(Decision).where(Decision.event_id == f"evt-{n}"))
    assert decision is not None
    return decision


async def open_disagreement(
    sessionmaker: Sessionmaker,
    decision: Decision,
    *,
    auditor_id: str = "aud-1",
    deadline: timedelta = timedelta(hours=72),
    created_at: datetime | None = None,
    expected_action: str = "approve",
) -> Case:
    """What an incorrect verdict leaves behind: a completed audit, its verdict, and an open
    disagreement with its first history row."""
    now = created_at or utcnow()
    async with sessionmaker() as session, session.begin():
        audit = Audit(
            id=uuid.uuid4(),
            decision_id=decision.id,
            reason="base_rate",
            market=decision.market,
            queue=decision.queue,
            language=decision.language,
            moderator_id=decision.moderator_id,
            policy_labels=decision.policy_labels,
            day=decision.decided_at.date(),
            status="completed",
            priority=0.5,
            auditor_id=auditor_id,
            claimed_at=now,
            completed_at=now,
        )
        session.add(audit)
        await session.flush()
        verdict = Verdict(
            id=uuid.uuid4(),
            audit_id=audit.id,
            decision_id=decision.id,
            auditor_id=auditor_id,
            moderator_id=decision.moderator_id,
            market=decision.market,
            queue=decision.queue,
            day=decision.decided_at.date(),
            outcome="incorrect",
            effective_outcome="incorrect",
            expected_action=expected_action,
            expected_labels=[],
            severity="major",
            error_type="over_enforcement",
            comment="no violation visible",
            policy_versions={},
        )
        session.add(verdict)
        await session.flush()
        # As the verdict endpoint does: the rollups recompute the moderator's slice.
        await mark_slices_dirty(
            session, [Slice(verdict.day, verdict.market, verdict.queue, verdict.moderator_id)]
        )
        disagreement = Disagreement(
            id=uuid.uuid4(),
            audit_id=audit.id,
            verdict_id=verdict.id,
            moderator_id=decision.moderator_id,
            auditor_id=auditor_id,
            market=decision.market,
            status="open",
            dispute_deadline=now + deadline,
            created_at=now,
        )
        session.add(disagreement)
        await session.flush()
        session.add(
            DisagreementChange(
                disagreement_id=disagreement.id,
                from_status=None,
                to_status="open",
                actor=auditor_id,
                created_at=now,
            )
        )
    return Case(
        decision_id=decision.id,
        audit_id=audit.id,
        verdict_id=verdict.id,
        disagreement_id=disagreement.id,
        moderator_id=decision.moderator_id,
        auditor_id=auditor_id,
        market=decision.market,
    )


async def new_case(
    sender: SignedSender, sessionmaker: Sessionmaker, n: int = 1, **options: Any
) -> Case:
    """A decision (``decision_event(n)`` with ``fields``) judged incorrect, disagreement open."""
    fields = options.pop("fields", {})
    decision = await post_decision(sender, sessionmaker, n, **fields)
    return await open_disagreement(sessionmaker, decision, **options)


async def set_status(
    sessionmaker: Sessionmaker, case: Case, status: str, *, disputed_ago: timedelta | None = None
) -> None:
    """Put a disagreement straight into ``status`` (as if the API had moved it there)."""
    async with sessionmaker() as session, session.begin():
        disagreement = await session.get(Disagreement, case.disagreement_id)
        assert disagreement is not None
        session.add(
            DisagreementChange(
                disagreement_id=disagreement.id,
                from_status=disagreement.status,
                to_status=status,
                actor="test",
            )
        )
        disagreement.status = status
        if status == "disputed":
            disagreement.dispute_reason = "I followed the policy"
            disagreement.disputed_at = utcnow() - (disputed_ago or timedelta(0))
        await mark_verdict_slices_dirty(session, verdict_ids=[case.verdict_id])


async def state_of(sessionmaker: Sessionmaker, case: Case) -> tuple[Disagreement, Verdict, int]:
    """The disagreement, its verdict, and how many history rows it has."""
    async with sessionmaker() as session:
        disagreement = await session.get(Disagreement, case.disagreement_id)
        verdict = await session.get(Verdict, case.verdict_id)
        changes = list(
            await session.scalars(
                select(DisagreementChange).where(
                    DisagreementChange.disagreement_id == case.disagreement_id
                )
            )
        )
    assert disagreement is not None
    assert verdict is not None
    return disagreement, verdict, len(changes)
