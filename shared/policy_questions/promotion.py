"""Promoting an answered question into a draft policy update: the answer becomes policy text.

The question and its answer are appended to the draft's body in its original language
(``texts[language]["body"]``) as a section ``Q: <question>`` / ``A: <answer>``, and the
question's policy code joins the draft's policy codes. The draft is the one named, or else the
latest draft of the question's market covering its policy code, or else a new draft
("Clarification: <policy code>", in English, for the question's market, taking effect
``NEW_DRAFT_EFFECTIVE_AFTER`` from now until its author sets the date).

Rows are locked question first, then policy update, so a promotion and a publication of the
same draft never interleave: a published update takes no more text (409).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import any_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal
from shared.core.errors import Conflict, NotFound, UnprocessableEntity
from shared.models import PolicyQuestion, PolicyUpdate
from shared.policy_questions.service import actor_name, get_question, question_snapshot

NEW_DRAFT_LANGUAGE = "en"
NEW_DRAFT_EFFECTIVE_AFTER = timedelta(days=14)
# The longest body a policy update may have (the policy-update API's own limit).
MAX_BODY_LENGTH = 100_000


def qa_section(question: str, answer: str) -> str:
    """The text a promoted question adds to a policy update's body."""
    return f"Q: {question}\nA: {answer}"


def appended_body(body: str, section: str) -> str:
    """``body`` with ``section`` after it, a blank line between (just ``section`` if empty)."""
    kept = body.rstrip()
    return f"{kept}\n\n{section}" if kept else section


def _update_snapshot(update: PolicyUpdate) -> dict[str, Any]:
    return {
        "id": str(update.id),
        "status": update.status,
        "language": update.language,
        "texts": update.texts,
        "policy_codes": list(update.policy_codes),
        "markets": list(update.markets),
        "effective_at": update.effective_at.isoformat(),
    }


async def _named_draft(
    session: AsyncSession, *, policy_update_id: uuid.UUID, question: PolicyQuestion
) -> PolicyUpdate:
    update = await session.scalar(
        select(PolicyUpdate).where(PolicyUpdate.id == policy_update_id).with_for_update()
    )
    if update is None:
        raise NotFound("policy update not found")
    if update.status != "draft":
        raise Conflict("the policy update is published: only a draft takes a promoted answer")
    if question.market not in update.markets:
        raise UnprocessableEntity(
            f"the policy update is not for market {question.market}, the question's market",
            errors=[{"loc": ["body", "policy_update_id"], "msg": "update of another market"}],
        )
    return update


async def _latest_draft(session: AsyncSession, *, question: PolicyQuestion) -> PolicyUpdate | None:
    return await session.scalar(
        select(PolicyUpdate)
        .where(
            PolicyUpdate.status == "draft",
            literal(question.market) == any_(PolicyUpdate.markets),
            literal(question.policy_code) == any_(PolicyUpdate.policy_codes),
        )
        .order_by(PolicyUpdate.created_at.desc(), PolicyUpdate.id.desc())
        .limit(1)
        .with_for_update()
    )


async def promote_answer(
    session: AsyncSession,
    *,
    question_id: uuid.UUID,
    policy_update_id: uuid.UUID | None,
    actor: Principal,
    now: datetime,
    sla_hours: int,
) -> PolicyQuestion:
    """Append an answered question to a draft policy update (the module docstring).

    404 for an unknown question or update; 409 for an unanswered question, one promoted
    already, or a published update; 422 for an update not for the question's market.
    """
    question = await get_question(session, question_id=question_id, viewer=actor, lock=True)
    if question.answered_at is None or question.answer is None:
        raise Conflict("the question has no answer yet: answer it before promoting it")
    if question.promoted_to_update_id is not None:
        promoted_to = question.promoted_to_update_id
        raise Conflict(f"the question was promoted already, into policy update {promoted_to}")
    section = qa_section(question.question, question.answer)
    if policy_update_id is not None:
        update: PolicyUpdate | None = await _named_draft(
            session, policy_update_id=policy_update_id, question=question
        )
    else:
        update = await _latest_draft(session, question=question)
    question_before = question_snapshot(question, sla_hours=sla_hours)
    author = await actor_name(session, actor)
    if update is None:
        update = PolicyUpdate(
            id=uuid.uuid4(),
            status="draft",
            language=NEW_DRAFT_LANGUAGE,
            texts={
                NEW_DRAFT_LANGUAGE: {
                    "title": f"Clarification: {question.policy_code}",
                    "summary": (
                        f"How {question.policy_code} applies in {question.market}: "
                        "answers to policy questions."
                    ),
                    "body": section,
                }
            },
            policy_codes=[question.policy_code],
            markets=[question.market],
            effective_at=now + NEW_DRAFT_EFFECTIVE_AFTER,
            created_by=author,
            created_at=now,
        )
        session.add(update)
        await session.flush()
        await record_change(
            session,
            actor=actor,
            action="policy_update.created",
            entity_type="policy_update",
            entity_id=update.id,
            after=_update_snapshot(update),
        )
    else:
        update_before = _update_snapshot(update)
        texts = {language: dict(text) for language, text in (update.texts or {}).items()}
        original = texts.setdefault(update.language, {"title": "", "summary": "", "body": ""})
        body = appended_body(str(original.get("body") or ""), section)
        if len(body) > MAX_BODY_LENGTH:
            raise UnprocessableEntity(
                f"the policy update's body would exceed {MAX_BODY_LENGTH} characters"
            )
        original["body"] = body
        # A new value (not a change inside the old one), so the JSONB column is written.
        update.texts = texts
        if question.policy_code not in update.policy_codes:
            update.policy_codes = [*update.policy_codes, question.policy_code]
        await session.flush()
        await record_change(
            session,
            actor=actor,
            action="policy_update.updated",
            entity_type="policy_update",
            entity_id=update.id,
            before=update_before,
            after=_update_snapshot(update),
        )
    question.promoted_to_update_id = update.id
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="policy_question.promoted",
        entity_type="policy_question",
        entity_id=question.id,
        before=question_before,
        after=question_snapshot(question, sla_hours=sla_hours),
    )
    return question
