"""Reviewer profiles: ``/v1/reviewers``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.audit_api.deps import SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.reviewers import service
from shared.schemas.common import Page
from shared.schemas.reviewers import ReviewerQuery, ReviewerRead, ReviewerUpsert

router = APIRouter(prefix="/v1/reviewers", tags=["reviewers"])

EditorDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]
ReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.QA_AUDITOR))
]
ReviewerIdPath = Annotated[str, Path(min_length=1, max_length=128)]


@router.put(
    "/{reviewer_id}",
    response_model=ReviewerRead,
    responses={201: {"model": ReviewerRead, "description": "The profile was created."}},
)
async def put_reviewer(
    reviewer_id: ReviewerIdPath,
    body: ReviewerUpsert,
    response: Response,
    session: SessionDep,
    principal: EditorDep,
) -> ReviewerRead:
    """Create or update a profile; auditors are handed work only in its markets and languages.

    201 when the reviewer was not known before, 200 otherwise. A market-scoped key adds or
    removes only its own markets (the reviewer's others stay), may not name a market the
    reviewer does not have outside its own (403), and gets 404 for a reviewer it cannot see.
    """
    reviewer, created = await service.upsert_reviewer(
        session, reviewer_id=reviewer_id, profile=body, actor=principal
    )
    response.status_code = 201 if created else 200
    return service.reviewer_read(reviewer, viewer=principal)


@router.get("/{reviewer_id}", response_model=ReviewerRead)
async def get_reviewer(
    reviewer_id: ReviewerIdPath, session: SessionDep, principal: ReaderDep
) -> ReviewerRead:
    """A profile; 404 for a reviewer outside a market-scoped key's markets. The e-mail
    address is null unless the caller is an admin, a manager or the reviewer themself."""
    reviewer = await service.get_reviewer(session, reviewer_id=reviewer_id, principal=principal)
    return service.reviewer_read(reviewer, viewer=principal)


@router.get("", response_model=Page[ReviewerRead])
async def list_reviewers(
    query: Annotated[ReviewerQuery, Query()], session: SessionDep, principal: ReaderDep
) -> Page[ReviewerRead]:
    page = await service.list_reviewers(
        session,
        page=query,
        market=query.market,
        language=query.language,
        team=query.team,
        principal=principal,
    )
    return Page(
        items=[service.reviewer_read(r, viewer=principal) for r in page.items],
        next_cursor=page.next_cursor,
    )
