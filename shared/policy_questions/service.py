"""Policy questions: asked on a policy code in a market, routed to that market's policy POCs,
answered once.

Who sees a question (``visible_questions``, for the list and a single question alike):
moderators and QA auditors their own questions; policy POCs, managers and admins every
question of their markets (a key for every market: all of them). Asking, a market-scoped key
asks only in its markets (403 for another). Answering, a policy POC or an admin whose markets
include the question's; outside them the question is as unknown as one that does not exist.

A question's ``asked_by`` is the asker's reviewer id, or the name of their API key when the
key is bound to no reviewer; a moderator's or auditor's unbound key sees the questions asked
under its name.

The market's policy POCs (``market_policy_pocs``) are the reviewers bound to unrevoked
``policy_poc`` keys whose markets include the market (or that cover every market): they are
the recipients of ``policy_question.asked`` and ``policy_question.overdue``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, any_, false, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal, Role
from shared.core.errors import Conflict, Forbidden, NotFound
from shared.core.pagination import Keyset, KeysetPage
from shared.events import (
    EventType,
    PolicyQuestionAnswered,
    PolicyQuestionAsked,
    record_event,
)
from shared.models import ApiKey, PolicyQuestion
from shared.reference import register_markets, register_policies
from shared.schemas.policy_questions import PolicyQuestionQuery, PolicyQuestionRead

# Who may ask: anyone who works with the policies (every role a key can have).
ASKERS = frozenset(Role)
# Who answers, and promotes an answer into a policy update.
ANSWERERS = frozenset({Role.POLICY_POC, Role.ADMIN})
# Who sees every question of their markets; the other roles see the questions they asked.
OVERSEERS = frozenset({Role.POLICY_POC, Role.MANAGER, Role.ADMIN})

QUESTION_ORDER = Keyset(PolicyQuestion.created_at, PolicyQuestion.id, descending=True)


async def actor_name(session: AsyncSession, principal: Principal) -> str:
    """Who ``principal`` is in a question: its reviewer id, else its API key's name."""
    if principal.reviewer_id is not None:
        return principal.reviewer_id
    try:
        key_id = uuid.UUID(principal.key_id)
    except ValueError:
        return principal.key_id[:128]
    name = await session.scalar(select(ApiKey.name).where(ApiKey.id == key_id))
    # A principal comes from a stored key; its id is the fallback should the key be gone.
    return (name or principal.key_id)[:128]


def answer_due_at(question: PolicyQuestion, *, sla_hours: int) -> datetime:
    """When ``question`` becomes overdue: ``sla_hours`` after it was asked."""
    return question.created_at + timedelta(hours=sla_hours)


def question_read(question: PolicyQuestion, *, sla_hours: int) -> PolicyQuestionRead:
    """The API's view of a question."""
    return PolicyQuestionRead(
        id=question.id,
        policy_code=question.policy_code,
        market=question.market,
        question=question.question,
        status="open" if question.answered_at is None else "answered",
        asked_by=question.asked_by,
        asked_at=question.created_at,
        answer_due_at=answer_due_at(question, sla_hours=sla_hours),
        answer=question.answer,
        answered_by=question.answered_by,
        answered_at=question.answered_at,
        overdue_notified_at=question.overdue_notified_at,
        promoted_to_update_id=question.promoted_to_update_id,
    )


def question_snapshot(question: PolicyQuestion, *, sla_hours: int) -> dict[str, object]:
    """The question as the audit log keeps it (its API view)."""
    return question_read(question, sla_hours=sla_hours).model_dump(mode="json")


async def market_policy_pocs(session: AsyncSession, *, market: str) -> list[str]:
    """The reviewer ids bound to unrevoked policy_poc keys covering ``market``, sorted."""
    return sorted(
        set(
            await session.scalars(
                select(ApiKey.reviewer_id).where(
                    ApiKey.role == Role.POLICY_POC.value,
                    ApiKey.revoked_at.is_(None),
                    ApiKey.reviewer_id.is_not(None),
                    or_(ApiKey.markets.is_(None), literal(market) == any_(ApiKey.markets)),
                )
            )
        )
    )


def visible_questions(viewer: Principal, *, name: str) -> ColumnElement[bool]:
    """The questions ``viewer`` (known in questions as ``name``, see ``actor_name``) may see."""
    own = PolicyQuestion.asked_by == name
    if viewer.role not in OVERSEERS:
        return own
    if viewer.markets is None:
        return true()
    return or_(own, PolicyQuestion.market.in_(viewer.markets) if viewer.markets else false())


