"""Knowledge quizzes: creation, attempts and their scoring, retakes, scores, remedial plans.

Rules of an attempt (each refusal stores nothing):

- Only an assignee may attempt: a reviewer named by the quiz, or one whose profile lists a
  market or names the team the quiz is assigned to (resolved at attempt time, from the
  profile as it is then).
- After the due date: 409. A retake grant may carry its own due date.
- A second attempt: allowed when the quiz allows retakes, or when a manager granted one
  retake (``POST /v1/quizzes/{id}/retakes``; each grant is used by one attempt); 409
  otherwise. Attempts of one reviewer at one quiz are serialised by an advisory lock, so two
  concurrent first attempts cannot both be stored.
- Answers to questions the quiz does not have, or two answers to one question: 422. A
  question left unanswered counts as wrong.

Score = correct answers / questions; passed when score >= pass mark. Answers are compared
exactly (after trimming spaces). The per-question statistics use each reviewer's first
attempt: later ones may come after the correct answers were shown.

The correct answers (and which of their answers were right) are shown to the reviewer who
attempted only once they cannot attempt again (``answers_shown``): retakes are off and no
granted retake is pending, or the due date (the pending grant's, else the quiz's) has passed.
Until then an attempt says the score and whether it passed, nothing per question: otherwise
the next attempt would copy the answers and score 1.0. Quiz managers always see them. A
retake granted after the answers were shown tests memory, not knowledge; managers grant
retakes before the answers are out (or write a new quiz).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, any_, false, func, literal, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal, Role
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.events import EventType, QuizAssigned, record_event
from shared.models import Quiz, QuizAttempt, QuizRetakeGrant, Reviewer
from shared.models.base import utcnow
from shared.reference import register_markets, register_policies, register_reviewers
from shared.reviewers.service import counted_reviewers, visible_reviewer_ids
from shared.schemas.training import (
    NO_VIOLATION,
    AssignPlanResult,
    AttemptCreate,
    AttemptRead,
    MarketScore,
    QuestionRead,
    QuestionResult,
    QuestionScore,
    QuizCreate,
    QuizQuery,
    QuizRead,
    QuizScores,
    RetakeCreate,
    ReviewerScore,
    TeamScore,
)
from shared.training_plans import service as training_plans

# Roles that write quizzes and see their answers at any time.
QUIZ_MANAGERS = (Role.ADMIN, Role.MANAGER, Role.POLICY_POC)
_LOCK_ATTEMPTS = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def quiz_read(quiz: Quiz, *, with_answers: bool) -> QuizRead:
    """The quiz; without answers unless ``with_answers``."""
    return QuizRead(
        id=quiz.id,
        title=quiz.title,
        policy_code=quiz.policy_code,
        policy_update_id=quiz.policy_update_id,
        questions=[
            QuestionRead(
                id=q["id"],
                kind=q["kind"],
                prompt=q["prompt"],
                content_id=q.get("content_id"),
                options=q.get("options"),
                answer=q["answer"] if with_answers else None,
            )
            for q in quiz.questions
        ],
        pass_mark=quiz.pass_mark,
        assignee_reviewer_ids=list(quiz.assignee_reviewer_ids),
        assignee_markets=list(quiz.assignee_markets),
        assignee_teams=list(quiz.assignee_teams),
        due_at=quiz.due_at,
        retakes_allowed=quiz.retakes_allowed,
        created_at=quiz.created_at,
    )


def attempt_read(quiz: Quiz, attempt: QuizAttempt, *, show_answers: bool) -> AttemptRead:
    """A scored attempt; per question the correct answer and whether it was given only when
    ``show_answers`` (see ``answers_shown``)."""
    return AttemptRead(
        id=attempt.id,
        quiz_id=attempt.quiz_id,
        reviewer_id=attempt.reviewer_id,
        score=attempt.score,
        passed=attempt.passed,
        correct_count=attempt.correct_count,
        question_count=attempt.question_count,
        submitted_at=attempt.created_at,
        answers_shown=show_answers,
        results=[
            QuestionResult(
                question_id=q["id"],
                answer=attempt.answers.get(q["id"]),
                correct_answer=q["answer"] if show_answers else None,
                correct=attempt.answers.get(q["id"]) == q["answer"] if show_answers else None,
            )
            for q in quiz.questions
        ],
    )


async def can_attempt_again(
    session: AsyncSession, *, quiz: Quiz, reviewer_id: str, now: datetime
) -> bool:
    """Whether the reviewer, having attempted, may still attempt: free retakes before the due
    date, or a pending granted retake before its due date (the quiz's when it has none)."""
    if quiz.retakes_allowed:
        return quiz.due_at is None or now <= quiz.due_at
    grant = await session.scalar(
        select(QuizRetakeGrant)
        .where(
            QuizRetakeGrant.quiz_id == quiz.id,
            QuizRetakeGrant.reviewer_id == reviewer_id,
            QuizRetakeGrant.used_by_attempt_id.is_(None),
        )
        .limit(1)
    )
    if grant is None:
        return False
    due_at = grant.due_at or quiz.due_at
    return due_at is None or now <= due_at


async def answers_shown(session: AsyncSession, *, quiz: Quiz, actor: Principal) -> bool:
    """Whether the caller may see the correct answers in attempts: quiz managers always, a
    reviewer once they cannot attempt again (the module docstring)."""
    if actor.role in QUIZ_MANAGERS:
        return True
    if actor.reviewer_id is None:
        return False
    return not await can_attempt_again(
        session, quiz=quiz, reviewer_id=actor.reviewer_id, now=utcnow()
    )


def score_answers(
    questions: Sequence[dict[str, Any]], answers: dict[str, str]
) -> tuple[int, float]:
    """(correct answers, score in 0..1) of ``answers`` ({question id: answer})."""
    correct = sum(answers.get(q["id"]) == q["answer"] for q in questions)
    return correct, correct / len(questions)


async def create_quiz(session: AsyncSession, *, data: QuizCreate, actor: Principal) -> Quiz:
    """Create a quiz; policy codes, markets and reviewers are registered on first reference."""
    if data.policy_code is not None:
        await register_policies(session, [data.policy_code])
    await register_policies(
        session,
        [q.answer for q in data.questions if q.kind == "label" and q.answer != NO_VIOLATION],
    )
    await register_markets(session, data.assignee_markets)
    await register_reviewers(session, data.assignee_reviewer_ids)
    quiz = Quiz(
        id=uuid.uuid4(),
        title=data.title,
        policy_code=data.policy_code,
        policy_update_id=data.policy_update_id,
        questions=[q.model_dump(mode="json") for q in data.questions],
        pass_mark=data.pass_mark,
        assignee_reviewer_ids=sorted(set(data.assignee_reviewer_ids)),
        assignee_markets=sorted(set(data.assignee_markets)),
        assignee_teams=sorted(set(data.assignee_teams)),
        due_at=data.due_at,
        retakes_allowed=data.retakes_allowed,
        created_by=actor.key_id,
        created_at=utcnow(),
    )
    session.add(quiz)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="quiz.created",
        entity_type="quiz",
        entity_id=quiz.id,
        after=quiz_read(quiz, with_answers=True).model_dump(mode="json"),
    )
    assigned = await assigned_reviewers(session, quiz=quiz)
    await record_quiz_assigned(
        session,
        quiz=quiz,
        markets=list(quiz.assignee_markets),
        reviewer_markets={reviewer_id: markets for reviewer_id, (markets, _) in assigned.items()},
        assignees=len(assigned),
        policy_update_id=_update_id(quiz.policy_update_id),
    )
    return quiz


