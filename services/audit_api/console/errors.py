"""Errors on console pages: a page in the person's language instead of problem JSON, and a
redirect to sign-in when the session is missing or over."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.audit_api.console.session import SESSION_COOKIE, SignInRequired, sign_in_url
from services.audit_api.console.templating import render
from shared.core.errors import DomainError

CONSOLE_PREFIX = "/console/"


def is_console_page(request: Request) -> bool:
    path = request.url.path
    return (path.startswith(CONSOLE_PREFIX) or path == "/console") and not path.startswith(
        "/console/static/"
    )


def console_error_page(request: Request, exc: Exception) -> Response:
    """The console's answer to an error raised while serving one of its pages."""
    if isinstance(exc, SignInRequired):
        target = sign_in_url(exc.next_url)
        if request.headers.get("hx-request") == "true":
            # HTMX swaps responses in place; this header makes it load the sign-in page.
            return Response(status_code=401, headers={"HX-Redirect": target})
        response = RedirectResponse(target, status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/console")
        return response
    if isinstance(exc, DomainError):
        status, detail, headers = exc.status, exc.detail, exc.headers
    elif isinstance(exc, RequestValidationError):
        status, detail, headers = 422, None, None
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers) if exc.headers else None
    else:
        raise exc
    return render(
        request,
        "error.html",
        status_code=status,
        headers=headers,
        status=status,
        detail=detail,
        context=None,
    )


def install_console_error_pages(app: FastAPI) -> None:
    """Route errors on console paths to ``console_error_page``; every other path keeps its
    problem-details handler."""
    for exc_class in (DomainError, RequestValidationError, StarletteHTTPException):
        api_handler = app.exception_handlers[exc_class]

        async def handler(request: Request, exc: Exception, api_handler=api_handler) -> Response:  # type: ignore[no-untyped-def]
            if is_console_page(request):
                return console_error_page(request, exc)
            response: Response = await api_handler(request, exc)
            return response

        app.add_exception_handler(exc_class, handler)
