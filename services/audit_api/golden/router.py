"""Golden items (``/v1/golden-items``) and auditor quality (``/v1/auditor-quality``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.audit_api.deps import SessionDep, SettingsDep, require_roles
from shared.core.auth import Principal, Role
from shared.golden import quality, service
from shared.models.base import utcnow
from shared.schemas.common import Page, Problem
from shared.schemas.golden import (
    AuditorQualityQuery,
    AuditorQualityReport,
    CalibrationImport,
    GoldenItemCreate,
    GoldenItemQuery,
    GoldenItemRead,
)

router = APIRouter(tags=["golden items"])

# Only managers and admins curate or see golden items: an auditor who could ask whether a
# decision is golden (a 409 on curating it again) could tell golden audits from real ones.
ManagerDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]


@router.post(
    "/v1/golden-items",
    response_model=GoldenItemRead,
    status_code=201,
    responses={409: {"model": Problem, "description": "The decision is an active golden item."}},
)
async def create_golden_item(
    body: GoldenItemCreate, session: SessionDep, principal: ManagerDep
) -> GoldenItemRead:
    """Curate a golden item (admin, manager): an existing decision and the verdict it should get.

    Golden items are mixed into auditors' claims (never to the curator) and measure the
    auditors' accuracy; they never count in moderators' numbers.
    """
    item = await service.create_golden_item(session, principal=principal, data=body)
    return GoldenItemRead.model_validate(item)


@router.post(
    "/v1/golden-items/from-calibration/{calibration_id}",
    response_model=CalibrationImport,
    status_code=201,
    responses={409: {"model": Problem, "description": "The session is not closed yet."}},
)
async def import_from_calibration(
    calibration_id: uuid.UUID, session: SessionDep, principal: ManagerDep
) -> CalibrationImport:
    """Golden items from a closed calibration session's items with a golden answer and a
    decision (``no_violation`` expects ``approve``; any other label that policy enforced)."""
    created, skipped = await service.import_from_calibration(
        session, principal=principal, calibration_id=calibration_id
    )
    return CalibrationImport(
        created=[GoldenItemRead.model_validate(item) for item in created], skipped=skipped
    )


@router.get("/v1/golden-items", response_model=Page[GoldenItemRead])
async def list_golden_items(
    query: Annotated[GoldenItemQuery, Query()], session: SessionDep, principal: ManagerDep
) -> Page[GoldenItemRead]:
    """Golden items, newest first."""
    page = await service.list_golden_items(session, principal=principal, filters=query)
    return Page(
        items=[GoldenItemRead.model_validate(item) for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.delete("/v1/golden-items/{golden_item_id}", response_model=GoldenItemRead)
async def deactivate_golden_item(
    golden_item_id: uuid.UUID, session: SessionDep, principal: ManagerDep
) -> GoldenItemRead:
    """Deactivate a golden item: no longer handed out; verdicts given keep counting."""
    item = await service.deactivate_golden_item(
        session, principal=principal, golden_item_id=golden_item_id
    )
    return GoldenItemRead.model_validate(item)


@router.get("/v1/auditor-quality", response_model=AuditorQualityReport)
async def auditor_quality(
    query: Annotated[AuditorQualityQuery, Query()],
    session: SessionDep,
    settings: SettingsDep,
    principal: ManagerDep,
) -> AuditorQualityReport:
    """Per auditor per ISO week: golden-item accuracy (Wilson 95 %) and agreement with the
    other auditors' majority on the same golden items."""
    to = query.to or max(utcnow().date(), query.from_ or utcnow().date())
    from_ = query.from_ or quality.default_range(to)[0]
    rows = await quality.auditor_quality(
        session, principal=principal, from_=from_, to=to, auditor_id=query.auditor_id
    )
    return AuditorQualityReport(
        from_=from_, to=to, threshold=settings.auditor_accuracy_threshold, rows=rows
    )