def _update_id(value: str | None) -> uuid.UUID | None:
    # Quizzes predate the policy-update table and keep the update's id as text.
    try:
        return None if value is None else uuid.UUID(value)
    except ValueError:
        return None


async def record_quiz_assigned(
    session: AsyncSession,
    *,
    quiz: Quiz,
    markets: Sequence[str],
    reviewer_markets: dict[str, list[str]],
    assignees: int,
    policy_update_id: uuid.UUID | None,
) -> None:
    """Record ``quiz.assigned`` for an assignment to ``markets`` (and/or to reviewers).

    Channels are routed by an event's market, so a quiz assigned to markets records one event
    per market, and one with no market when it is assigned by reviewer ids or teams only.
    ``reviewer_markets`` holds the reviewers to tell personally, with the markets of their
    profile: each is a recipient once, of the event of the first of ``markets`` they work
    in; those working in none of them (assigned by id or team) are recipients of the first
    event. ``assignees`` is how many reviewers the quiz is assigned to in all.
    """
    ordered = list(dict.fromkeys(markets))
    recipients: dict[str | None, list[str]] = {market: [] for market in ordered} or {None: []}
    first = next(iter(recipients))
    for reviewer_id in sorted(reviewer_markets):
        listed = set(reviewer_markets[reviewer_id])
        market = next((m for m in ordered if m in listed), first)
        recipients[market].append(reviewer_id)
    payload = QuizAssigned(
        id=quiz.id,
        title=quiz.title,
        policy_code=quiz.policy_code,
        policy_update_id=policy_update_id,
        markets=ordered,
        assignees=assignees,
        due_at=quiz.due_at,
    )
    for market, reviewer_ids in recipients.items():
        await record_event(
            session,
            type=EventType.QUIZ_ASSIGNED,
            data=payload,
            market=market,
            recipients=reviewer_ids,
        )


