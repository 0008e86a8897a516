"""RFC 9457 problem responses for every error: ours, the framework's, and the unexpected."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from shared.core.db import is_connection_error
from shared.core.errors import DomainError, problem_type_uri
from shared.schemas.common import Problem, ProblemError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# What a client is told to wait before sending again while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS = 5

_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Validation error"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}


def problem_response(
    *,
    status: int,
    type_slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A ``application/problem+json`` response."""
    default_slug, default_title = _HTTP_TITLES.get(status, ("error", "Error"))
    problem = Problem(
        type=problem_type_uri(type_slug or default_slug),
        title=title or default_title,
        status=status,
        detail=detail,
        errors=[ProblemError.model_validate(error) for error in errors] if errors else None,
    )
    return Response(
        content=problem.model_dump_json(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors as ``{"loc", "msg"}`` pairs, without echoing the input back."""
    return [
        {
            "loc": [part for part in error["loc"] if part != "body" or len(error["loc"]) == 1],
            "msg": error["msg"],
        }
        for error in errors
    ]


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(
        status=exc.status,
        type_slug=exc.type_slug,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    first = errors[0] if errors else None
    detail = f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}" if first else None
    return problem_response(status=422, detail=detail, errors=errors)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(status=exc.status_code, detail=detail, headers=headers)


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    # The client hung up while sending its body: nothing was stored and nobody reads an
    # answer. Normal for a client that times out or stops; not an error of ours.
    logger.info("client disconnected before its request was read", extra={"path": request.url.path})
    return problem_response(status=400, detail="the client disconnected")


def server_error_response(exc: Exception, *, path: str) -> Response:
    """The answer to an exception nothing else handled: 503 with ``Retry-After`` when the
    database is unreachable (sending again later will work), 500 otherwise.

    Called by ``RequestContextMiddleware``, inside the request id and outside the routes, so
    that the response carries ``X-Request-ID`` and the connection stays usable.
    """
    if is_connection_error(exc):
        logger.warning("database unavailable", extra={"path": path, "error": repr(exc)})
        return problem_response(
            status=503,
            detail="the database is unavailable; nothing was changed, send again shortly",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    logger.error("unhandled error", extra={"path": path}, exc_info=exc)
    return problem_response(status=500, detail="An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error as problem details; a stack trace never reaches a client.

    Unexpected exceptions are not handled here: Starlette would answer them from outside our
    middleware and then close the connection; ``server_error_response`` answers them.
    """
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
