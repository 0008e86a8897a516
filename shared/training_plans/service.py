"""Training plans: onboarding and remedial plans, their items, assignees and progress.

Each assignee has one progress row per item (``training_item_progress``): done or not, when,
by whom, and whether the overdue reminder went out. A plan's assignees are the reviewers
with progress rows. ``pass_quiz`` items complete themselves when the assignee passes the quiz
(``complete_quiz_items``, called by the quiz attempt service), also when the quiz was passed
before the reviewer was added to the plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import any_, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import Actor, record_change
from shared.core.auth import Principal, Role
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.models import (
    Quiz,
    QuizAttempt,
    Reviewer,
    TrainingItemProgress,
    TrainingPlan,
    TrainingPlanItem,
)
from shared.models.base import utcnow
from shared.reference import register_policies, register_reviewers
from shared.schemas.training import (
    AssigneeProgress,
    ItemProgress,
    OverdueItem,
    PlanCreate,
    PlanItemRead,
    PlanQuery,
    PlanRead,
)

PLAN_MANAGERS = (Role.ADMIN, Role.MANAGER)


async def _items(session: AsyncSession, plan_id: uuid.UUID) -> list[TrainingPlanItem]:
    return list(
        await session.scalars(
            select(TrainingPlanItem)
            .where(TrainingPlanItem.plan_id == plan_id)
            .order_by(TrainingPlanItem.position)
        )
    )


async def _assignees(session: AsyncSession, plan_id: uuid.UUID) -> list[str]:
    return list(
        await session.scalars(
            select(TrainingItemProgress.reviewer_id)
            .where(TrainingItemProgress.plan_id == plan_id)
            .distinct()
            .order_by(TrainingItemProgress.reviewer_id)
        )
    )


async def plan_read(session: AsyncSession, plan: TrainingPlan) -> PlanRead:
    """The plan with its items and assignees."""
    return PlanRead(
        id=plan.id,
        title=plan.title,
        kind=plan.kind,
        owners=list(plan.owners),
        assignees=await _assignees(session, plan.id),
        items=[PlanItemRead.model_validate(item) for item in await _items(session, plan.id)],
        created_at=plan.created_at,
    )


async def create_plan(session: AsyncSession, *, data: PlanCreate, actor: Principal) -> TrainingPlan:
    """Create a plan with its items; every assignee gets every item (422 for unknown quizzes)."""
    quiz_ids = {item.quiz_id for item in data.items if item.quiz_id is not None}
    known = set(await session.scalars(select(Quiz.id).where(Quiz.id.in_(quiz_ids))))
    errors = [
        {"loc": ["body", "items", index, "quiz_id"], "msg": f"quiz {item.quiz_id} does not exist"}
        for index, item in enumerate(data.items)
        if item.quiz_id is not None and item.quiz_id not in known
    ]
    if errors:
        raise UnprocessableEntity("a pass_quiz item names an unknown quiz", errors=errors)
    await register_reviewers(session, [*data.owners, *data.assignees])
    await register_policies(session, [i.policy_code for i in data.items if i.policy_code])
    plan = TrainingPlan(
        id=uuid.uuid4(),
        title=data.title,
        kind=data.kind,
        owners=sorted(set(data.owners)),
        created_by=actor.key_id,
        created_at=utcnow(),
    )
    session.add(plan)
    await session.flush()
    for position, item in enumerate(data.items):
        session.add(
            TrainingPlanItem(
                plan_id=plan.id,
                id=item.id,
                position=position,
                kind=item.kind,
                policy_code=item.policy_code,
                quiz_id=item.quiz_id,
                count=item.count,
                due_at=item.due_at,
            )
        )
    await session.flush()
    await _add_progress_rows(session, plan_id=plan.id, reviewer_ids=sorted(set(data.assignees)))
    await record_change(
        session,
        actor=actor,
        action="training_plan.created",
        entity_type="training_plan",
        entity_id=plan.id,
        after=(await plan_read(session, plan)).model_dump(mode="json"),
    )
    return plan


async def _add_progress_rows(
    session: AsyncSession, *, plan_id: uuid.UUID, reviewer_ids: Sequence[str]
) -> None:
    """Progress rows for new assignees; ``pass_quiz`` items they passed already are done."""
    if not reviewer_ids:
        return
    items = await _items(session, plan_id)
    quiz_ids = {item.quiz_id for item in items if item.quiz_id is not None}
    passed: set[tuple[uuid.UUID, str]] = set()
    if quiz_ids:
        rows = await session.execute(
            select(QuizAttempt.quiz_id, QuizAttempt.reviewer_id, QuizAttempt.id).where(
                QuizAttempt.quiz_id.in_(quiz_ids),
                QuizAttempt.reviewer_id.in_(reviewer_ids),
                QuizAttempt.passed.is_(True),
            )
        )
        passed_by: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        for quiz_id, reviewer_id, attempt_id in rows:
            passed_by.setdefault((quiz_id, reviewer_id), attempt_id)
        passed = set(passed_by)
    now = utcnow()
    for reviewer_id in reviewer_ids:
        for item in items:
            done = item.quiz_id is not None and (item.quiz_id, reviewer_id) in passed
            session.add(
                TrainingItemProgress(
                    plan_id=plan_id,
                    item_id=item.id,
                    reviewer_id=reviewer_id,
                    due_at=item.due_at,
                    assigned_at=now,
                    completed_at=now if done else None,
                    completed_by=f"quiz:{item.quiz_id}" if done else None,
                )
            )
    await session.flush()


async def get_plan(
    session: AsyncSession, *, plan_id: uuid.UUID, for_update: bool = False
) -> TrainingPlan:
    """The plan, or 404."""
    plan = await session.get(TrainingPlan, plan_id, with_for_update=for_update)
    if plan is None:
        raise NotFound("training plan not found")
    return plan


async def check_plan_access(session: AsyncSession, *, plan: TrainingPlan, actor: Principal) -> bool:
    """Whether the caller sees the whole plan (True) or only their own items (False); 403
    when neither a plan manager, an owner nor an assignee."""
    if actor.role in PLAN_MANAGERS or (actor.reviewer_id and actor.reviewer_id in plan.owners):
        return True
    if actor.reviewer_id and actor.reviewer_id in await _assignees(session, plan.id):
        return False
    raise Forbidden("only plan managers, the plan's owners and its assignees may see it")


async def list_plans(
    session: AsyncSession,
    *,
    filters: PlanQuery,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[TrainingPlan]:
    """Plans, oldest first, ``filters.limit + 1`` of them (the extra says a page follows)."""
    query = select(TrainingPlan)
    if filters.kind is not None:
        query = query.where(TrainingPlan.kind == filters.kind)
    if filters.reviewer_id is not None:
        query = query.where(
            TrainingPlan.id.in_(
                select(TrainingItemProgress.plan_id).where(
                    TrainingItemProgress.reviewer_id == filters.reviewer_id
                )
            )
        )
    if after is not None:
        query = query.where(tuple_(TrainingPlan.created_at, TrainingPlan.id) > tuple_(*after))
    query = query.order_by(TrainingPlan.created_at, TrainingPlan.id).limit(filters.limit + 1)
    return list(await session.scalars(query))


async def add_assignees(
    session: AsyncSession, *, plan_id: uuid.UUID, reviewer_ids: Iterable[str], actor: Actor
) -> tuple[list[str], list[str]]:
    """Add reviewers to a plan's assignees: returns (added, already assigned)."""
    plan = await get_plan(session, plan_id=plan_id, for_update=True)
    wanted = sorted(set(reviewer_ids))
    current = set(await _assignees(session, plan.id))
    added = [r for r in wanted if r not in current]
    already = [r for r in wanted if r in current]
    if added:
        await register_reviewers(session, added)
        await _add_progress_rows(session, plan_id=plan.id, reviewer_ids=added)
        await record_change(
            session,
            actor=actor,
            action="training_plan.assignees_added",
            entity_type="training_plan",
            entity_id=plan.id,
            before={"assignees": sorted(current)},
            after={"assignees": sorted(current | set(added))},
        )
    return added, already