async def is_assigned(session: AsyncSession, *, quiz: Quiz, reviewer_id: str) -> bool:
    """Whether the quiz names the reviewer, one of the markets of their profile, or its team."""
    if reviewer_id in quiz.assignee_reviewer_ids:
        return True
    if not quiz.assignee_markets and not quiz.assignee_teams:
        return False
    profile = (
        await session.execute(
            select(Reviewer.markets, Reviewer.team).where(Reviewer.id == reviewer_id)
        )
    ).one_or_none()
    if profile is None:
        return False
    markets, team = profile
    if markets and set(markets) & set(quiz.assignee_markets):
        return True
    return team is not None and team in quiz.assignee_teams


async def get_quiz(
    session: AsyncSession,
    *,
    quiz_id: uuid.UUID,
    for_update: bool = False,
    actor: Principal | None = None,
) -> Quiz:
    """The quiz, or 404 (also when ``actor`` is given and may not see it)."""
    query = select(Quiz).where(Quiz.id == quiz_id)
    if actor is not None:
        query = query.where(visible_quizzes(actor))
    quiz = await session.scalar(query.with_for_update() if for_update else query)
    if quiz is None:
        raise NotFound("quiz not found")
    return quiz


def visible_quizzes(actor: Principal) -> ColumnElement[bool]:
    """The quizzes ``actor`` may see, as SQL. Quiz managers: every quiz, or with a
    market-scoped key those assigned to one of its markets or to no market at all. Anyone
    else: the quizzes assigned to their reviewer (by id, by a market of their profile, or by
    their team); none without a reviewer."""
    if actor.role in QUIZ_MANAGERS:
        if actor.markets is None:
            return true()
        return or_(
            Quiz.assignee_markets.overlap(list(actor.markets)),
            func.cardinality(Quiz.assignee_markets) == 0,
        )
    if actor.reviewer_id is None:
        return false()
    profile_markets = (
        select(Reviewer.markets).where(Reviewer.id == actor.reviewer_id).scalar_subquery()
    )
    profile_team = select(Reviewer.team).where(Reviewer.id == actor.reviewer_id).scalar_subquery()
    return or_(
        literal(actor.reviewer_id) == any_(Quiz.assignee_reviewer_ids),
        Quiz.assignee_markets.overlap(profile_markets),
        profile_team == any_(Quiz.assignee_teams),
    )


async def get_quiz_for(session: AsyncSession, *, quiz_id: uuid.UUID, actor: Principal) -> QuizRead:
    """The quiz as the caller may see it (``visible_quizzes``): quiz managers with answers,
    assignees without; anyone else gets 404."""
    quiz = await session.scalar(select(Quiz).where(Quiz.id == quiz_id, visible_quizzes(actor)))
    if quiz is None:
        raise NotFound("quiz not found")
    return quiz_read(quiz, with_answers=actor.role in QUIZ_MANAGERS)


