"""Console pages: knowledge quizzes and training plans.

Quizzes: the list, writing one with its assignees, an assignee taking it (the questions
without their answers; the score after submitting, the correct answers only once no attempt
is left, exactly as ``/v1/quizzes`` shows them), and for quiz managers the scores, a retake
grant and the failing reviewers added to a remedial plan. Training plans: their items and
each assignee's progress, who is overdue, and marking an item done. Every page calls
``shared.quizzes.service`` and ``shared.training_plans.service`` as the API routers do.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.forms import (
    REFUSALS,
    FormPage,
    FormRefused,
    lines,
    or_none,
    parse,
    query,
    refusable,
    utc_instant,
    words,
)
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep
from shared.core.auth import ALL_ROLES
from shared.models.base import utcnow
from shared.quizzes import service as quizzes
from shared.schemas.common import PageQuery
from shared.schemas.training import (
    AssignPlanRequest,
    AttemptCreate,
    AttemptQuery,
    CompleteItemRequest,
    OverdueQuery,
    PlanCreate,
    PlanQuery,
    QuizCreate,
    QuizQuery,
    RetakeCreate,
)
from shared.training_plans import service as plans

router = APIRouter()

# The API's roles: any key lists quizzes and plans and attempts (the services decide what
# it sees) ...
AnyoneSignedIn = Annotated[ConsoleContext, Depends(console_page(*ALL_ROLES))]
# ... quiz managers write quizzes and read their scores (POST /v1/quizzes, .../scores) ...
QuizManager = Annotated[ConsoleContext, Depends(console_page(*quizzes.QUIZ_MANAGERS))]
# ... admins and managers grant retakes, fill remedial plans and see who is overdue.
PLAN_MANAGERS = plans.PLAN_MANAGERS
PlanManager = Annotated[ConsoleContext, Depends(console_page(*PLAN_MANAGERS))]
QUESTION_SLOTS = 5
PAGE_SIZE = 100
ANSWER_FIELD = "answer-"


@router.get("/training")
async def overview(
    request: Request,
    session: SessionDep,
    context: AnyoneSignedIn,
    quiz_cursor: Annotated[str | None, Query(max_length=2048)] = None,
    plan_cursor: Annotated[str | None, Query(max_length=2048)] = None,
    overdue_cursor: Annotated[str | None, Query(max_length=2048)] = None,
    market: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The quizzes and plans the person may see (``GET /v1/quizzes``, ``GET
    /v1/training-plans``) and, for admins and managers, the overdue items (``GET
    /v1/training-plans/overdue``)."""
    viewer = context.principal
    quiz_page = await quizzes.list_quizzes(
        session, filters=query(QuizQuery, cursor=quiz_cursor, limit=PAGE_SIZE), actor=viewer
    )
    plan_page = await plans.list_plans(
        session, filters=query(PlanQuery, cursor=plan_cursor, limit=PAGE_SIZE), principal=viewer
    )
    overdue = None
    overdue_filters = query(OverdueQuery, cursor=overdue_cursor, market=market, limit=PAGE_SIZE)
    if context.role in PLAN_MANAGERS:
        overdue = await plans.list_overdue(
            session, market=overdue_filters.market, viewer=viewer, page=overdue_filters
        )
    return render(
        request,
        "training/overview.html",
        context=context,
        quizzes=quiz_page.items,
        quiz_cursor=quiz_page.next_cursor,
        plans=await plans.plan_reads(session, plan_page.items),
        plan_cursor=plan_page.next_cursor,
        overdue=overdue.items if overdue else None,
        overdue_cursor=overdue.next_cursor if overdue else None,
        market=overdue_filters.market or "",
        may_write=context.role in quizzes.QUIZ_MANAGERS,
        may_plan=context.role in PLAN_MANAGERS,
        now=utcnow(),
    )


# --- writing a quiz -------------------------------------------------------------------------

_quiz_form = FormPage("training/new_quiz.html", shows={"slots": range(QUESTION_SLOTS)})


@router.get("/training/quizzes/new")
async def new_quiz_page(request: Request, context: QuizManager) -> Response:
    """The form of a new quiz: what it is about, its questions, its assignees."""
    return _quiz_form(request, context, values={"pass_mark": "80"}, errors=[])


