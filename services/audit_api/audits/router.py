"""The auditor work queue: ``/v1/audits``, ``/v1/audits/claim``, ``/v1/audits/{id}/verdict``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.audit_api.deps import (
    ANY_ROLE,
    RoleWork,
    SessionDep,
    Work,
    app_settings,
    require_roles,
)
from shared.audits import service
from shared.core.auth import Principal, Role
from shared.core.encryption import golden_selection_key
from shared.schemas.audits import AuditQuery, AuditRead, VerdictCreate
from shared.schemas.common import Page, Problem

router = APIRouter(prefix="/v1/audits", tags=["audits"])

# The work queue's operations, the busiest after intake, take the auditor and the unit of
# work from one dependency.
AuditorWorkDep = Annotated[Work, Depends(RoleWork([Role.QA_AUDITOR]), scope="function")]
ReaderDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]


@router.post(
    "/claim",
    response_model=AuditRead,
    responses={
        204: {"description": "Nothing is left for this auditor."},
        403: {"model": Problem},
    },
)
async def claim_audit(request: Request, work: AuditorWorkDep) -> AuditRead | Response:
    """Hand the calling auditor the next audit to judge, under a lease; 204 when none is left.

    Only audits in the auditor's markets and languages (their reviewer profile), never a
    decision of their own, never a sensitive item past the auditor's daily cap. The decision
    is blind: no ``moderator_id`` until the verdict is in. While the auditor holds an
    unexpired claim, claiming again returns that same audit (lease unchanged). A key without
    a reviewer, or whose reviewer has no markets or languages, gets 204.
    """
    settings = app_settings(request)
    audit = await service.claim_next_audit(
        work.session,
        principal=work.principal,
        lease_minutes=settings.claim_lease_minutes,
        golden_rate=settings.golden_rate,
        golden_key=golden_selection_key(settings),
    )
    if audit is None:
        return Response(status_code=204)
    return audit


@router.post(
    "/{audit_id}/verdict",
    response_model=AuditRead,
    responses={404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
)
async def submit_verdict(
    audit_id: uuid.UUID,
    body: VerdictCreate,
    request: Request,
    work: AuditorWorkDep,
) -> AuditRead:
    """Judge the audit you hold: ``correct``, or ``incorrect`` with what it should have been.

    An incorrect verdict needs ``expected_action`` and ``severity``; its ``error_type`` is
    derived from the two decisions (``shared.verdicts``), and it opens a disagreement
    (``disagreement_id``) and sends the correction to the source platform. 409 when the audit
    is already judged or not claimed by you.
    """
    return await service.submit_verdict(
        work.session,
        principal=work.principal,
        audit_id=audit_id,
        data=body,
        dispute_window_hours=app_settings(request).dispute_window_hours,
    )


@router.get("", response_model=Page[AuditRead], responses={403: {"model": Problem}})
async def list_audits(
    query: Annotated[AuditQuery, Query()], session: SessionDep, principal: ReaderDep
) -> Page[AuditRead]:
    """Audits, newest day first; ``from`` and ``to`` are audit days (inclusive).

    A moderator key lists only its own reviewer's audits (asking for another moderator's is
    403); a QA auditor the audits they claimed or judged (blind until judged); other roles
    all, market-scoped keys only their markets.
    """
    page = await service.list_audits(session, principal=principal, filters=query)
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.get("/{audit_id}", response_model=AuditRead, responses={404: {"model": Problem}})
async def get_audit(audit_id: uuid.UUID, session: SessionDep, principal: ReaderDep) -> AuditRead:
    """One audit, visible as in the listing."""
    return await service.get_audit(session, principal=principal, audit_id=audit_id)