QUIZ_ORDER = Keyset(Quiz.created_at, Quiz.id)
ATTEMPT_ORDER = Keyset(QuizAttempt.created_at, QuizAttempt.id)


async def list_quizzes(
    session: AsyncSession,
    *,
    filters: QuizQuery,
    actor: Principal,
) -> KeysetPage[Quiz]:
    """A page of the quizzes ``actor`` may see (``visible_quizzes``), oldest first."""
    query = select(Quiz).where(visible_quizzes(actor))
    if filters.policy_code is not None:
        query = query.where(Quiz.policy_code == filters.policy_code)
    if filters.policy_update_id is not None:
        query = query.where(Quiz.policy_update_id == filters.policy_update_id)
    quizzes = list(await session.scalars(QUIZ_ORDER.apply(query, filters)))
    return QUIZ_ORDER.page(quizzes, filters)


def _checked_answers(quiz: Quiz, data: AttemptCreate) -> dict[str, str]:
    question_ids = {q["id"] for q in quiz.questions}
    answers: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    for index, given in enumerate(data.answers):
        loc = ["body", "answers", index, "question_id"]
        if given.question_id not in question_ids:
            errors.append({"loc": loc, "msg": f"the quiz has no question '{given.question_id}'"})
        elif given.question_id in answers:
            errors.append({"loc": loc, "msg": f"question '{given.question_id}' answered twice"})
        else:
            answers[given.question_id] = given.answer
    if errors:
        raise UnprocessableEntity("the answers do not fit the quiz's questions", errors=errors)
    return answers


async def submit_attempt(
    session: AsyncSession, *, quiz_id: uuid.UUID, data: AttemptCreate, actor: Principal
) -> AttemptRead:
    """Score the caller's attempt and store it; passing completes their ``pass_quiz`` items."""
    reviewer_id = actor.reviewer_id
    if reviewer_id is None:
        raise Forbidden("only a reviewer's own key may attempt a quiz")
    quiz = await get_quiz(session, quiz_id=quiz_id)
    if not await is_assigned(session, quiz=quiz, reviewer_id=reviewer_id):
        raise Forbidden("this quiz is not assigned to you")
    answers = _checked_answers(quiz, data)
    await session.execute(_LOCK_ATTEMPTS, {"key": f"quiz_attempt:{quiz.id}:{reviewer_id}"})
    now = utcnow()
    previous = await session.scalar(
        select(QuizAttempt.id)
        .where(QuizAttempt.quiz_id == quiz.id, QuizAttempt.reviewer_id == reviewer_id)
        .limit(1)
    )
    grant: QuizRetakeGrant | None = None
    due_at = quiz.due_at
    if previous is not None and not quiz.retakes_allowed:
        grant = await session.scalar(
            select(QuizRetakeGrant)
            .where(
                QuizRetakeGrant.quiz_id == quiz.id,
                QuizRetakeGrant.reviewer_id == reviewer_id,
                QuizRetakeGrant.used_by_attempt_id.is_(None),
            )
            .with_for_update()
        )
        if grant is None:
            raise Conflict("you have attempted this quiz already and retakes are off")
        due_at = grant.due_at or quiz.due_at
    if due_at is not None and now > due_at:
        raise Conflict(f"the quiz was due at {due_at.isoformat()}; attempts are closed")
    correct, score = score_answers(quiz.questions, answers)
    attempt = QuizAttempt(
        id=uuid.uuid4(),
        quiz_id=quiz.id,
        reviewer_id=reviewer_id,
        answers=answers,
        correct_count=correct,
        question_count=len(quiz.questions),
        score=score,
        passed=score >= quiz.pass_mark,
        retake_grant_id=grant.id if grant else None,
        created_at=now,
    )
    session.add(attempt)
    if grant is not None:
        grant.used_by_attempt_id = attempt.id
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="quiz_attempt.submitted",
        entity_type="quiz",
        entity_id=quiz.id,
        after=attempt_read(quiz, attempt, show_answers=True).model_dump(mode="json"),
    )
    result = attempt_read(
        quiz, attempt, show_answers=await answers_shown(session, quiz=quiz, actor=actor)
    )
    if attempt.passed:
        await training_plans.complete_quiz_items(
            session, quiz_id=quiz.id, reviewer_id=reviewer_id, attempt_id=attempt.id, actor=actor
        )
    return result