def _percent(text: str) -> float | str:
    """A pass mark typed in percent (80) as the API's share (0.8); text when it is none."""
    try:
        return float(text.strip().replace(",", ".").rstrip("%")) / 100
    except ValueError:
        return text


def _questions(form: Mapping[str, str]) -> list[dict[str, Any]]:
    """The filled question slots (a prompt given), ids ``q1``, ``q2``... by slot."""
    questions = []
    for slot in range(QUESTION_SLOTS):
        prompt = form.get(f"q{slot}-prompt", "").strip()
        if not prompt:
            continue
        question: dict[str, Any] = {
            "id": f"q{slot + 1}",
            "kind": form.get(f"q{slot}-kind", ""),
            "prompt": prompt,
            "answer": form.get(f"q{slot}-answer", ""),
        }
        if content := form.get(f"q{slot}-content", "").strip():
            question["content_id"] = content
        if options := lines(form.get(f"q{slot}-options")):
            question["options"] = options
        questions.append(question)
    return questions


@router.post("/training/quizzes")
async def create_quiz(request: Request, session: SessionDep, context: QuizManager) -> Response:
    """Write the quiz (``POST /v1/quizzes``); its page next."""
    form = await request.form()
    values = {name: value[:20_000] for name, value in form.items() if isinstance(value, str)}
    try:
        data = parse(
            QuizCreate,
            {
                "title": values.get("title", "").strip(),
                "policy_code": or_none(values.get("policy_code")),
                "policy_update_id": or_none(values.get("policy_update_id")),
                "questions": _questions(values),
                "pass_mark": _percent(values.get("pass_mark", "")),
                "assignee_reviewer_ids": words(values.get("assignee_reviewer_ids")),
                "assignee_markets": words(values.get("assignee_markets")),
                "assignee_teams": words(values.get("assignee_teams")),
                "due_at": utc_instant(values.get("due_at")),
                "retakes_allowed": values.get("retakes_allowed") == "on",
            },
        )
        async with refusable(session):
            quiz = await quizzes.create_quiz(session, data=data, actor=context.principal)
    except FormRefused as refused:
        return _quiz_form(
            request, context, values=values, errors=refused.messages, status_code=refused.status
        )
    return RedirectResponse(f"/console/training/quizzes/{quiz.id}", status_code=303)


# --- one quiz -------------------------------------------------------------------------------


