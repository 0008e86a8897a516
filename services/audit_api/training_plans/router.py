"""Training plans: ``/v1/training-plans``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query

from services.audit_api.deps import ANY_ROLE, SessionDep, require_roles
from shared.core.auth import Principal
from shared.schemas.common import Page, PageQuery, Problem
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
    query: Annotated[PlanQuery, Query()], session: SessionDep, principal: AnyKeyDep
) -> Page[PlanRead]:
    """Plans, oldest first; filter by ``kind`` and by an assignee's ``reviewer_id``. Plan
    managers see every plan, anyone else the plans they own or are assigned to."""
    page = await service.list_plans(session, filters=query, principal=principal)
    return Page(items=await service.plan_reads(session, page.items), next_cursor=page.next_cursor)


@router.get("/overdue", response_model=Page[OverdueItem])
async def list_overdue(
    query: Annotated[OverdueQuery, Query()], session: SessionDep, principal: ManagerDep
) -> Page[OverdueItem]:
    """Overdue, not-done items per assignee, by due date; ``market`` keeps the assignees whose
    profile lists it (a market-scoped key: the reviewers it may see)."""
    page = await service.list_overdue(session, market=query.market, viewer=principal, page=query)
    return Page(items=page.items, next_cursor=page.next_cursor)


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
    page = await service.plan_progress(
        session,
        plan=plan,
        only_reviewer=None if sees_all else principal.reviewer_id,
        page=query,
    )
    return Page(items=page.items, next_cursor=page.next_cursor)


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