async def list_attempts(
    session: AsyncSession,
    *,
    quiz_id: uuid.UUID,
    reviewer_id: str | None,
    page: PageRequest,
    actor: Principal,
) -> tuple[Quiz, KeysetPage[QuizAttempt]]:
    """The quiz and a page of its attempts, oldest first; other roles than quiz managers see
    their own."""
    # A market-scoped quiz manager gets 404 outside its markets; others are checked below.
    manager = actor.role in QUIZ_MANAGERS
    quiz = await get_quiz(session, quiz_id=quiz_id, actor=actor if manager else None)
    query = select(QuizAttempt).where(QuizAttempt.quiz_id == quiz.id)
    if not manager:
        if actor.reviewer_id is None or reviewer_id not in (None, actor.reviewer_id):
            raise Forbidden("you may see only your own attempts")
        reviewer_id = actor.reviewer_id
    if reviewer_id is not None:
        query = query.where(QuizAttempt.reviewer_id == reviewer_id)
    attempts = list(await session.scalars(ATTEMPT_ORDER.apply(query, page)))
    return quiz, ATTEMPT_ORDER.page(attempts, page)


async def _reviewer_markets(
    session: AsyncSession, reviewer_ids: Sequence[str]
) -> dict[str, list[str]]:
    rows = await session.execute(
        select(Reviewer.id, Reviewer.markets).where(Reviewer.id.in_(reviewer_ids))
    )
    return {reviewer_id: sorted(markets or []) for reviewer_id, markets in rows}


async def _reviewer_teams(
    session: AsyncSession, reviewer_ids: Sequence[str]
) -> dict[str, str | None]:
    rows = await session.execute(
        select(Reviewer.id, Reviewer.team).where(Reviewer.id.in_(reviewer_ids))
    )
    return {reviewer_id: team for reviewer_id, team in rows}


async def assigned_reviewers(
    session: AsyncSession, *, quiz: Quiz
) -> dict[str, tuple[list[str], str | None]]:
    """Every reviewer the quiz is assigned to (by id, by a market of their profile, by their
    team), with their markets and team."""
    conditions = [Reviewer.id.in_(quiz.assignee_reviewer_ids)]
    if quiz.assignee_markets:
        conditions.append(Reviewer.markets.overlap(list(quiz.assignee_markets)))
    if quiz.assignee_teams:
        conditions.append(Reviewer.team.in_(quiz.assignee_teams))
    rows = await session.execute(
        select(Reviewer.id, Reviewer.markets, Reviewer.team).where(or_(*conditions))
    )
    assigned = {reviewer_id: (sorted(markets or []), team) for reviewer_id, markets, team in rows}
    for reviewer_id in quiz.assignee_reviewer_ids:
        assigned.setdefault(reviewer_id, ([], None))
    return assigned


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def grant_retake(
    session: AsyncSession, *, quiz_id: uuid.UUID, data: RetakeCreate, actor: Principal
) -> QuizRetakeGrant:
    """Grant an assignee one more attempt (409 when retakes are free or one is pending)."""
    quiz = await get_quiz(session, quiz_id=quiz_id, for_update=True, actor=actor)
    if not await is_assigned(session, quiz=quiz, reviewer_id=data.reviewer_id):
        raise UnprocessableEntity(
            f"reviewer '{data.reviewer_id}' is not assigned to this quiz",
            errors=[{"loc": ["body", "reviewer_id"], "msg": "not an assignee of this quiz"}],
        )
    if not await visible_reviewer_ids(session, viewer=actor, reviewer_ids=[data.reviewer_id]):
        raise Forbidden("this key may not act on reviewers outside its markets")
    if quiz.retakes_allowed:
        raise Conflict("this quiz allows retakes already")
    pending = await session.scalar(
        select(QuizRetakeGrant.id).where(
            QuizRetakeGrant.quiz_id == quiz.id,
            QuizRetakeGrant.reviewer_id == data.reviewer_id,
            QuizRetakeGrant.used_by_attempt_id.is_(None),
        )
    )
    if pending is not None:
        raise Conflict("this reviewer has an unused retake already")
    grant = QuizRetakeGrant(
        id=uuid.uuid4(),
        quiz_id=quiz.id,
        reviewer_id=data.reviewer_id,
        due_at=data.due_at,
        granted_by=actor.key_id,
        created_at=utcnow(),
    )
    session.add(grant)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="quiz_retake.granted",
        entity_type="quiz",
        entity_id=quiz.id,
        after={
            "grant_id": str(grant.id),
            "reviewer_id": grant.reviewer_id,
            "due_at": grant.due_at.isoformat() if grant.due_at else None,
        },
    )
    return grant


