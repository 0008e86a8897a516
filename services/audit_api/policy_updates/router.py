"""Policy updates: write, publish, acknowledge (``/v1/policy-updates``), and the policy
version history (``/v1/policies/{code}/versions``)."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.audit_api.deps import (
    ANY_ROLE,
    PublicAccess,
    SessionDep,
    SettingsDep,
    get_principal,
    require_roles,
)
from shared.channels.languages import DEFAULT_MESSAGE_LANGUAGE
from shared.core.auth import Principal
from shared.models.base import utcnow
from shared.policy_updates import queries, service
from shared.schemas.common import Page, Problem
from shared.schemas.fields import PolicyCode
from shared.schemas.policy_updates import (
    AcknowledgementRead,
    AcknowledgementsRead,
    PolicyUpdateCreate,
    PolicyUpdatePatch,
    PolicyUpdateQuery,
    PolicyUpdateRead,
    PolicyVersionsRead,
)

router = APIRouter()
updates = APIRouter(prefix="/v1/policy-updates", tags=["policy updates"])
policies = APIRouter(prefix="/v1/policies", tags=["policy updates"])

AuthorDep = Annotated[Principal, Depends(require_roles(*queries.AUTHORS))]
OverseerDep = Annotated[Principal, Depends(require_roles(*queries.OVERSEERS))]
AnyKeyDep = Annotated[Principal, Depends(require_roles(*ANY_ROLE))]

# The acknowledgement link of a message is opened without a key: the token it carries is
# signed for one reviewer and one update, expires, and can do nothing but acknowledge it.
ACKNOWLEDGEMENT_LINK = PublicAccess(
    "the signed acknowledgement link of a message (one reviewer, one update, expiring); "
    "with no token, the reviewer's own API key"
)
Token = Annotated[
    str,
    Query(
        min_length=1,
        max_length=1024,
        description="The signed token of the acknowledgement link in a message.",
    ),
]

_PROBLEMS: dict[int | str, dict[str, object]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}
# The page holds a link token: keep it out of caches and Referer headers, and let the page
# do nothing but post its one form back here.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


@updates.post("", status_code=201, response_model=PolicyUpdateRead, responses=_PROBLEMS)
async def create_update(
    body: PolicyUpdateCreate, session: SessionDep, principal: AuthorDep
) -> PolicyUpdateRead:
    """Write a draft policy update (a market-scoped key: for its markets only)."""
    return await service.create_update(session, data=body, actor=principal)


@updates.get("", response_model=Page[PolicyUpdateRead], responses=_PROBLEMS)
async def list_updates(
    query: Annotated[PolicyUpdateQuery, Query()], session: SessionDep, principal: AnyKeyDep
) -> Page[PolicyUpdateRead]:
    """Policy updates, newest first. Admins, managers and policy POCs see drafts too;
    moderators and QA auditors the published updates of their markets."""
    page = await queries.list_updates(session, filters=query, viewer=principal)
    return Page(items=page.items, next_cursor=page.next_cursor)


@updates.get("/{update_id}", response_model=PolicyUpdateRead, responses=_PROBLEMS)
async def get_update(
    update_id: uuid.UUID, session: SessionDep, principal: AnyKeyDep
) -> PolicyUpdateRead:
    """One policy update (404 for one the caller may not see)."""
    return await service.get_update_for(session, update_id=update_id, viewer=principal)


@updates.patch("/{update_id}", response_model=PolicyUpdateRead, responses=_PROBLEMS)
async def change_update(
    update_id: uuid.UUID, body: PolicyUpdatePatch, session: SessionDep, principal: AuthorDep
) -> PolicyUpdateRead:
    """Change a draft; 409 once it is published."""
    return await service.change_update(session, update_id=update_id, data=body, actor=principal)


@updates.post("/{update_id}/publish", response_model=PolicyUpdateRead, responses=_PROBLEMS)
async def publish_update(
    update_id: uuid.UUID, session: SessionDep, principal: AuthorDep
) -> PolicyUpdateRead:
    """Publish a draft, once: each policy code gets a new version in force from
    ``effective_at``, the attached quiz is assigned to the update's markets, and
    ``policy_update.published`` goes to every matching channel of each market."""
    return await service.publish_update(session, update_id=update_id, actor=principal)


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


# The confirm page's few words, in each language messages are written in.
_PAGE_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "confirm": "I have read this policy update",
        "in_force": "In force from {at}.",
        "done": "Acknowledged on {at}. Thank you.",
        "done_title": "Policy update acknowledged",
    },
    "de": {
        "confirm": "Ich habe diese Richtlinienänderung gelesen",
        "in_force": "Gültig ab {at}.",
        "done": "Bestätigt am {at}. Danke.",
        "done_title": "Richtlinienänderung bestätigt",
    },
}


def _words(language: str) -> dict[str, str]:
    return _PAGE_WORDS.get(language, _PAGE_WORDS[DEFAULT_MESSAGE_LANGUAGE])


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(
    language: str, title: str, *paragraphs: str, form_action: str | None = None
) -> HTMLResponse:
    parts = [
        "<!doctype html>",
        f'<html lang="{html.escape(language, quote=True)}"><head><meta charset="utf-8">',
        '<meta name="robots" content="noindex">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(text)}</p>" for text in paragraphs),
    ]
    if form_action is not None:
        parts.append(
            f'<form method="post" action="{html.escape(form_action, quote=True)}">'
            f'<button type="submit">{html.escape(_words(language)["confirm"])}</button></form>'
        )
    parts.append("</body></html>")
    return HTMLResponse("".join(parts), headers=_PAGE_HEADERS)


@updates.get(
    "/{update_id}/acknowledge",
    response_class=HTMLResponse,
    dependencies=[Depends(ACKNOWLEDGEMENT_LINK)],
    responses={**_PROBLEMS, 200: {"content": {"text/html": {}}}},
)
async def confirm_page(
    update_id: uuid.UUID, token: Token, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The page an acknowledgement link opens, in the reviewer's language: the update's title
    and summary and a button that acknowledges it (a form posting back here). Opening it
    acknowledges nothing: mail scanners open links. 403 for a forged or expired link, 409
    for a draft."""
    update, reviewer_id = await service.check_link(
        session, settings=settings, update_id=update_id, token=token, now=utcnow()
    )
    language = await queries.reader_language(session, reviewer_id=reviewer_id)
    words = _words(language)
    text = update.texts.get(language) or update.texts[update.language]
    done = (await queries.acknowledged_at(session, update_id=update.id)).get(reviewer_id)
    if done is not None:
        return _page(
            language, text["title"], text["summary"], words["done"].format(at=_when(done.at))
        )
    return _page(
        language,
        text["title"],
        text["summary"],
        words["in_force"].format(at=_when(update.effective_at)),
        # Relative: back to this very URL, however the API is mounted behind a proxy.
        form_action=f"?token={quote(token, safe='')}",
    )


