"""Sampling: ``/v1/sampling-plans``, ``/v1/audits/sample``, ``/v1/sampling-runs`` and
``/v1/sampling/sample-size``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.audit_api.deps import ANY_ROLE, SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.sampling import service
from shared.schemas.common import Page, Problem
from shared.schemas.sampling import (
    SampleAccepted,
    SampleRequest,
    SampleSize,
    SampleSizeQuery,
    SamplingPlanCreate,
    SamplingPlanQuery,
    SamplingPlanRead,
    SamplingPlanUpdate,
    SamplingRunQuery,
    SamplingRunRead,
)

router = APIRouter(tags=["sampling"])

PlannerDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]
AnyKeyDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


@router.post(
    "/v1/sampling-plans", status_code=201, response_model=SamplingPlanRead, responses=_PROBLEMS
)
async def create_sampling_plan(
    body: SamplingPlanCreate, session: SessionDep, principal: PlannerDep
) -> SamplingPlanRead:
    """Create a plan for a queue, a market, or a queue within a market.

    A queue plan wins over its market's plan. Only one active plan per scope: 409 otherwise.
    """
    plan = await service.create_plan(session, data=body, actor=principal)
    return service.plan_read(plan)


@router.get("/v1/sampling-plans", response_model=Page[SamplingPlanRead])
async def list_sampling_plans(
    query: Annotated[SamplingPlanQuery, Query()], session: SessionDep, principal: PlannerDep
) -> Page[SamplingPlanRead]:
    """Plans, oldest first; filter by ``market``, ``queue``, ``active``."""
    page = await service.list_plans(session, filters=query, viewer=principal)
    return Page(
        items=[service.plan_read(plan) for plan in page.items], next_cursor=page.next_cursor
    )


@router.get("/v1/sampling-plans/{plan_id}", response_model=SamplingPlanRead, responses=_PROBLEMS)
async def get_sampling_plan(
    plan_id: uuid.UUID, session: SessionDep, principal: PlannerDep
) -> SamplingPlanRead:
    plan = await service.get_plan(session, plan_id=plan_id, viewer=principal)
    return service.plan_read(plan)


@router.patch("/v1/sampling-plans/{plan_id}", response_model=SamplingPlanRead, responses=_PROBLEMS)
async def update_sampling_plan(
    plan_id: uuid.UUID, body: SamplingPlanUpdate, session: SessionDep, principal: PlannerDep
) -> SamplingPlanRead:
    """Change a plan: only the fields sent change; ``version`` goes up by one.

    The change applies to the next sampling; audits already created stay.
    """
    plan = await service.update_plan(session, plan_id=plan_id, data=body, actor=principal)
    return service.plan_read(plan)


@router.delete("/v1/sampling-plans/{plan_id}", status_code=204, responses=_PROBLEMS)
async def deactivate_sampling_plan(
    plan_id: uuid.UUID, session: SessionDep, principal: PlannerDep
) -> Response:
    """Deactivate a plan: it samples no more, and stays readable (audits refer to it)."""
    await service.deactivate_plan(session, plan_id=plan_id, actor=principal)
    return Response(status_code=204)


@router.post(
    "/v1/audits/sample",
    status_code=202,
    response_model=SampleAccepted,
    responses=_PROBLEMS,
)
async def request_sampling(
    body: SampleRequest, session: SessionDep, principal: PlannerDep
) -> SampleAccepted:
    """Sample a day now (one market, or every market with a plan); poll ``/v1/jobs/{job_id}``.

    Sampling a day again creates no second audit for a decision: it adds only what decisions
    that arrived since call for.
    """
    job = await service.request_sampling(session, day=body.day, market=body.market, actor=principal)
    return SampleAccepted(job_id=job.id)


@router.get("/v1/sampling-runs", response_model=Page[SamplingRunRead])
async def list_sampling_runs(
    query: Annotated[SamplingRunQuery, Query()], session: SessionDep, principal: PlannerDep
) -> Page[SamplingRunRead]:
    """Sampling runs (scheduled and on demand), newest first; filter by ``market``, ``day``."""
    page = await service.list_runs(session, filters=query, viewer=principal)
    return Page(
        items=[SamplingRunRead.model_validate(run) for run in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/v1/sampling/sample-size", response_model=SampleSize)
async def get_sample_size(query: Annotated[SampleSizeQuery, Query()], _: AnyKeyDep) -> SampleSize:
    """Audits a slice needs so that the 95 % interval of its accuracy is ``± margin`` wide."""
    return service.sample_size(expected_accuracy=query.expected_accuracy, margin=query.margin)
