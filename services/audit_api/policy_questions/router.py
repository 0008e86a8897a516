"""Policy questions: ask, answer, promote (``/v1/policy-questions``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query

from services.audit_api.deps import SessionDep, SettingsDep, require_roles
from shared.core.auth import Principal
from shared.models.base import utcnow
from shared.policy_questions import service
from shared.policy_questions.promotion import promote_answer
from shared.schemas.common import Page, Problem
from shared.schemas.policy_questions import (
    PolicyQuestionAnswer,
    PolicyQuestionAsk,
    PolicyQuestionPromote,
    PolicyQuestionQuery,
    PolicyQuestionRead,
)

router = APIRouter(prefix="/v1/policy-questions", tags=["policy questions"])

AskerDep = Annotated[Principal, Depends(require_roles(*service.ASKERS))]
AnswererDep = Annotated[Principal, Depends(require_roles(*service.ANSWERERS))]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post("", status_code=201, response_model=PolicyQuestionRead, responses=_PROBLEMS)
async def ask_question(
    body: PolicyQuestionAsk, session: SessionDep, settings: SettingsDep, principal: AskerDep
) -> PolicyQuestionRead:
    """Ask how a policy code applies in a market: the market's channels and its policy POCs
    hear of it (``policy_question.asked``), and it is due an answer within the question SLA.
    A market-scoped key asks only in its markets (403)."""
    sla = settings.policy_question_sla_hours
    question = await service.ask_question(
        session,
        policy_code=body.policy_code,
        market=body.market,
        question=body.question,
        actor=principal,
        now=utcnow(),
        sla_hours=sla,
    )
    return service.question_read(question, sla_hours=sla)


@router.get("", response_model=Page[PolicyQuestionRead], responses=_PROBLEMS)
async def list_questions(
    query: Annotated[PolicyQuestionQuery, Query()],
    session: SessionDep,
    settings: SettingsDep,
    principal: AskerDep,
) -> Page[PolicyQuestionRead]:
    """Questions, newest first. Moderators and QA auditors see the questions they asked;
    policy POCs, managers and admins every question of their markets."""
    page = await service.list_questions(session, filters=query, viewer=principal)
    sla = settings.policy_question_sla_hours
    return Page(
        items=[service.question_read(q, sla_hours=sla) for q in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{question_id}", response_model=PolicyQuestionRead, responses=_PROBLEMS)
async def get_question(
    question_id: uuid.UUID, session: SessionDep, settings: SettingsDep, principal: AskerDep
) -> PolicyQuestionRead:
    """A question and its answer; 404 outside the caller's markets, 403 for another
    reviewer's question to a moderator or QA auditor."""
    question = await service.get_question(session, question_id=question_id, viewer=principal)
    return service.question_read(question, sla_hours=settings.policy_question_sla_hours)


@router.post("/{question_id}/answer", response_model=PolicyQuestionRead, responses=_PROBLEMS)
async def answer_question(
    question_id: uuid.UUID,
    body: PolicyQuestionAnswer,
    session: SessionDep,
    settings: SettingsDep,
    principal: AnswererDep,
) -> PolicyQuestionRead:
    """Answer a question (once: a second answer is a 409); the asker and the market's
    channels hear of it (``policy_question.answered``)."""
    sla = settings.policy_question_sla_hours
    question = await service.answer_question(
        session,
        question_id=question_id,
        answer=body.answer,
        actor=principal,
        now=utcnow(),
        sla_hours=sla,
    )
    return service.question_read(question, sla_hours=sla)


@router.post("/{question_id}/promote", response_model=PolicyQuestionRead, responses=_PROBLEMS)
async def promote_question(
    question_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    principal: AnswererDep,
    body: Annotated[PolicyQuestionPromote | None, Body()] = None,
) -> PolicyQuestionRead:
    """Append the question and its answer to a draft policy update's body (``Q:`` / ``A:``)
    and add its policy code: the draft ``policy_update_id``, else the latest draft of the
    question's market covering its policy code, else a new draft "Clarification: <code>".
    409 for an unanswered or already promoted question and for a published update, 422 for
    an update of another market."""
    sla = settings.policy_question_sla_hours
    question = await promote_answer(
        session,
        question_id=question_id,
        policy_update_id=body.policy_update_id if body is not None else None,
        actor=principal,
        now=utcnow(),
        sla_hours=sla,
    )
    return service.question_read(question, sla_hours=sla)