def _progress(row: TrainingItemProgress, kind: str, now: datetime) -> ItemProgress:
    return ItemProgress(
        plan_id=row.plan_id,
        item_id=row.item_id,
        kind=kind,
        reviewer_id=row.reviewer_id,
        due_at=row.due_at,
        done=row.completed_at is not None,
        completed_at=row.completed_at,
        completed_by=row.completed_by,
        overdue=row.completed_at is None and row.due_at < now,
    )


async def complete_item(
    session: AsyncSession,
    *,
    plan_id: uuid.UUID,
    item_id: str,
    reviewer_id: str | None,
    actor: Principal,
) -> ItemProgress:
    """Mark an assignee's item done: the assignee themself, or an owner or plan manager on
    their behalf. A ``pass_quiz`` item completes by passing the quiz; only owners and
    managers may complete one by hand. Done already: 409."""
    plan = await get_plan(session, plan_id=plan_id)
    whose = reviewer_id or actor.reviewer_id
    if whose is None:
        raise UnprocessableEntity(
            "name the reviewer_id whose item this is (this key is bound to no reviewer)",
            errors=[{"loc": ["body", "reviewer_id"], "msg": "required for this key"}],
        )
    on_behalf = whose != actor.reviewer_id
    supervises = actor.role in PLAN_MANAGERS or (
        actor.reviewer_id is not None and actor.reviewer_id in plan.owners
    )
    if on_behalf and not supervises:
        raise Forbidden("only the plan's owners and managers may complete others' items")
    item = await session.get(TrainingPlanItem, (plan.id, item_id))
    if item is None:
        raise NotFound("plan item not found")
    row = await session.get(TrainingItemProgress, (plan.id, item_id, whose), with_for_update=True)
    if row is None:
        if not on_behalf and not supervises:
            raise Forbidden("you are not assigned to this plan")
        raise UnprocessableEntity(
            f"reviewer '{whose}' is not assigned to this plan",
            errors=[{"loc": ["body", "reviewer_id"], "msg": "not an assignee of this plan"}],
        )
    if item.kind == "pass_quiz" and not supervises:
        raise Conflict("a pass_quiz item completes when you pass its quiz")
    if row.completed_at is not None:
        raise Conflict("this item is done already")
    now = utcnow()
    row.completed_at = now
    row.completed_by = actor.key_id
    await session.flush()
    progress = _progress(row, item.kind, now)
    await record_change(
        session,
        actor=actor,
        action="training_item.completed",
        entity_type="training_plan",
        entity_id=plan.id,
        before={"item_id": item_id, "reviewer_id": whose, "done": False},
        after=progress.model_dump(mode="json"),
    )
    return progress


