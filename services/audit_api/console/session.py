"""Who is signed in to the console, what they may open, and the CSRF check of every form.

The console's caller is the same ``Principal`` an API key gives (``principal_for``), and a
console page declares its roles with ``console_roles(...)``, a ``RoleCheck``: the role
matrix reads console routes exactly like API routes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from services.audit_api.deps import PublicAccess, RoleCheck, SessionDep, SettingsDep
from shared.core.auth import Principal, Role
from shared.core.errors import DomainError, Forbidden
from shared.core.settings import Settings
from shared.models import User
from shared.users import sessions
from shared.users.service import principal_for

SESSION_COOKIE = "plumbline_session"
# Before sign-in there is no session to hold the CSRF token: the sign-in form's token is a
# double-submit cookie (the form field must equal it).
PRE_SESSION_CSRF_COOKIE = "plumbline_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LANGUAGE_COOKIE = "plumbline_language"

CONSOLE_PUBLIC = PublicAccess(
    "console pages before sign-in (sign-in, one-time password link, OpenID Connect callback)"
)


class SignInRequired(DomainError):
    """No live session: pages answer with a redirect to sign-in, HTMX requests with 401."""

    status = 401
    slug = "sign-in-required"
    title = "Sign-in required"

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in to the console first")
        self.next_url = next_url


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    """A signed-in person on a console page: the ``Principal`` for the domain functions,
    plus what the page needs to render (language, CSRF token)."""

    principal: Principal
    user: User
    csrf_token: str
    language: str

    @property
    def role(self) -> Role:
        return self.principal.role


def cookie_is_secure(request: Request) -> bool:
    """Secure cookies everywhere but plain-HTTP localhost (a developer's ``make run``)."""
    host = (request.url.hostname or "").lower()
    local = host in ("127.0.0.1", "localhost", "::1")
    return not (local and request.url.scheme == "http")


def idle_timeout(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.console_idle_timeout_minutes)


def absolute_timeout(settings: Settings) -> timedelta:
    return timedelta(hours=settings.console_absolute_timeout_hours)


def _next_url(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return target


def safe_next(target: str | None) -> str:
    """A redirect target after sign-in: a console path of this site, never another host."""
    if not target:
        return "/console/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return "/console/"
    if target.startswith("//") or "\\" in target:
        return "/console/"
    return target


def sign_in_url(next_url: str) -> str:
    return "/console/sign-in?next=" + quote(next_url, safe="/")


async def get_console_context(
    request: Request, session: SessionDep, settings: SettingsDep
) -> ConsoleContext:
    """The signed-in person, from the session cookie; ``SignInRequired`` otherwise."""
    token = request.cookies.get(SESSION_COOKIE, "")
    signed_in = await sessions.resolve_session(
        session, token=token, idle_timeout=idle_timeout(settings)
    )
    if signed_in is None:
        raise SignInRequired(_next_url(request))
    return ConsoleContext(
        principal=principal_for(signed_in.user),
        user=signed_in.user,
        csrf_token=signed_in.csrf_token,
        language=signed_in.user.language,
    )


ConsoleContextDep = Annotated[ConsoleContext, Depends(get_console_context)]


class ConsolePage(RoleCheck):
    """A console route admitting only ``roles``: sign-in first (else a redirect to it), 403
    for other roles, and on every write the CSRF check (``verify_csrf``)."""

    # A signed-in session, not an API key.
    authenticates_api_key = False

    async def __call__(  # type: ignore[override]
        self, request: Request, context: ConsoleContextDep
    ) -> ConsoleContext:
        if context.role not in self.roles:
            raise Forbidden(f"role '{context.role}' may not open this page")
        await verify_csrf(request, context)
        return context


def console_page(*roles: Role) -> ConsolePage:
    """The dependency of a console route (see ``ConsolePage``); use it as
    ``context: Annotated[ConsoleContext, Depends(console_page(Role.X, ...))]``."""
    return ConsolePage(roles)


def _same_origin(request: Request) -> bool:
    """Whether a write comes from this site, as far as the browser says.

    Browsers send Origin on every POST, but "null" under a no-referrer policy (the password
    link's page); then Sec-Fetch-Site tells. A client that sends neither is not a browser and
    still has to present the token.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        expected = f"{request.url.scheme}://{request.url.netloc}"
        return secrets.compare_digest(origin.encode(), expected.encode())
    return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")


async def _submitted_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def verify_csrf(request: Request, context: ConsoleContext) -> None:
    """Every state-changing console request carries the session's CSRF token (form field
    ``csrf_token`` or header ``X-CSRF-Token``, compared in constant time) and, when the
    browser names one, this site's Origin. 403 otherwise."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    submitted = await _submitted_token(request)
    if not _same_origin(request) or not secrets.compare_digest(
        submitted.encode(), context.csrf_token.encode()
    ):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and retry")


async def verify_pre_session_csrf(request: Request) -> None:
    """The sign-in form's double-submit check: the form field equals the CSRF cookie."""
    cookie = request.cookies.get(PRE_SESSION_CSRF_COOKIE, "")
    submitted = await _submitted_token(request)
    if (
        not cookie
        or not _same_origin(request)
        or not secrets.compare_digest(submitted.encode(), cookie.encode())
    ):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and retry")
