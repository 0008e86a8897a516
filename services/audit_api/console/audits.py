"""The audits behind a figure: ``GET /console/audits`` (the drill-down of the overview's
numbers) and ``GET /console/audits/{id}`` (manager, admin, policy POC).

The list is ``GET /v1/audits``: the same ``AuditQuery`` filters, the same domain function
(``shared.audits.service.list_audits``, visibility and market scoping included) and its
keyset pages; the detail is ``get_audit``, visible as in the listing.
"""

from __future__ import annotations

import uuid
from typing import Annotated, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from services.audit_api.console.forms import Problem, problems_of
from services.audit_api.console.overview import form_values
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep
from shared.analytics.errors import ERROR_TYPES
from shared.audits import service
from shared.core.auth import Role
from shared.core.errors import BadRequest, UnprocessableEntity
from shared.schemas.audits import AuditQuery, AuditRead, AuditStatus, Outcome

router = APIRouter()

AUDIT_PAGE_ROLES = (Role.MANAGER, Role.ADMIN, Role.POLICY_POC)
AuditsContext = Annotated[ConsoleContext, Depends(console_page(*AUDIT_PAGE_ROLES))]

# The list's filters, as ``GET /v1/audits`` names them (``cursor`` pages on).
FILTER_FIELDS = (
    "status",
    "market",
    "queue",
    "moderator_id",
    "auditor_id",
    "from",
    "to",
    "outcome",
    "error_type",
    "golden",
    "limit",
    "cursor",
)
CONSOLE_PAGE_SIZE = 50


def _page_link(values: dict[str, str], cursor: str) -> str:
    return "/console/audits?" + urlencode({**values, "cursor": cursor})


@router.get("/audits", response_class=HTMLResponse)
async def audits_page(
    request: Request, context: AuditsContext, session: SessionDep
) -> HTMLResponse:
    """A page of the audits the filters select, newest day first."""
    values = form_values(request, FILTER_FIELDS)
    problems: list[Problem] = []
    status_code = 200
    items: list[AuditRead] = []
    next_link: str | None = None
    filters = {name: value for name, value in values.items() if name != "cursor"}
    first_link = "/console/audits?" + urlencode(filters) if "cursor" in values else None
    try:
        query = AuditQuery.model_validate({"limit": CONSOLE_PAGE_SIZE, **values})
        page = await service.list_audits(session, principal=context.principal, filters=query)
        items = page.items
        if page.next_cursor is not None:
            next_link = _page_link(filters, page.next_cursor)
    except (ValidationError, UnprocessableEntity) as exc:
        problems, status_code = problems_of(exc), 422
    except BadRequest as exc:
        # A cursor this site did not make (edited or stale): the API's 400.
        problems, status_code = [Problem(("cursor",), exc.detail)], 400
    return render(
        request,
        "audits/list.html",
        context=context,
        status_code=status_code,
        values=values,
        problems=problems,
        items=items,
        next_link=next_link,
        first_link=first_link,
        markets=context.principal.markets,
        statuses=get_args(AuditStatus),
        outcomes=get_args(Outcome),
        error_types=ERROR_TYPES,
    )


@router.get("/audits/{audit_id}", response_class=HTMLResponse)
async def audit_page(
    request: Request, audit_id: uuid.UUID, context: AuditsContext, session: SessionDep
) -> HTMLResponse:
    """One audit: the decision, the verdict and its disagreement (404 beyond reach)."""
    audit = await service.get_audit(session, principal=context.principal, audit_id=audit_id)
    return render(request, "audits/detail.html", context=context, audit=audit)
