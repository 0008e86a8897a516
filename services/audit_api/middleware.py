"""Pure ASGI middleware (no BaseHTTPMiddleware overhead on the hot path).

From the outside in: ``RequestContextMiddleware`` (request id, metrics, the answer to any
unhandled exception), ``FailedAuthLimitMiddleware`` (429 for clients that keep failing to
authenticate), ``BodyLimitMiddleware`` (413 and 408 before a body is read whole). All three
run before routing, so none of them waits for authentication or the database.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.audit_api.metrics import HTTP_LATENCY, HTTP_REQUESTS
from services.audit_api.problems import problem_response, server_error_response
from services.audit_api.rate_limits import RateLimits
from shared.core.observability import new_request_id, request_id_var
from shared.core.signing import SOURCE_HEADER

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
WEBHOOK_PREFIX = "/v1/webhooks/"
# Load balancers' probes are never rate limited (/metrics is: it may need a token).
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
_SOURCE_HEADER = SOURCE_HEADER.lower().encode()
# The client must stop sending: the rest of its body will not be read.
_CLOSE = {"Connection": "close"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class RequestContextMiddleware:
    """Give every request an id (``X-Request-ID`` in and out), count it in the metrics, and
    answer any exception nothing else handled (500, or 503 while the database is down).

    Answering here rather than in Starlette's ``ServerErrorMiddleware`` matters twice: that
    one sits outside this middleware (its 500 had no request id) and re-raises after
    answering, which makes uvicorn close a keep-alive connection under the client's feet.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:
                raise  # half a response is out: only closing the connection can end it
            response = server_error_response(exc, path=scope["path"])
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(template, scope["method"], str(status)).inc()
            HTTP_LATENCY.labels(template).observe(time.perf_counter() - started)
            request_id_var.reset(token)


class FailedAuthLimitMiddleware:
    """429 with ``Retry-After`` for a client IP, or a webhook source, that failed to
    authenticate too often (see ``RateLimits``); every 401 answered counts as a failure.

    Checked before anything else is done for the request, so a blocked client costs one
    Redis read, not a body, a key lookup or a signature check.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limits: RateLimits | None = getattr(scope["app"].state, "rate_limits", None)
        if scope["type"] != "http" or limits is None or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        source = (
            _header(scope, _SOURCE_HEADER) if scope["path"].startswith(WEBHOOK_PREFIX) else None
        )
        wait = await limits.failed_auth_wait(client=client, source=source)
        if wait is not None:
            response = problem_response(
                status=429,
                detail="too many failed authentications from this client or for this source",
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return

        async def send_counting_failures(message: Message) -> None:
            # Counted before the 401 leaves: a client must not get its next try in first.
            if message["type"] == "http.response.start" and message["status"] == 401:
                await limits.record_failed_auth(client=client, source=source)
            await send(message)

        await self.app(scope, receive, send_counting_failures)


class RequestBodyRefused(HTTPException):
    """A body over its limit (413) or not complete in time (408), found while it streams.

    An ``HTTPException``: FastAPI re-raises those from body parsing (any other exception
    there becomes a 400), and the problem handlers render it.
    """

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=_CLOSE)


class BodyLimitMiddleware:
    """Refuse a body over its limit (413) before it is read whole, and one that does not
    arrive within ``timeout_seconds`` (408).

    A declared ``Content-Length`` over the limit is refused before a byte is read; chunked
    bodies are counted as they stream. Webhooks have their own limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        webhook_max_body_bytes: int,
        timeout_seconds: float,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.webhook_max_body_bytes = webhook_max_body_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        webhook = scope["path"].startswith(WEBHOOK_PREFIX)
        limit = self.webhook_max_body_bytes if webhook else self.max_body_bytes
        too_large = f"the body is larger than {limit} bytes"
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            response = problem_response(status=413, detail=too_large, headers=_CLOSE)
            await response(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        received = 0
        complete = False

        async def receive_within_limits() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestBodyRefused(
                    408, f"the body did not arrive within {self.timeout_seconds:g} seconds"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyRefused(413, too_large)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, receive_within_limits, send)
