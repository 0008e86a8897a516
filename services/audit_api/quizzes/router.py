"""Knowledge quizzes: ``/v1/quizzes``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.audit_api.deps import ANY_ROLE, SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.quizzes import service
from shared.schemas.common import Page, Problem
from shared.schemas.training import (
    AssignPlanRequest,
    AssignPlanResult,
    AttemptCreate,
    AttemptQuery,
    AttemptRead,
    QuizCreate,
    QuizQuery,
    QuizRead,
    QuizScores,
    RetakeCreate,
    RetakeRead,
)

router = APIRouter(prefix="/v1/quizzes", tags=["quizzes"])

AuthorDep = Annotated[Principal, Depends(require_roles(*service.QUIZ_MANAGERS))]
ManagerDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]
AnyKeyDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post("", status_code=201, response_model=QuizRead, responses=_PROBLEMS)
async def create_quiz(body: QuizCreate, session: SessionDep, principal: AuthorDep) -> QuizRead:
    """Create a quiz about a policy code or a policy update, for reviewers and/or markets.

    A market assignment covers every reviewer whose profile lists the market.
    """
    quiz = await service.create_quiz(session, data=body, actor=principal)
    return service.quiz_read(quiz, with_answers=True)


@router.get("", response_model=Page[QuizRead])
async def list_quizzes(
    query: Annotated[QuizQuery, Query()], session: SessionDep, principal: AnyKeyDep
) -> Page[QuizRead]:
    """Quizzes, oldest first. Admins, managers and policy POCs see all, with answers; other
    keys see the quizzes assigned to their reviewer, without answers."""
    page = await service.list_quizzes(session, filters=query, actor=principal)
    with_answers = principal.role in service.QUIZ_MANAGERS
    return Page(
        items=[service.quiz_read(quiz, with_answers=with_answers) for quiz in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{quiz_id}", response_model=QuizRead, responses=_PROBLEMS)
async def get_quiz(quiz_id: uuid.UUID, session: SessionDep, principal: AnyKeyDep) -> QuizRead:
    """The quiz: with answers for quiz managers, without for assignees; 404 for others."""
    return await service.get_quiz_for(session, quiz_id=quiz_id, actor=principal)


@router.post(
    "/{quiz_id}/attempts", status_code=201, response_model=AttemptRead, responses=_PROBLEMS
)
async def submit_attempt(
    quiz_id: uuid.UUID, body: AttemptCreate, session: SessionDep, principal: AnyKeyDep
) -> AttemptRead:
    """Submit the caller's answers (a reviewer-bound key of an assignee): the score, whether
    it passed, and every question's correct answer.

    409 after the due date, or for a second attempt when retakes are off and none was
    granted; 422 for answers to questions the quiz does not have.
    """
    return await service.submit_attempt(session, quiz_id=quiz_id, data=body, actor=principal)


@router.get("/{quiz_id}/attempts", response_model=Page[AttemptRead], responses=_PROBLEMS)
async def list_attempts(
    quiz_id: uuid.UUID,
    query: Annotated[AttemptQuery, Query()],
    session: SessionDep,
    principal: AnyKeyDep,
) -> Page[AttemptRead]:
    """Attempts with their results, oldest first: quiz managers see all (filter by
    ``reviewer_id``), other keys their own reviewer's."""
    quiz, page = await service.list_attempts(
        session, quiz_id=quiz_id, reviewer_id=query.reviewer_id, page=query, actor=principal
    )
    show_answers = await service.answers_shown(session, quiz=quiz, actor=principal)
    return Page(
        items=[
            service.attempt_read(quiz, attempt, show_answers=show_answers) for attempt in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.post("/{quiz_id}/retakes", status_code=201, response_model=RetakeRead, responses=_PROBLEMS)
async def grant_retake(
    quiz_id: uuid.UUID, body: RetakeCreate, session: SessionDep, principal: ManagerDep
) -> RetakeRead:
    """Grant an assignee one more attempt, optionally with its own due date."""
    grant = await service.grant_retake(session, quiz_id=quiz_id, data=body, actor=principal)
    return RetakeRead.model_validate(grant)


@router.get("/{quiz_id}/scores", response_model=QuizScores, responses=_PROBLEMS)
async def get_scores(quiz_id: uuid.UUID, session: SessionDep, principal: AuthorDep) -> QuizScores:
    """Per reviewer the best score, per market the pass rate, per question the share of first
    attempts that got it wrong (most-missed first). Market-scoped keys: their markets."""
    return await service.quiz_scores(session, quiz_id=quiz_id, viewer=principal)


@router.post(
    "/{quiz_id}/failures/assign-plan", response_model=AssignPlanResult, responses=_PROBLEMS
)
async def assign_failures_to_plan(
    quiz_id: uuid.UUID, body: AssignPlanRequest, session: SessionDep, principal: ManagerDep
) -> AssignPlanResult:
    """Add every reviewer who attempted the quiz and has not passed it to a (remedial) plan."""
    return await service.assign_failures_to_plan(
        session, quiz_id=quiz_id, plan_id=body.plan_id, actor=principal
    )