async def ask_question(
    session: AsyncSession,
    *,
    policy_code: str,
    market: str,
    question: str,
    actor: Principal,
    now: datetime,
    sla_hours: int,
) -> PolicyQuestion:
    """Store a question and send ``policy_question.asked`` to the market's channels and its
    policy POCs; 403 for a market outside a market-scoped key's markets."""
    if not actor.can_see_market(market):
        raise Forbidden(f"this key may not ask about market '{market}'")
    await register_markets(session, [market])
    await register_policies(session, [policy_code])
    row = PolicyQuestion(
        id=uuid.uuid4(),
        policy_code=policy_code,
        market=market,
        question=question,
        asked_by=await actor_name(session, actor),
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await record_event(
        session,
        type=EventType.POLICY_QUESTION_ASKED,
        data=PolicyQuestionAsked(
            id=row.id,
            policy_code=row.policy_code,
            market=row.market,
            question=row.question,
            asked_by=row.asked_by,
            answer_due_at=answer_due_at(row, sla_hours=sla_hours),
        ),
        market=market,
        recipients=await market_policy_pocs(session, market=market),
    )
    await record_change(
        session,
        actor=actor,
        action="policy_question.asked",
        entity_type="policy_question",
        entity_id=row.id,
        after=question_snapshot(row, sla_hours=sla_hours),
    )
    return row


async def get_question(
    session: AsyncSession, *, question_id: uuid.UUID, viewer: Principal, lock: bool = False
) -> PolicyQuestion:
    """The question if ``viewer`` may see it: 404 when unknown or of another market, 403 for
    another reviewer's question of the viewer's own markets. ``lock``: FOR UPDATE."""
    query = select(PolicyQuestion).where(PolicyQuestion.id == question_id)
    if lock:
        query = query.with_for_update()
    question = await session.scalar(query)
    if question is None or not viewer.can_see_market(question.market):
        # Another market's question must not be revealed to exist.
        raise NotFound("policy question not found")
    name = await actor_name(session, viewer)
    if viewer.role not in OVERSEERS and question.asked_by != name:
        raise Forbidden("moderators and QA auditors see only the questions they asked")
    return question


async def list_questions(
    session: AsyncSession, *, filters: PolicyQuestionQuery, viewer: Principal
) -> KeysetPage[PolicyQuestion]:
    """A page of the questions ``viewer`` may see, newest first.

    A market outside a market-scoped key's markets is a 403, and so is a moderator's or an
    auditor's filter on another asker (they see only their own questions).
    """
    if filters.market is not None and not viewer.can_see_market(filters.market):
        raise Forbidden(f"this key may not see market {filters.market}")
    name = await actor_name(session, viewer)
    if viewer.role not in OVERSEERS and filters.asked_by not in (None, name):
        raise Forbidden("moderators and QA auditors see only the questions they asked")
    query = select(PolicyQuestion).where(visible_questions(viewer, name=name))
    if filters.market is not None:
        query = query.where(PolicyQuestion.market == filters.market)
    if filters.policy_code is not None:
        query = query.where(PolicyQuestion.policy_code == filters.policy_code)
    if filters.status == "open":
        query = query.where(PolicyQuestion.answered_at.is_(None))
    elif filters.status == "answered":
        query = query.where(PolicyQuestion.answered_at.is_not(None))
    if filters.asked_by is not None:
        query = query.where(PolicyQuestion.asked_by == filters.asked_by)
    rows = list(await session.scalars(QUESTION_ORDER.apply(query, filters)))
    return QUESTION_ORDER.page(rows, filters)


async def answer_question(
    session: AsyncSession,
    *,
    question_id: uuid.UUID,
    answer: str,
    actor: Principal,
    now: datetime,
    sla_hours: int,
) -> PolicyQuestion:
    """Answer a question once and tell the asker (``policy_question.answered``, to the
    market's channels and to the asker personally); 409 when it has an answer already.

    The question's row is locked first, so of two concurrent answers one wins and the other
    sees the answer and gets its 409.
    """
    question = await get_question(session, question_id=question_id, viewer=actor, lock=True)
    if question.answered_at is not None:
        raise Conflict(f"the question was answered already, by {question.answered_by}")
    before = question_snapshot(question, sla_hours=sla_hours)
    question.answer = answer
    question.answered_by = await actor_name(session, actor)
    question.answered_at = now
    await session.flush()
    await record_event(
        session,
        type=EventType.POLICY_QUESTION_ANSWERED,
        data=PolicyQuestionAnswered(
            id=question.id,
            policy_code=question.policy_code,
            market=question.market,
            question=question.question,
            answer=answer,
            asked_by=question.asked_by,
            answered_by=question.answered_by,
            answered_at=now,
        ),
        market=question.market,
        # The asker's personal e-mail (when their profile has an address; an unbound key's
        # name matches no reviewer and so reaches no one).
        recipients=[question.asked_by],
    )
    await record_change(
        session,
        actor=actor,
        action="policy_question.answered",
        entity_type="policy_question",
        entity_id=question.id,
        before=before,
        after=question_snapshot(question, sla_hours=sla_hours),
    )
    return question
