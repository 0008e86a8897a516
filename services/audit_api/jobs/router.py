"""Background jobs: ``GET /v1/jobs/{job_id}`` (admin, manager)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from services.audit_api.deps import SessionDep, require_roles
from shared.background_jobs import service
from shared.core.auth import Principal, Role
from shared.schemas.common import Problem
from shared.schemas.sampling import JobRead

router = APIRouter(tags=["jobs"])

JobReaderDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobRead,
    responses={404: {"model": Problem}},
)
async def get_job(job_id: uuid.UUID, session: SessionDep, principal: JobReaderDep) -> JobRead:
    """A job's state (``queued``, ``running``, ``complete`` or ``failed``) and its result."""
    job = await service.get_job(session, job_id=job_id, viewer=principal)
    return JobRead.model_validate(job)
