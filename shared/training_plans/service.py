"""Training plans: onboarding and remedial plans, their items, assignees and progress.

Each assignee has one progress row per item (``training_item_progress``): done or not, when,
by whom, and whether the overdue reminder went out. A plan's assignees are the reviewers
with progress rows. ``pass_quiz`` items complete themselves when the assignee passes the quiz
(``complete_quiz_items``, called by the quiz attempt service), also when the quiz was passed
before the reviewer was added to the plan. ``shadow_audits`` items count the audits the
assignee actually completed since the item was assigned (of the item's policy, when it names
one) and complete themselves at ``count`` (``complete_shadow_audit_items``, called when a
verdict is recorded): nobody declares them done by hand but an owner or a plan manager.

Who sees a plan (``visible_plans``): plan managers every plan; anyone else the plans they own
or are assigned to, the latter only with their own progress.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    any_,
    bindparam,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import Actor, record_change
from shared.core.auth import Principal, Role
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.models import (
    Audit,
    Quiz,
    QuizAttempt,
    Reviewer,
    TrainingItemProgress,
    TrainingPlan,
    TrainingPlanItem,
)
from shared.models.base import utcnow
from shared.reference import register_policies, register_reviewers
from shared.reviewers.service import counted_reviewers, visible_reviewers
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
    return (await _assignees_of(session, [plan_id])).get(plan_id, [])


async def _assignees_of(
    session: AsyncSession, plan_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    rows = await session.execute(
        select(TrainingItemProgress.plan_id, TrainingItemProgress.reviewer_id)
        .where(TrainingItemProgress.plan_id.in_(plan_ids))
        .distinct()
        .order_by(TrainingItemProgress.plan_id, TrainingItemProgress.reviewer_id)
    )
    assignees: dict[uuid.UUID, list[str]] = {}
    for plan_id, reviewer_id in rows:
        assignees.setdefault(plan_id, []).append(reviewer_id)
    return assignees


async def plan_read(session: AsyncSession, plan: TrainingPlan) -> PlanRead:
    """The plan with its items and assignees."""
    return (await plan_reads(session, [plan]))[0]


async def plan_reads(session: AsyncSession, plans: Sequence[TrainingPlan]) -> list[PlanRead]:
    """Plans with their items and assignees, in two statements for any number of plans."""
    plan_ids = [plan.id for plan in plans]
    if not plan_ids:
        return []
    items: dict[uuid.UUID, list[PlanItemRead]] = {}
    for item in await session.scalars(
        select(TrainingPlanItem)
        .where(TrainingPlanItem.plan_id.in_(plan_ids))
        .order_by(TrainingPlanItem.plan_id, TrainingPlanItem.position)
    ):
        items.setdefault(item.plan_id, []).append(PlanItemRead.model_validate(item))
    assignees = await _assignees_of(session, plan_ids)
    return [
        PlanRead(
            id=plan.id,
            title=plan.title,
            kind=plan.kind,
            owners=list(plan.owners),
            assignees=assignees.get(plan.id, []),
            items=items.get(plan.id, []),
            created_at=plan.created_at,
        )
        for plan in plans
    ]


def visible_plans(principal: Principal) -> ColumnElement[bool]:
    """The plans a caller may list and read: all for plan managers, else those they own or
    are assigned to (a key bound to no reviewer sees none)."""
    if principal.role in PLAN_MANAGERS:
        return true()
    if principal.reviewer_id is None:
        return false()
    return or_(
        literal(principal.reviewer_id) == any_(TrainingPlan.owners),
        TrainingPlan.id.in_(
            select(TrainingItemProgress.plan_id).where(
                TrainingItemProgress.reviewer_id == principal.reviewer_id
            )
        ),
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
    """Whether the caller sees the whole plan (True: a plan manager or an owner) or only
    their own items (False: an assignee); 403 when ``visible_plans`` does not let them see
    it (the rule of the list, asked of the database so it is written once)."""
    seen = await session.scalar(
        select(visible_plans(actor)).select_from(TrainingPlan).where(TrainingPlan.id == plan.id)
    )
    if not seen:
        raise Forbidden("only plan managers, the plan's owners and its assignees may see it")
    return actor.role in PLAN_MANAGERS or actor.reviewer_id in plan.owners


PLAN_ORDER = Keyset(TrainingPlan.created_at, TrainingPlan.id)
ASSIGNEE_ORDER = Keyset(TrainingItemProgress.reviewer_id)
OVERDUE_ORDER = Keyset(
    TrainingItemProgress.due_at,
    TrainingItemProgress.plan_id,
    TrainingItemProgress.item_id,
    TrainingItemProgress.reviewer_id,
)


async def list_plans(
    session: AsyncSession,
    *,
    filters: PlanQuery,
    principal: Principal,
) -> KeysetPage[TrainingPlan]:
    """A page of the plans the caller may see (``visible_plans``), oldest first."""
    query = select(TrainingPlan).where(visible_plans(principal))
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
    plans = list(await session.scalars(PLAN_ORDER.apply(query, filters)))
    return PLAN_ORDER.page(plans, filters)


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


def _progress(
    row: TrainingItemProgress, kind: str, now: datetime, *, audits_done: int | None = None
) -> ItemProgress:
    late = row.due_at < (row.completed_at or now)
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
        late=late,
        audits_done=audits_done if kind == "shadow_audits" else None,
    )


def _shadow_audit_counts(*conditions: ColumnElement[bool]) -> Any:
    """(plan id, item id, reviewer id, audits done) of ``shadow_audits`` progress rows: the
    audits the assignee completed since the item was assigned, of its policy if it names one."""
    return (
        select(
            TrainingItemProgress.plan_id,
            TrainingItemProgress.item_id,
            TrainingItemProgress.reviewer_id,
            func.count(Audit.id),
            TrainingPlanItem.count,
        )
        .join(
            TrainingPlanItem,
            and_(
                TrainingPlanItem.plan_id == TrainingItemProgress.plan_id,
                TrainingPlanItem.id == TrainingItemProgress.item_id,
            ),
        )
        .outerjoin(
            Audit,
            and_(
                Audit.auditor_id == TrainingItemProgress.reviewer_id,
                Audit.status == "completed",
                Audit.completed_at >= TrainingItemProgress.assigned_at,
                or_(
                    TrainingPlanItem.policy_code.is_(None),
                    TrainingPlanItem.policy_code == any_(Audit.policy_labels),
                ),
            ),
        )
        .where(TrainingPlanItem.kind == "shadow_audits", *conditions)
        .group_by(
            TrainingItemProgress.plan_id,
            TrainingItemProgress.item_id,
            TrainingItemProgress.reviewer_id,
            TrainingPlanItem.count,
        )
    )


# The open ``shadow_audits`` items of the reviewer bound as ``reviewer``: built once, as it
# is read after every verdict.
_OPEN_SHADOW_AUDIT_COUNTS = _shadow_audit_counts(
    TrainingItemProgress.reviewer_id == bindparam("reviewer"),
    TrainingItemProgress.completed_at.is_(None),
)


async def complete_shadow_audit_items(
    session: AsyncSession, *, reviewer_id: str, actor: Actor
) -> list[tuple[uuid.UUID, str]]:
    """Complete the reviewer's open ``shadow_audits`` items whose count their completed
    audits now reach (called after each verdict they give)."""
    rows = (await session.execute(_OPEN_SHADOW_AUDIT_COUNTS, {"reviewer": reviewer_id})).all()
    reached = [(plan_id, item_id) for plan_id, item_id, _, done, count in rows if done >= count]
    if not reached:
        return []
    return await _mark_done(
        session,
        reviewer_id=reviewer_id,
        which=tuple_(TrainingItemProgress.plan_id, TrainingItemProgress.item_id).in_(reached),
        completed_by="audits",
        actor=actor,
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
    if item.kind == "shadow_audits" and not supervises:
        raise Conflict(
            "a shadow_audits item completes when you have completed its number of audits"
        )
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
    return await _mark_done(
        session,
        reviewer_id=reviewer_id,
        which=tuple_(TrainingItemProgress.plan_id, TrainingItemProgress.item_id).in_(
            select(TrainingPlanItem.plan_id, TrainingPlanItem.id).where(
                TrainingPlanItem.quiz_id == quiz_id, TrainingPlanItem.kind == "pass_quiz"
            )
        ),
        completed_by=f"quiz_attempt:{attempt_id}",
        actor=actor,
    )


async def _mark_done(
    session: AsyncSession,
    *,
    reviewer_id: str,
    which: ColumnElement[bool],
    completed_by: str,
    actor: Actor,
) -> list[tuple[uuid.UUID, str]]:
    """Mark the reviewer's open items matching ``which`` done by ``completed_by`` (a passed
    quiz, or their audits), each audit-logged; returns the (plan id, item id) marked."""
    result = await session.execute(
        update(TrainingItemProgress)
        .where(
            TrainingItemProgress.reviewer_id == reviewer_id,
            TrainingItemProgress.completed_at.is_(None),
            which,
        )
        .values(completed_at=utcnow(), completed_by=completed_by)
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
                "completed_by": completed_by,
            },
        )
    return done


async def plan_progress(
    session: AsyncSession,
    *,
    plan: TrainingPlan,
    only_reviewer: str | None,
    page: PageRequest,
) -> KeysetPage[AssigneeProgress]:
    """A page of assignees (by id), each with their items: done, overdue."""
    now = utcnow()
    kinds = {item.id: (item.position, item.kind) for item in await _items(session, plan.id)}
    reviewers_query = (
        select(TrainingItemProgress.reviewer_id)
        .where(TrainingItemProgress.plan_id == plan.id)
        .distinct()
    )
    if only_reviewer is not None:
        reviewers_query = reviewers_query.where(TrainingItemProgress.reviewer_id == only_reviewer)
    assignees = ASSIGNEE_ORDER.page(
        list(await session.scalars(ASSIGNEE_ORDER.apply(reviewers_query, page))),
        page,
        key=lambda reviewer_id: [reviewer_id],
    )
    reviewer_ids = assignees.items
    rows = await session.scalars(
        select(TrainingItemProgress).where(
            TrainingItemProgress.plan_id == plan.id,
            TrainingItemProgress.reviewer_id.in_(reviewer_ids),
        )
    )
    shadow_counts = {
        (item_id, reviewer_id): done
        for _, item_id, reviewer_id, done, _ in await session.execute(
            _shadow_audit_counts(
                TrainingItemProgress.plan_id == plan.id,
                TrainingItemProgress.reviewer_id.in_(reviewer_ids),
            )
        )
    }
    by_reviewer: dict[str, list[ItemProgress]] = {r: [] for r in reviewer_ids}
    for row in rows:
        by_reviewer[row.reviewer_id].append(
            _progress(
                row,
                kinds[row.item_id][1],
                now,
                audits_done=shadow_counts.get((row.item_id, row.reviewer_id)),
            )
        )
    result = []
    for reviewer_id in reviewer_ids:
        items = sorted(by_reviewer[reviewer_id], key=lambda p: kinds[p.item_id][0])
        result.append(
            AssigneeProgress(
                reviewer_id=reviewer_id,
                done=sum(p.done for p in items),
                total=len(items),
                overdue=sum(p.overdue for p in items),
                late=sum(p.late for p in items),
                items=items,
            )
        )
    return KeysetPage(items=result, next_cursor=assignees.next_cursor)


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
    viewer: Principal,
    page: PageRequest,
) -> KeysetPage[OverdueItem]:
    """A page of overdue, not-done items per assignee, by due date; ``market`` keeps
    assignees whose profile lists it; a market-scoped key sees the assignees it may see as
    reviewers (``visible_reviewers``: the reviewer list's rule)."""
    query = overdue_query(now=utcnow())
    if market is not None or viewer.markets is not None:
        reviewers = select(Reviewer.id).where(visible_reviewers(viewer))
        if market is not None:
            reviewers = reviewers.where(literal(market) == any_(Reviewer.markets))
        query = query.where(TrainingItemProgress.reviewer_id.in_(reviewers))
    rows = await session.execute(OVERDUE_ORDER.apply(query, page))
    items = [
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
    return OVERDUE_ORDER.page(items, page)


@dataclass(frozen=True, slots=True)
class TrainingCompletion:
    """A plan's assignee items due in a window: how many, how many done, how many overdue."""

    plan_id: uuid.UUID
    title: str
    kind: str
    items: int
    completed: int
    overdue: int


async def training_completion(
    session: AsyncSession,
    *,
    viewer: Principal,
    market: str | None,
    due_from: datetime,
    due_before: datetime,
    now: datetime,
) -> list[TrainingCompletion]:
    """Per plan ``viewer`` may see (``visible_plans``) with assignee items due in
    ``[due_from, due_before)``: the items, those completed (at any time), and those still
    open after their due date (at ``now``), counting the assignees ``counted_reviewers`` lets
    it count (a moderator key: itself). By title."""
    done = TrainingItemProgress.completed_at.is_not(None)
    query = (
        select(
            TrainingPlan.id,
            TrainingPlan.title,
            TrainingPlan.kind,
            func.count(),
            func.count().filter(done),
            func.count().filter(~done, TrainingItemProgress.due_at < now),
        )
        .join(TrainingItemProgress, TrainingItemProgress.plan_id == TrainingPlan.id)
        .where(
            TrainingItemProgress.due_at >= due_from,
            TrainingItemProgress.due_at < due_before,
            visible_plans(viewer),
            counted_reviewers(TrainingItemProgress.reviewer_id, viewer=viewer, market=market),
        )
        .group_by(TrainingPlan.id)
        .order_by(TrainingPlan.title, TrainingPlan.id)
    )
    return [
        TrainingCompletion(
            plan_id=plan_id,
            title=title,
            kind=kind,
            items=items,
            completed=completed,
            overdue=overdue,
        )
        for plan_id, title, kind, items, completed, overdue in await session.execute(query)
    ]