async def quiz_scores(
    session: AsyncSession, *, quiz_id: uuid.UUID, viewer: Principal
) -> QuizScores:
    """Per reviewer best score; per market and per team (of the reviewers' profiles) the share
    of reviewers who passed and the share of the assigned reviewers who attempted it (the
    completion rate, also for the whole quiz); per question the share of first attempts that
    got it wrong, most-missed first. 404 for a quiz ``viewer`` may not see; a market-scoped
    key counts only the reviewers it may see (``visible_reviewers``) and its markets' rows."""
    quiz = await get_quiz(session, quiz_id=quiz_id, actor=viewer)
    attempts = list(
        await session.scalars(
            select(QuizAttempt)
            .where(QuizAttempt.quiz_id == quiz.id)
            .order_by(QuizAttempt.created_at, QuizAttempt.id)
        )
    )
    by_reviewer: dict[str, list[QuizAttempt]] = defaultdict(list)
    for attempt in attempts:
        by_reviewer[attempt.reviewer_id].append(attempt)
    markets_of = await _reviewer_markets(session, list(by_reviewer))
    teams_of = await _reviewer_teams(session, list(by_reviewer))
    assigned_profiles = await assigned_reviewers(session, quiz=quiz)
    seen = await visible_reviewer_ids(
        session, viewer=viewer, reviewer_ids=[*by_reviewer, *assigned_profiles]
    )
    reviewers: list[ReviewerScore] = []
    for reviewer_id in sorted(by_reviewer):
        markets = markets_of.get(reviewer_id, [])
        if reviewer_id not in seen:
            continue
        own = by_reviewer[reviewer_id]
        reviewers.append(
            ReviewerScore(
                reviewer_id=reviewer_id,
                markets=markets,
                team=teams_of.get(reviewer_id),
                attempts=len(own),
                best_score=max(a.score for a in own),
                passed=any(a.passed for a in own),
            )
        )
    assigned = {
        reviewer_id: profile
        for reviewer_id, profile in assigned_profiles.items()
        if reviewer_id in seen
    }
    # Per market and team: who attempted, who passed, who was assigned.
    per_market: dict[str, tuple[list[bool], set[str]]] = defaultdict(lambda: ([], set()))
    per_team: dict[str, tuple[list[bool], set[str]]] = defaultdict(lambda: ([], set()))
    for score in reviewers:
        for market in score.markets:
            if viewer.can_see_market(market):
                per_market[market][0].append(score.passed)
        if score.team is not None:
            per_team[score.team][0].append(score.passed)
    for reviewer_id, (markets, team) in assigned.items():
        for market in markets:
            if viewer.can_see_market(market):
                per_market[market][1].add(reviewer_id)
        if team is not None:
            per_team[team][1].add(reviewer_id)
    attempted = {score.reviewer_id for score in reviewers}
    markets_out = [
        MarketScore(
            market=market,
            reviewers=len(outcomes),
            passed=sum(outcomes),
            pass_rate=_rate(sum(outcomes), len(outcomes)),
            assigned=len(assignees),
            completion_rate=_rate(len(assignees & attempted), len(assignees)),
        )
        for market, (outcomes, assignees) in sorted(per_market.items())
    ]
    teams_out = [
        TeamScore(
            team=team,
            reviewers=len(outcomes),
            passed=sum(outcomes),
            pass_rate=_rate(sum(outcomes), len(outcomes)),
            assigned=len(assignees),
            completion_rate=_rate(len(assignees & attempted), len(assignees)),
        )
        for team, (outcomes, assignees) in sorted(per_team.items())
    ]
    firsts = [by_reviewer[score.reviewer_id][0] for score in reviewers]
    questions: list[tuple[int, QuestionScore]] = []
    for position, question in enumerate(quiz.questions):
        wrong = sum(first.answers.get(question["id"]) != question["answer"] for first in firsts)
        questions.append(
            (
                position,
                QuestionScore(
                    question_id=question["id"],
                    prompt=question["prompt"],
                    answered=len(firsts),
                    wrong=wrong,
                    wrong_share=wrong / len(firsts) if firsts else 0.0,
                ),
            )
        )
    questions.sort(key=lambda pair: (-pair[1].wrong_share, pair[0]))
    return QuizScores(
        quiz_id=quiz.id,
        assigned=len(assigned),
        attempted=len(attempted & set(assigned)),
        completion_rate=_rate(len(attempted & set(assigned)), len(assigned)),
        reviewers=reviewers,
        markets=markets_out,
        teams=teams_out,
        questions=[score for _, score in questions],
    )


