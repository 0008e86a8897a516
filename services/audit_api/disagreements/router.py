"""Disagreements: list, read, dispute (the moderator's own key), resolve (POC, manager)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.audit_api.deps import SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.disagreements import lifecycle, service
from shared.models.base import utcnow
from shared.schemas.common import Page, Problem
from shared.schemas.disagreements import (
    DisagreementDetail,
    DisagreementQuery,
    DisagreementRead,
    DisputeCreate,
    ResolutionCreate,
)

router = APIRouter(prefix="/v1/disagreements", tags=["disagreements"])

ReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.MODERATOR))
]
ModeratorDep = Annotated[Principal, Depends(require_roles(Role.MODERATOR))]
ArbiterDep = Annotated[Principal, Depends(require_roles(Role.POLICY_POC, Role.MANAGER))]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
}


@router.get("", response_model=Page[DisagreementRead])
async def list_disagreements(
    query: Annotated[DisagreementQuery, Query()], session: SessionDep, principal: ReaderDep
) -> Page[DisagreementRead]:
    """Disagreements, newest first. A moderator key sees only its own reviewer's."""
    page = await service.list_disagreements(session, filters=query, viewer=principal)
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/{disagreement_id}", response_model=DisagreementDetail, responses=_PROBLEMS)
async def get_disagreement(
    disagreement_id: uuid.UUID, session: SessionDep, principal: ReaderDep
) -> DisagreementDetail:
    """A disagreement with every state change it went through."""
    return await service.get_disagreement(
        session, disagreement_id=disagreement_id, viewer=principal
    )


@router.post("/{disagreement_id}/dispute", response_model=DisagreementDetail, responses=_PROBLEMS)
async def dispute_disagreement(
    disagreement_id: uuid.UUID, body: DisputeCreate, session: SessionDep, principal: ModeratorDep
) -> DisagreementDetail:
    """Contest the verdict (the audited moderator's own key, before ``dispute_deadline``).

    After the deadline: 409 with problem type ``dispute-window-closed``. Disputed or
    resolved already: 409. Someone else's: 403.
    """
    return await lifecycle.dispute(
        session, disagreement_id=disagreement_id, reason=body.reason, actor=principal, now=utcnow()
    )


@router.post("/{disagreement_id}/resolve", response_model=DisagreementDetail, responses=_PROBLEMS)
async def resolve_disagreement(
    disagreement_id: uuid.UUID,
    body: ResolutionCreate,
    session: SessionDep,
    principal: ArbiterDep,
) -> DisagreementDetail:
    """Rule on a disputed verdict (a policy POC or manager who is not the case's auditor).

    ``overturned`` makes the verdict count as correct in every report at once; the
    auditor's original outcome is kept. Not disputed (or resolved already): 409.
    """
    return await lifecycle.resolve(
        session,
        disagreement_id=disagreement_id,
        outcome=body.outcome,
        note=body.note,
        actor=principal,
        now=utcnow(),
    )