@updates.post(
    "/{update_id}/acknowledge",
    response_model=AcknowledgementRead,
    dependencies=[Depends(ACKNOWLEDGEMENT_LINK)],
    responses={
        **_PROBLEMS,
        200: {"content": {"application/json": {}, "text/html": {}}},
        401: {"model": Problem},
    },
)
async def acknowledge(
    update_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
) -> AcknowledgementRead | Response:
    """Record that a reviewer has read the update; the first time counts, and acknowledging
    again answers the same. With ``token`` (the signed link of a message) no key is needed;
    without it, the reviewer's own key (401 without one, 403 for a key whose reviewer's
    profile lists none of the update's markets). A browser's form post gets a page back."""
    now = utcnow()
    if token is not None:
        acknowledged = await service.acknowledge_with_link(
            session, settings=settings, update_id=update_id, token=token, now=now
        )
    else:
        principal = await get_principal(request, session)
        acknowledged = await service.acknowledge_with_key(
            session, update_id=update_id, actor=principal, now=now
        )
    if _wants_html(request):
        language = await queries.reader_language(session, reviewer_id=acknowledged.reviewer_id)
        words = _words(language)
        done = words["done"].format(at=_when(acknowledged.acknowledged_at))
        return _page(language, words["done_title"], done)
    return acknowledged


@updates.get(
    "/{update_id}/acknowledgements", response_model=AcknowledgementsRead, responses=_PROBLEMS
)
async def list_acknowledgements(
    update_id: uuid.UUID, session: SessionDep, principal: OverseerDep
) -> AcknowledgementsRead:
    """Over the reviewers of the update's markets: who acknowledged it and when, and who
    has not (a market-scoped key: the reviewers of its markets)."""
    return await queries.acknowledgements(session, update_id=update_id, viewer=principal)


@policies.get("/{policy_code}/versions", response_model=PolicyVersionsRead, responses=_PROBLEMS)
async def policy_versions(
    policy_code: Annotated[PolicyCode, Path()], session: SessionDep, principal: AnyKeyDep
) -> PolicyVersionsRead:
    """A policy code's version history, oldest first: each version, the update that made
    it, and when it takes effect."""
    return await queries.policy_versions(session, policy_code=policy_code)


router.include_router(updates)
router.include_router(policies)