async def assign_failures_to_plan(
    session: AsyncSession, *, quiz_id: uuid.UUID, plan_id: uuid.UUID, actor: Principal
) -> AssignPlanResult:
    """Add every reviewer who attempted the quiz and never passed it to the plan's assignees
    (a market-scoped key: those of its markets)."""
    quiz = await get_quiz(session, quiz_id=quiz_id, actor=actor)
    await training_plans.get_plan(session, plan_id=plan_id)
    outcomes: dict[str, bool] = defaultdict(bool)
    for reviewer_id, passed in await session.execute(
        select(QuizAttempt.reviewer_id, QuizAttempt.passed).where(QuizAttempt.quiz_id == quiz.id)
    ):
        outcomes[reviewer_id] |= passed
    failing = [r for r, passed in outcomes.items() if not passed]
    seen = await visible_reviewer_ids(session, viewer=actor, reviewer_ids=failing)
    failing = [r for r in failing if r in seen]
    added, already = await training_plans.add_assignees(
        session, plan_id=plan_id, reviewer_ids=failing, actor=actor
    )
    return AssignPlanResult(plan_id=plan_id, added=added, already_assigned=already)


@dataclass(frozen=True, slots=True)
class QuizCompletion:
    """A quiz's attempts in a window: how many, by how many reviewers, how many passed."""

    quiz_id: uuid.UUID
    title: str
    policy_code: str | None
    attempts: int
    reviewers: int
    passed: int
    mean_score: float | None


async def quiz_completion(
    session: AsyncSession,
    *,
    viewer: Principal,
    market: str | None,
    attempted_from: datetime,
    attempted_before: datetime,
) -> list[QuizCompletion]:
    """Per quiz ``viewer`` may see (``visible_quizzes``) with attempts submitted in
    ``[attempted_from, attempted_before)``: the attempts, the reviewers who made them, those
    of them with a passing attempt, and the mean score, counting the reviewers
    ``counted_reviewers`` lets it count (a moderator key: itself). By title."""
    reviewers = func.count(QuizAttempt.reviewer_id.distinct())
    query = (
        select(
            Quiz.id,
            Quiz.title,
            Quiz.policy_code,
            func.count(),
            reviewers,
            reviewers.filter(QuizAttempt.passed),
            func.avg(QuizAttempt.score),
        )
        .join(QuizAttempt, QuizAttempt.quiz_id == Quiz.id)
        .where(
            QuizAttempt.created_at >= attempted_from,
            QuizAttempt.created_at < attempted_before,
            visible_quizzes(viewer),
            counted_reviewers(QuizAttempt.reviewer_id, viewer=viewer, market=market),
        )
        .group_by(Quiz.id)
        .order_by(Quiz.title, Quiz.id)
    )
    return [
        QuizCompletion(
            quiz_id=quiz_id,
            title=title,
            policy_code=policy_code,
            attempts=attempts,
            reviewers=attempted,
            passed=passed,
            mean_score=None if mean is None else float(mean),
        )
        for quiz_id, title, policy_code, attempts, attempted, passed, mean in await session.execute(
            query
        )
    ]