async def complete_quiz_items(
    session: AsyncSession,
    *,
    quiz_id: uuid.UUID,
    reviewer_id: str,
    attempt_id: uuid.UUID,
    actor: Actor,
) -> list[tuple[uuid.UUID, str]]:
    """Complete the reviewer's open ``pass_quiz`` items of this quiz (they just passed it)."""
    now = utcnow()
    result = await session.execute(
        update(TrainingItemProgress)
        .where(
            TrainingItemProgress.reviewer_id == reviewer_id,
            TrainingItemProgress.completed_at.is_(None),
            tuple_(TrainingItemProgress.plan_id, TrainingItemProgress.item_id).in_(
                select(TrainingPlanItem.plan_id, TrainingPlanItem.id).where(
                    TrainingPlanItem.quiz_id == quiz_id,
                    TrainingPlanItem.kind == "pass_quiz",
                )
            ),
        )
        .values(completed_at=now, completed_by=f"quiz_attempt:{attempt_id}")
        .returning(TrainingItemProgress.plan_id, TrainingItemProgress.item_id)
        .execution_options(synchronize_session=False)
    )
    done = [(plan_id, item_id) for plan_id, item_id in result]
    for plan_id, item_id in done:
        await record_change(
            session,
            actor=actor,
            action="training_item.completed",
            entity_type="training_plan",
            entity_id=plan_id,
            before={"item_id": item_id, "reviewer_id": reviewer_id, "done": False},
            after={
                "item_id": item_id,
                "reviewer_id": reviewer_id,
                "done": True,
                "completed_by": f"quiz_attempt:{attempt_id}",
            },
        )
    return done


