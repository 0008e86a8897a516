"""Sampling plans (create, change, list, deactivate), on-demand sampling and sample sizes.

Only one active plan may cover a scope (a queue, a market, or a queue within a market);
the plan resolution of the worker (``shared.sampling.selection.plans_for_market``) relies on
it. Creating or re-scoping plans takes a transaction-level advisory lock so two concurrent
requests cannot both pass that check.

A market-scoped key works only with plans that name one of its markets (a plan naming only a
queue is about no market it could be scoped to, so such keys cannot see or create those).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change, snapshot
from shared.background_jobs.service import create_job
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.core.outbox import add_job
from shared.core.pagination import Keyset, KeysetPage
from shared.jobs import SampleDailyAudits
from shared.models import BackgroundJob, SamplingPlan, SamplingRun
from shared.models.base import utcnow
from shared.reference import register_markets, register_policies, register_queues
from shared.schemas.sampling import (
    SampleSize,
    SamplingPlanCreate,
    SamplingPlanQuery,
    SamplingPlanRead,
    SamplingPlanUpdate,
    SamplingRunQuery,
)
from shared.stats.intervals import sample_size as required_audits

SAMPLING_JOB_KIND = SampleDailyAudits.function
# Serialises plan-scope checks (any constant key; plans change rarely).
_PLAN_SCOPE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('sampling_plan_scope', 0))")


def plan_read(plan: SamplingPlan) -> SamplingPlanRead:
    return SamplingPlanRead.model_validate(plan)


def _check_market_scope(principal: Principal, market: str | None) -> None:
    if principal.markets is None:
        return
    if market is None:
        raise Forbidden("a market-scoped key must name one of its markets")
    if market not in principal.markets:
        raise Forbidden(f"this key may not act on market '{market}'")


async def _ensure_scope_free(
    session: AsyncSession,
    *,
    queue: str | None,
    market: str | None,
    except_id: uuid.UUID | None = None,
) -> None:
    await session.execute(_PLAN_SCOPE_LOCK)
    query = select(SamplingPlan.id).where(
        SamplingPlan.active.is_(True),
        SamplingPlan.queue.is_not_distinct_from(queue),
        SamplingPlan.market.is_not_distinct_from(market),
    )
    if except_id is not None:
        query = query.where(SamplingPlan.id != except_id)
    existing = await session.scalar(query.limit(1))
    if existing is not None:
        raise Conflict(
            f"an active plan for this scope exists already ({existing}); change or deactivate it"
        )


async def _register_references(
    session: AsyncSession,
    *,
    queue: str | None,
    market: str | None,
    labels: Sequence[str],
) -> None:
    if market is not None:
        await register_markets(session, [market])
        if queue is not None:
            await register_queues(session, [(queue, market)])
    if labels:
        await register_policies(session, labels)


async def create_plan(
    session: AsyncSession, *, data: SamplingPlanCreate, actor: Principal
) -> SamplingPlan:
    """Create an active plan (409 when an active plan covers the same scope already)."""
    _check_market_scope(actor, data.market)
    await _ensure_scope_free(session, queue=data.queue, market=data.market)
    await _register_references(
        session,
        queue=data.queue,
        market=data.market,
        labels=[*data.label_boosts, *data.label_quotas],
    )
    now = utcnow()
    plan = SamplingPlan(
        id=uuid.uuid4(),
        **data.model_dump(),
        active=True,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="sampling_plan.created",
        entity_type="sampling_plan",
        entity_id=plan.id,
        after=snapshot(plan_read(plan)),
    )
    return plan


def visible_plans(viewer: Principal) -> ColumnElement[bool]:
    """Which sampling plans ``viewer`` may see: a market-scoped key only the plans of its
    markets (not queue-only plans, which may reach any market)."""
    if viewer.markets is None:
        return true()
    return SamplingPlan.market.in_(viewer.markets)


def visible_runs(viewer: Principal) -> ColumnElement[bool]:
    """Which sampling runs ``viewer`` may see: a market-scoped key only its markets'."""
    if viewer.markets is None:
        return true()
    return SamplingRun.market.in_(viewer.markets)


async def get_plan(
    session: AsyncSession,
    *,
    plan_id: uuid.UUID,
    viewer: Principal,
    for_update: bool = False,
) -> SamplingPlan:
    """The plan, or 404 (also when ``viewer`` may not see it)."""
    query = select(SamplingPlan).where(SamplingPlan.id == plan_id, visible_plans(viewer))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    plan = await session.scalar(query)
    if plan is None:
        raise NotFound("sampling plan not found")
    return plan


PLAN_ORDER = Keyset(SamplingPlan.created_at, SamplingPlan.id)
RUN_ORDER = Keyset(SamplingRun.created_at, SamplingRun.id, descending=True)


