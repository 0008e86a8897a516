"""Training plans: ``/v1/training-plans``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query

from services.audit_api.deps import ANY_ROLE, SessionDep, require_roles
from shared.core.auth import Principal
from shared.core.errors import BadRequest
from shared.schemas.common import (
    Page,
    PageQuery,
    Problem,
    decode_cursor,
    decode_time_cursor,
    page_rows,
    time_position,
)
from shared.schemas.training import (
    AssigneeProgress,
    CompleteItemRequest,
    ItemProgress,
    OverdueItem,
    OverdueQuery,
    PlanCreate,
    PlanQuery,
    PlanRead,
)
from shared.training_plans import service

router = APIRouter(prefix="/v1/training-plans", tags=["training plans"])

ManagerDep = Annotated[Principal, Depends(require_roles(*service.PLAN_MANAGERS))]
AnyKeyDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]
ItemIdPath = Annotated[str, Path(min_length=1, max_length=64)]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post("", status_code=201, response_model=PlanRead, responses=_PROBLEMS)
async def create_plan(body: PlanCreate, session: SessionDep, principal: ManagerDep) -> PlanRead:
    """Create an onboarding or remedial plan: every assignee gets every item."""
    plan = await service.create_plan(session, data=body, actor=principal)
    return await service.plan_read(session, plan)


@router.get("", response_model=Page[PlanRead])
async def list_plans(
    query: Annotated[PlanQuery, Query()], session: SessionDep, _: ManagerDep
) -> Page[PlanRead]:
    """Plans, oldest first; filter by ``kind`` and by an assignee's ``reviewer_id``."""
    after = decode_time_cursor(query.cursor, id_type=uuid.UUID) if query.cursor else None
    plans = await service.list_plans(session, filters=query, after=after)
    plans, next_cursor = page_rows(
        plans,
        limit=query.limit,
        position=lambda last: time_position(last.created_at, last.id),
    )
    return Page(
        items=[await service.plan_read(session, plan) for plan in plans], next_cursor=next_cursor
    )


@router.get("/overdue", response_model=Page[OverdueItem])
async def list_overdue(
    query: Annotated[OverdueQuery, Query()], session: SessionDep, principal: ManagerDep
) -> Page[OverdueItem]:
    """Overdue, not-done items per assignee, by due date; ``market`` keeps the assignees whose
    profile lists it (a market-scoped key sees its markets' reviewers)."""
    after = None
    if query.cursor:
        position = decode_cursor(query.cursor, keys={"due_at", "plan_id", "item_id", "reviewer_id"})
        try:
            after = (
                datetime.fromisoformat(position["due_at"]),
                str(uuid.UUID(position["plan_id"])),
                str(position["item_id"]),
                str(position["reviewer_id"]),
            )
        except (TypeError, ValueError) as exc:
            raise BadRequest("cursor is not valid") from exc
    items = await service.list_overdue(
        session,
        market=query.market,
        only_markets=principal.markets,
        after=after,
        limit=query.limit,
    )
    items, next_cursor = page_rows(
        items,
        limit=query.limit,
        position=lambda last: {
            "due_at": last.due_at.isoformat(),
            "plan_id": str(last.plan_id),
            "item_id": last.item_id,
            "reviewer_id": last.reviewer_id,
        },
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{plan_id}", response_model=PlanRead, responses=_PROBLEMS)
async def get_plan(plan_id: uuid.UUID, session: SessionDep, principal: AnyKeyDep) -> PlanRead:
    """The plan: for plan managers, its owners and its assignees."""
    plan = await service.get_plan(session, plan_id=plan_id)
    await service.check_plan_access(session, plan=plan, actor=principal)
    return await service.plan_read(session, plan)


@router.get("/{plan_id}/progress", response_model=Page[AssigneeProgress], responses=_PROBLEMS)
async def get_progress(
    plan_id: uuid.UUID,
    query: Annotated[PageQuery, Query()],
    session: SessionDep,
    principal: AnyKeyDep,
) -> Page[AssigneeProgress]:
    """Per assignee (by id), each item done or not and overdue or not. Managers and the
    plan's owners see every assignee; an assignee sees their own."""
    plan = await service.get_plan(session, plan_id=plan_id)
    sees_all = await service.check_plan_access(session, plan=plan, actor=principal)
    after = (
        decode_cursor(query.cursor, keys={"reviewer_id"})["reviewer_id"] if query.cursor else None
    )
    rows = await service.plan_progress(
        session,
        plan=plan,
        only_reviewer=None if sees_all else principal.reviewer_id,
        after=str(after) if after is not None else None,
        limit=query.limit,
    )
    rows, next_cursor = page_rows(
        rows, limit=query.limit, position=lambda last: {"reviewer_id": last.reviewer_id}
    )
    return Page(
        items=rows,
        next_cursor=next_cursor,
    )


@router.post(
    "/{plan_id}/items/{item_id}/complete", response_model=ItemProgress, responses=_PROBLEMS
)
async def complete_item(
    plan_id: uuid.UUID,
    item_id: ItemIdPath,
    session: SessionDep,
    principal: AnyKeyDep,
    body: Annotated[CompleteItemRequest | None, Body()] = None,
) -> ItemProgress:
    """Mark an item done: the assignee's own key, or an owner or manager on behalf of
    ``reviewer_id``. 409 when done already (or for a ``pass_quiz`` item: passing completes it).
    """
    return await service.complete_item(
        session,
        plan_id=plan_id,
        item_id=item_id,
        reviewer_id=body.reviewer_id if body else None,
        actor=principal,
    )