async def _quiz_page(
    request: Request,
    session: AsyncSession,
    context: ConsoleContext,
    quiz_id: uuid.UUID,
    *,
    errors: Mapping[str, list[str]] | None = None,
    values: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    viewer = context.principal
    # The quiz as the API shows it to this person: answers for quiz managers only.
    shown = await quizzes.get_quiz_for(session, quiz_id=quiz_id, actor=viewer)
    quiz = await quizzes.get_quiz(session, quiz_id=quiz_id)
    manager = context.role in quizzes.QUIZ_MANAGERS
    scores = await quizzes.quiz_scores(session, quiz_id=quiz_id, viewer=viewer) if manager else None
    mine: list[Any] = []
    may_attempt = False
    assigned = False
    if viewer.reviewer_id is not None:
        assigned = await quizzes.is_assigned(session, quiz=quiz, reviewer_id=viewer.reviewer_id)
    if assigned:
        _, attempts = await quizzes.list_attempts(
            session,
            quiz_id=quiz_id,
            reviewer_id=viewer.reviewer_id,
            page=AttemptQuery(limit=PAGE_SIZE),
            actor=viewer,
        )
        show_answers = await quizzes.answers_shown(session, quiz=quiz, actor=viewer)
        mine = [
            quizzes.attempt_read(quiz, attempt, show_answers=show_answers)
            for attempt in attempts.items
        ]
        now = utcnow()
        if mine:
            may_attempt = await quizzes.can_attempt_again(
                session, quiz=quiz, reviewer_id=viewer.reviewer_id or "", now=now
            )
        else:
            may_attempt = quiz.due_at is None or now <= quiz.due_at
    plan_choices = []
    if context.role in PLAN_MANAGERS:
        listed = await plans.list_plans(
            session, filters=PlanQuery(limit=PAGE_SIZE), principal=viewer
        )
        plan_choices = [plan for plan in listed.items if plan.kind == "remedial"] or list(
            listed.items
        )
    return render(
        request,
        "training/quiz.html",
        context=context,
        status_code=status_code,
        quiz=shown,
        prompts={question.id: question.prompt for question in shown.questions},
        manager=manager,
        plan_manager=context.role in PLAN_MANAGERS,
        scores=scores,
        attempts=mine,
        assigned=assigned,
        may_attempt=may_attempt,
        plan_choices=plan_choices,
        errors=errors or {},
        values=values or {},
    )


@router.get("/training/quizzes/{quiz_id}")
async def quiz_page(
    request: Request, session: SessionDep, context: AnyoneSignedIn, quiz_id: uuid.UUID
) -> Response:
    """One quiz (``GET /v1/quizzes/{id}``): for an assignee the form to take it and their
    attempts; for quiz managers the answers and the scores (``.../scores``)."""
    return await _quiz_page(request, session, context, quiz_id)


@router.post("/training/quizzes/{quiz_id}/attempts")
async def submit_attempt(
    request: Request, session: SessionDep, context: AnyoneSignedIn, quiz_id: uuid.UUID
) -> Response:
    """Submit the person's answers (``POST /v1/quizzes/{id}/attempts``): field
    ``answer-<n>`` for the n-th question; one left empty counts as wrong."""
    shown = await quizzes.get_quiz_for(session, quiz_id=quiz_id, actor=context.principal)
    form = await request.form()
    answers = []
    for position, question in enumerate(shown.questions):
        value = form.get(f"{ANSWER_FIELD}{position}")
        if isinstance(value, str) and value.strip():
            answers.append({"question_id": question.id, "answer": value.strip()[:200]})
    try:
        if not answers:
            # A blank form would spend an attempt on a score of 0: most likely a slip.
            raise FormRefused({"answers": ["answer at least one question"]})
        data = parse(AttemptCreate, {"answers": answers})
        async with refusable(session, show=REFUSALS):
            await quizzes.submit_attempt(
                session, quiz_id=quiz_id, data=data, actor=context.principal
            )
    except FormRefused as refused:
        return await _quiz_page(
            request,
            session,
            context,
            quiz_id,
            errors={"attempt": refused.messages},
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/training/quizzes/{quiz_id}#attempts", status_code=303)


@router.post("/training/quizzes/{quiz_id}/retakes")
async def grant_retake(
    request: Request,
    session: SessionDep,
    context: PlanManager,
    quiz_id: uuid.UUID,
    reviewer_id: Annotated[str, Form(max_length=128)] = "",
    due_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Grant an assignee one more attempt (``POST /v1/quizzes/{id}/retakes``)."""
    values = {"retake_reviewer": reviewer_id, "retake_due": due_at}
    try:
        data = parse(RetakeCreate, {"reviewer_id": reviewer_id, "due_at": utc_instant(due_at)})
        async with refusable(session, show=REFUSALS):
            await quizzes.grant_retake(session, quiz_id=quiz_id, data=data, actor=context.principal)
    except FormRefused as refused:
        return await _quiz_page(
            request,
            session,
            context,
            quiz_id,
            errors={"retake": refused.messages},
            values=values,
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/training/quizzes/{quiz_id}#scores", status_code=303)


@router.post("/training/quizzes/{quiz_id}/assign-plan")
async def assign_failures(
    request: Request,
    session: SessionDep,
    context: PlanManager,
    quiz_id: uuid.UUID,
    plan_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Add every reviewer who attempted and never passed to a plan (``POST
    .../failures/assign-plan``); the plan's page next."""
    try:
        data = parse(AssignPlanRequest, {"plan_id": plan_id})
        async with refusable(session):
            await quizzes.assign_failures_to_plan(
                session, quiz_id=quiz_id, plan_id=data.plan_id, actor=context.principal
            )
    except FormRefused as refused:
        return await _quiz_page(
            request,
            session,
            context,
            quiz_id,
            errors={"plan": refused.messages},
            status_code=refused.status,
        )
    return RedirectResponse(f"/console/training/plans/{data.plan_id}", status_code=303)


# --- training plans -------------------------------------------------------------------------

_plan_form = FormPage("training/new_plan.html")


@router.get("/training/plans/new")
async def new_plan_page(request: Request, context: PlanManager) -> Response:
    """The form of a new onboarding or remedial plan."""
    owner = context.principal.reviewer_id or ""
    return _plan_form(request, context, values={"kind": "remedial", "owners": owner}, errors=[])


def _plan_items(text: str) -> list[dict[str, Any]]:
    """One item a line: ``id, kind, what, due`` where *what* is the policy code
    (read_policy), the quiz id (pass_quiz) or the number of audits (shadow_audits, then
    optionally a fifth part: their policy code); *due* is a UTC date and time."""
    items: list[dict[str, Any]] = []
    for line in lines(text):
        parts = [part.strip() for part in line.split(",")]
        parts += [""] * (4 - len(parts))
        item_id, kind, what, due = parts[:4]
        item: dict[str, Any] = {"id": item_id, "kind": kind, "due_at": utc_instant(due)}
        if kind == "read_policy":
            item["policy_code"] = what or None
        elif kind == "pass_quiz":
            item["quiz_id"] = what or None
        elif kind == "shadow_audits":
            item["count"] = what or None
            if len(parts) > 4 and parts[4]:
                item["policy_code"] = parts[4]
        if len(parts) > (5 if kind == "shadow_audits" else 4):
            item["unexpected"] = ",".join(parts[5 if kind == "shadow_audits" else 4 :])
        items.append(item)
    return items


@router.post("/training/plans")
async def create_plan(
    request: Request,
    session: SessionDep,
    context: PlanManager,
    title: Annotated[str, Form(max_length=300)] = "",
    kind: Annotated[str, Form(max_length=32)] = "",
    owners: Annotated[str, Form(max_length=10_000)] = "",
    assignees: Annotated[str, Form(max_length=700_000)] = "",
    items: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    """Create the plan (``POST /v1/training-plans``): every assignee gets every item."""
    values = {
        "title": title,
        "kind": kind,
        "owners": owners,
        "assignees": assignees,
        "items": items,
    }
    try:
        data = parse(
            PlanCreate,
            {
                "title": title.strip(),
                "kind": kind,
                "owners": words(owners),
                "assignees": words(assignees),
                "items": _plan_items(items),
            },
        )
        async with refusable(session):
            plan = await plans.create_plan(session, data=data, actor=context.principal)
    except FormRefused as refused:
        return _plan_form(
            request, context, values=values, errors=refused.messages, status_code=refused.status
        )
    return RedirectResponse(f"/console/training/plans/{plan.id}", status_code=303)


@router.get("/training/plans/{plan_id}")
async def plan_page(
    request: Request,
    session: SessionDep,
    context: AnyoneSignedIn,
    plan_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """A plan's items and its assignees' progress (``GET /v1/training-plans/{id}`` and
    ``.../progress``): every assignee for managers and owners, one's own for an assignee."""
    plan = await plans.get_plan(session, plan_id=plan_id)
    sees_all = await plans.check_plan_access(session, plan=plan, actor=context.principal)
    page = await plans.plan_progress(
        session,
        plan=plan,
        only_reviewer=None if sees_all else context.principal.reviewer_id,
        page=query(PageQuery, cursor=cursor, limit=PAGE_SIZE),
    )
    return render(
        request,
        "training/plan.html",
        context=context,
        plan=await plans.plan_read(session, plan),
        progress=page.items,
        next_cursor=page.next_cursor,
        supervises=sees_all,
    )


@router.post("/training/plans/{plan_id}/complete")
async def complete_item(
    session: SessionDep,
    context: AnyoneSignedIn,
    plan_id: uuid.UUID,
    item_id: Annotated[str, Form(min_length=1, max_length=64)],
    reviewer_id: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Mark an item done (``POST .../items/{item_id}/complete``): one's own, or an
    assignee's (``reviewer_id``) as the plan's owner or a manager."""
    body = CompleteItemRequest(reviewer_id=reviewer_id.strip() or None)
    await plans.complete_item(
        session,
        plan_id=plan_id,
        item_id=item_id,
        reviewer_id=body.reviewer_id,
        actor=context.principal,
    )
    return RedirectResponse(f"/console/training/plans/{plan_id}", status_code=303)