async def list_plans(
    session: AsyncSession,
    *,
    filters: SamplingPlanQuery,
    viewer: Principal,
) -> KeysetPage[SamplingPlan]:
    """A page of the plans ``viewer`` may see, oldest first."""
    query = select(SamplingPlan).where(visible_plans(viewer))
    if filters.market is not None:
        query = query.where(SamplingPlan.market == filters.market)
    if filters.queue is not None:
        query = query.where(SamplingPlan.queue == filters.queue)
    if filters.active is not None:
        query = query.where(SamplingPlan.active.is_(filters.active))
    plans = list(await session.scalars(PLAN_ORDER.apply(query, filters)))
    return PLAN_ORDER.page(plans, filters)


async def update_plan(
    session: AsyncSession,
    *,
    plan_id: uuid.UUID,
    data: SamplingPlanUpdate,
    actor: Principal,
) -> SamplingPlan:
    """Change the fields sent; the version goes up by one. Runs already made keep theirs."""
    plan = await get_plan(session, plan_id=plan_id, viewer=actor, for_update=True)
    before = snapshot(plan_read(plan))
    changes: dict[str, Any] = {name: getattr(data, name) for name in data.model_fields_set}
    queue = changes.get("queue", plan.queue)
    market = changes.get("market", plan.market)
    if queue is None and market is None:
        raise UnprocessableEntity(
            "a plan needs a queue or a market (or both)",
            errors=[{"loc": ["queue"], "msg": "a plan needs a queue or a market (or both)"}],
        )
    if "market" in changes:
        _check_market_scope(actor, market)
    active = changes.get("active", plan.active)
    scope_changed = queue != plan.queue or market != plan.market
    if active and (scope_changed or not plan.active):
        await _ensure_scope_free(session, queue=queue, market=market, except_id=plan.id)
    await _register_references(
        session,
        queue=queue,
        market=market,
        labels=[*changes.get("label_boosts", {}), *changes.get("label_quotas", {})],
    )
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.version += 1
    plan.updated_at = utcnow()
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="sampling_plan.updated",
        entity_type="sampling_plan",
        entity_id=plan.id,
        before=before,
        after=snapshot(plan_read(plan)),
    )
    return plan


async def deactivate_plan(
    session: AsyncSession, *, plan_id: uuid.UUID, actor: Principal
) -> SamplingPlan:
    """Stop sampling with a plan. It is kept (audits name it); deactivating twice is a no-op."""
    plan = await get_plan(session, plan_id=plan_id, viewer=actor, for_update=True)
    if not plan.active:
        return plan
    before = snapshot(plan_read(plan))
    plan.active = False
    plan.version += 1
    plan.updated_at = utcnow()
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="sampling_plan.deactivated",
        entity_type="sampling_plan",
        entity_id=plan.id,
        before=before,
        after=snapshot(plan_read(plan)),
    )
    return plan


async def request_sampling(
    session: AsyncSession, *, day: date, market: str | None, actor: Principal
) -> BackgroundJob:
    """Queue the sampling of ``day`` (one market, or every market with a plan): a job row
    and its outbox entry, in the caller's transaction."""
    _check_market_scope(actor, market)
    # Local days run up to 14 h ahead of UTC: "tomorrow" in UTC may have begun somewhere.
    if day > utcnow().date() + timedelta(days=1):
        raise UnprocessableEntity(
            "day is in the future", errors=[{"loc": ["day"], "msg": "is in the future"}]
        )
    params = {"day": day.isoformat(), "market": market}
    job = await create_job(
        session, kind=SAMPLING_JOB_KIND, params=params, requested_by=actor.key_id
    )
    await add_job(session, SampleDailyAudits(job_id=job.id, day=day, market=market))
    await record_change(
        session,
        actor=actor,
        action="sampling.requested",
        entity_type="background_job",
        entity_id=job.id,
        after={"kind": job.kind, "params": params, "status": job.status},
    )
    return job


async def list_runs(
    session: AsyncSession,
    *,
    filters: SamplingRunQuery,
    viewer: Principal,
) -> KeysetPage[SamplingRun]:
    """A page of the sampling runs ``viewer`` may see, newest first."""
    query = select(SamplingRun).where(visible_runs(viewer))
    if filters.market is not None:
        query = query.where(SamplingRun.market == filters.market)
    if filters.day is not None:
        query = query.where(SamplingRun.day == filters.day)
    runs = list(await session.scalars(RUN_ORDER.apply(query, filters)))
    return RUN_ORDER.page(runs, filters)


def sample_size(*, expected_accuracy: float, margin: float) -> SampleSize:
    """Audits a slice needs for a 95 % interval of ``± margin`` around the expected accuracy."""
    n = required_audits(expected_accuracy, margin)
    return SampleSize(n=n, expected_accuracy=expected_accuracy, margin=margin)


__all__ = [
    "SAMPLING_JOB_KIND",
    "create_plan",
    "deactivate_plan",
    "get_plan",
    "list_plans",
    "list_runs",
    "plan_read",
    "request_sampling",
    "sample_size",
    "update_plan",
]
