"""Signing in and out, the one-time password link, the language choice, and the landing
page of each role."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.audit_api.console.session import (
    CONSOLE_PUBLIC,
    LANGUAGE_COOKIE,
    PRE_SESSION_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleContext,
    absolute_timeout,
    console_page,
    cookie_is_secure,
    get_console_context,
    safe_next,
    verify_pre_session_csrf,
)
from services.audit_api.console.templating import (
    CONSOLE_LANGUAGES,
    negotiated_language,
    render,
)
from services.audit_api.deps import SessionDep, SettingsDep
from shared.core.auth import ALL_ROLES, Role
from shared.core.errors import TooManyRequests
from shared.users import service, sessions
from shared.users.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

router = APIRouter()

# Where each role starts its day (DESIGN.md, "Web console").
LANDING = {
    Role.QA_AUDITOR: "/console/workbench",
    Role.MODERATOR: "/console/my-audits",
    Role.POLICY_POC: "/console/arbitration",
    Role.MANAGER: "/console/overview",
    Role.ADMIN: "/console/admin/people",
}

AnyoneSignedIn = Annotated[ConsoleContext, Depends(console_page(*ALL_ROLES))]
# Link and sign-in pages must not leak their URL (a token) or the form to other sites.
_PRIVATE = {"Referrer-Policy": "no-referrer"}


def _pre_session_token(request: Request) -> str:
    return request.cookies.get(PRE_SESSION_CSRF_COOKIE) or secrets.token_urlsafe(32)


def _with_pre_session_cookie(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(
        PRE_SESSION_CSRF_COOKIE,
        token,
        httponly=True,
        secure=cookie_is_secure(request),
        samesite="strict",
        path="/console",
    )
    return response


def _sign_in_page(
    request: Request, *, next_url: str, error: str | None = None, status_code: int = 200
) -> Response:
    token = _pre_session_token(request)
    response = render(
        request,
        "sign_in.html",
        status_code=status_code,
        headers=_PRIVATE,
        csrf_token=token,
        next_url=safe_next(next_url),
        error=error,
        oidc_enabled=request.app.state.settings.oidc_enabled,
        context=None,
    )
    return _with_pre_session_cookie(response, request, token)


@router.get("/")
async def landing(context: AnyoneSignedIn) -> RedirectResponse:
    """Each person lands on the page of their daily work."""
    return RedirectResponse(LANDING[context.role], status_code=303)


@router.get("/account")
async def account(request: Request, context: AnyoneSignedIn) -> Response:
    """Who is signed in: e-mail, role, reviewer, markets, language."""
    return render(request, "account.html", context=context)


@router.get("/sign-in", dependencies=[Depends(CONSOLE_PUBLIC)])
async def sign_in_form(
    request: Request, next: Annotated[str | None, Query(max_length=2048)] = None
) -> Response:
    return _sign_in_page(request, next_url=next or "/console/")


@router.post("/sign-in", dependencies=[Depends(CONSOLE_PUBLIC), Depends(verify_pre_session_csrf)])
async def sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    next: Annotated[str, Form(max_length=2048)] = "/console/",
) -> Response:
    """Check the password; on success a new session (a new token: fixation-proof)."""
    client = request.client.host if request.client else "unknown"
    wait = await request.app.state.rate_limits.sign_in_wait(email=email, client=client)
    if wait is not None:
        raise TooManyRequests("too many sign-in attempts; wait a minute", retry_after=wait)
    user = await service.authenticate_password(session, email=email, password=password)
    if user is None:
        return _sign_in_page(request, next_url=next, error="invalid", status_code=401)
    _, token = await sessions.start_session(
        session, user=user, absolute_timeout=absolute_timeout(settings)
    )
    target = safe_next(next)
    if target == "/console/":
        target = LANDING[Role(user.role)]
    response = RedirectResponse(target, status_code=303)
    start_session_cookie(response, request, token=token)
    return response


def start_session_cookie(response: Response, request: Request, *, token: str) -> None:
    """Set the session cookie (HttpOnly, SameSite=Lax, Secure outside localhost) and drop
    the pre-session CSRF cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=cookie_is_secure(request),
        samesite="lax",
        path="/console",
    )
    response.delete_cookie(PRE_SESSION_CSRF_COOKIE, path="/console")


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, _: AnyoneSignedIn) -> Response:
    """End the session at once; the cookie is cleared too."""
    await sessions.end_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/password", dependencies=[Depends(CONSOLE_PUBLIC)])
async def password_form(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Query(min_length=1, max_length=256)],
) -> Response:
    """The one-time link's page: set a password (the link is spent only when it is set)."""
    user = await service.user_for_password_link(session, token=token)
    csrf = _pre_session_token(request)
    response = render(
        request,
        "password.html",
        language=user.language if user is not None else negotiated_language(request),
        status_code=200 if user is not None else 404,
        headers=_PRIVATE,
        csrf_token=csrf,
        token=token,
        email=user.email if user is not None else None,
        min_length=MIN_PASSWORD_LENGTH,
        error=None,
        context=None,
    )
    return _with_pre_session_cookie(response, request, csrf)


@router.post("/password", dependencies=[Depends(CONSOLE_PUBLIC), Depends(verify_pre_session_csrf)])
async def set_password(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Form(min_length=1, max_length=256)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    password_again: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
) -> Response:
    user = await service.user_for_password_link(session, token=token)
    error = None
    if len(password) < MIN_PASSWORD_LENGTH:
        error = "too_short"
    elif not secrets.compare_digest(password.encode(), password_again.encode()):
        error = "mismatch"
    if user is None or error is not None:
        return render(
            request,
            "password.html",
            language=user.language if user is not None else negotiated_language(request),
            status_code=404 if user is None else 422,
            headers=_PRIVATE,
            csrf_token=_pre_session_token(request),
            token=token,
            email=user.email if user is not None else None,
            min_length=MIN_PASSWORD_LENGTH,
            error=error,
            context=None,
        )
    await service.set_password_with_link(session, token=token, password=password)
    return RedirectResponse("/console/sign-in?password=set", status_code=303)


@router.post("/language", dependencies=[Depends(CONSOLE_PUBLIC)])
async def choose_language(
    request: Request,
    session: SessionDep,
    language: Annotated[str, Form(max_length=8)],
    next: Annotated[str, Form(max_length=2048)] = "/console/",
) -> Response:
    """Switch the console's language; remembered on the person (and in a cookie)."""
    if language not in CONSOLE_LANGUAGES:
        language = negotiated_language(request)
    response = RedirectResponse(safe_next(next), status_code=303)
    if request.cookies.get(SESSION_COOKIE):
        context = await get_console_context(request, session, request.app.state.settings)
        await console_page(*ALL_ROLES)(request, context)
        await service.set_language(session, user_id=context.user.id, language=language)
    else:
        await verify_pre_session_csrf(request)
    response.set_cookie(
        LANGUAGE_COOKIE,
        language,
        max_age=365 * 24 * 3600,
        secure=cookie_is_secure(request),
        httponly=True,
        samesite="lax",
        path="/console",
    )
    return response
