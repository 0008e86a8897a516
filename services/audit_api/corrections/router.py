"""Correction targets (admin): ``/v1/sources/{id}/correction-target``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from services.audit_api.deps import AdminDep, SessionDep, SettingsDep
from shared.core.encryption import secret_box
from shared.corrections import service
from shared.schemas.common import Problem
from shared.schemas.disagreements import (
    CorrectionTargetRead,
    CorrectionTargetSaved,
    CorrectionTargetSet,
)

router = APIRouter(prefix="/v1/sources", tags=["sources"])


@router.put(
    "/{source_id}/correction-target",
    response_model=CorrectionTargetSaved,
    responses={
        201: {"model": CorrectionTargetSaved, "description": "Created"},
        404: {"model": Problem},
        409: {"model": Problem},
        422: {"model": Problem},
    },
)
async def set_correction_target(
    source_id: uuid.UUID,
    body: CorrectionTargetSet,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: AdminDep,
) -> CorrectionTargetSaved:
    """Where this source receives ``decision.corrected`` for its own decisions (signed POSTs).

    201 when created, 200 when updated. Created without a ``secret``: one is generated and
    returned in this response only. Updated without one: the current secret is kept.
    """
    channel, generated, created = await service.set_correction_target(
        session,
        source_id=source_id,
        data=body,
        box=secret_box(settings),
        insecure_hosts=settings.insecure_target_hosts,
        actor=principal,
    )
    response.status_code = 201 if created else 200
    return CorrectionTargetSaved(
        **service.correction_target_read(channel).model_dump(), secret=generated
    )


@router.get(
    "/{source_id}/correction-target",
    response_model=CorrectionTargetRead,
    responses={404: {"model": Problem}},
)
async def get_correction_target(
    source_id: uuid.UUID, session: SessionDep, _: AdminDep
) -> CorrectionTargetRead:
    """The source's correction target (URL as a hint; the secret is never returned)."""
    return service.correction_target_read(
        await service.get_correction_target(session, source_id=source_id)
    )