async def plan_progress(
    session: AsyncSession,
    *,
    plan: TrainingPlan,
    only_reviewer: str | None,
    after: str | None,
    limit: int,
) -> list[AssigneeProgress]:
    """Per assignee (by id, ``limit + 1`` of them), each item: done, overdue."""
    now = utcnow()
    kinds = {item.id: (item.position, item.kind) for item in await _items(session, plan.id)}
    reviewers_query = (
        select(TrainingItemProgress.reviewer_id)
        .where(TrainingItemProgress.plan_id == plan.id)
        .distinct()
        .order_by(TrainingItemProgress.reviewer_id)
        .limit(limit + 1)
    )
    if only_reviewer is not None:
        reviewers_query = reviewers_query.where(TrainingItemProgress.reviewer_id == only_reviewer)
    if after is not None:
        reviewers_query = reviewers_query.where(TrainingItemProgress.reviewer_id > after)
    reviewer_ids = list(await session.scalars(reviewers_query))
    rows = await session.scalars(
        select(TrainingItemProgress).where(
            TrainingItemProgress.plan_id == plan.id,
            TrainingItemProgress.reviewer_id.in_(reviewer_ids),
        )
    )
    by_reviewer: dict[str, list[ItemProgress]] = {r: [] for r in reviewer_ids}
    for row in rows:
        by_reviewer[row.reviewer_id].append(_progress(row, kinds[row.item_id][1], now))
    result = []
    for reviewer_id in reviewer_ids:
        items = sorted(by_reviewer[reviewer_id], key=lambda p: kinds[p.item_id][0])
        result.append(
            AssigneeProgress(
                reviewer_id=reviewer_id,
                done=sum(p.done for p in items),
                total=len(items),
                overdue=sum(p.overdue for p in items),
                items=items,
            )
        )
    return result


def overdue_query(*, now: datetime) -> Any:
    """Open progress rows past their due date, with their plan and item."""
    return (
        select(TrainingItemProgress, TrainingPlan, TrainingPlanItem)
        .join(TrainingPlan, TrainingPlan.id == TrainingItemProgress.plan_id)
        .join(
            TrainingPlanItem,
            (TrainingPlanItem.plan_id == TrainingItemProgress.plan_id)
            & (TrainingPlanItem.id == TrainingItemProgress.item_id),
        )
        .where(TrainingItemProgress.completed_at.is_(None), TrainingItemProgress.due_at < now)
    )


async def list_overdue(
    session: AsyncSession,
    *,
    market: str | None,
    only_markets: Sequence[str] | None,
    after: tuple[datetime, str, str, str] | None,
    limit: int,
) -> list[OverdueItem]:
    """Overdue, not-done items per assignee, by due date (``limit + 1`` of them); ``market``
    keeps assignees whose profile lists it; a market-scoped key sees its markets' reviewers."""
    query = overdue_query(now=utcnow())
    if market is not None or only_markets is not None:
        reviewers = select(Reviewer.id)
        if market is not None:
            reviewers = reviewers.where(literal(market) == any_(Reviewer.markets))
        if only_markets is not None:
            reviewers = reviewers.where(Reviewer.markets.overlap(list(only_markets)))
        query = query.where(TrainingItemProgress.reviewer_id.in_(reviewers))
    order = (
        TrainingItemProgress.due_at,
        TrainingItemProgress.plan_id,
        TrainingItemProgress.item_id,
        TrainingItemProgress.reviewer_id,
    )
    if after is not None:
        due_at, plan_id, item_id, reviewer_id = after
        query = query.where(
            tuple_(*order) > tuple_(due_at, uuid.UUID(plan_id), item_id, reviewer_id)
        )
    rows = await session.execute(query.order_by(*order).limit(limit + 1))
    return [
        OverdueItem(
            plan_id=plan.id,
            plan_title=plan.title,
            plan_kind=plan.kind,
            item_id=item.id,
            kind=item.kind,
            reviewer_id=progress.reviewer_id,
            due_at=progress.due_at,
            reminded_at=progress.reminded_at,
        )
        for progress, plan, item in rows
    ]
