"""Reviewer profiles: ``/v1/reviewers``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.audit_api.deps import SessionDep, require_roles
from shared.core.auth import Principal, Role
from shared.core.errors import Forbidden
from shared.reviewers import service
from shared.schemas.common import Page, decode_cursor, page_rows
from shared.schemas.reviewers import ReviewerQuery, ReviewerRead, ReviewerUpsert

router = APIRouter(prefix="/v1/reviewers", tags=["reviewers"])

EditorDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]
ReaderDep = Annotated[
    Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.QA_AUDITOR))
]
ReviewerIdPath = Annotated[str, Path(min_length=1, max_length=128)]


@router.put("/{reviewer_id}", response_model=ReviewerRead)
async def put_reviewer(
    reviewer_id: ReviewerIdPath,
    body: ReviewerUpsert,
    response: Response,
    session: SessionDep,
    principal: EditorDep,
) -> ReviewerRead:
    """Create or update a profile; auditors are handed work only in its markets and languages.

    201 when the reviewer was not known before, 200 otherwise.
    """
    if principal.markets is not None and not set(body.markets) <= set(principal.markets):
        raise Forbidden("this key may not assign markets outside its own")
    reviewer, created = await service.upsert_reviewer(
        session, reviewer_id=reviewer_id, profile=body, actor=principal
    )
    response.status_code = 201 if created else 200
    return ReviewerRead.model_validate(reviewer)


@router.get("/{reviewer_id}", response_model=ReviewerRead)
async def get_reviewer(
    reviewer_id: ReviewerIdPath, session: SessionDep, _: ReaderDep
) -> ReviewerRead:
    return ReviewerRead.model_validate(await service.get_reviewer(session, reviewer_id=reviewer_id))


@router.get("", response_model=Page[ReviewerRead])
async def list_reviewers(
    query: Annotated[ReviewerQuery, Query()], session: SessionDep, principal: ReaderDep
) -> Page[ReviewerRead]:
    after = decode_cursor(query.cursor, keys={"id"})["id"] if query.cursor else None
    reviewers = await service.list_reviewers(
        session,
        limit=query.limit,
        after=after,
        market=query.market,
        language=query.language,
        team=query.team,
        only_markets=principal.markets,
    )
    reviewers, next_cursor = page_rows(
        reviewers, limit=query.limit, position=lambda last: {"id": last.id}
    )
    return Page(
        items=[ReviewerRead.model_validate(r) for r in reviewers],
        next_cursor=next_cursor,
    )
