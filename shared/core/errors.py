"""Domain errors. Each carries its RFC 9457 problem type and HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A failure the client can act on; rendered as ``application/problem+json``."""

    status: ClassVar[int] = 400
    type_slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers

    @property
    def problem_type(self) -> str:
        return problem_type_uri(self.type_slug)


def problem_type_uri(slug: str) -> str:
    """The documented problem type URI for a slug."""
    return f"https://plumbline.dev/problems/{slug}"


class BadRequest(DomainError):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class Unauthorized(DomainError):
    status = 401
    type_slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, *, scheme: str = "Bearer") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": scheme})


class Forbidden(DomainError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(DomainError):
    status = 413
    type_slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(DomainError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


class UnprocessableEntity(DomainError):
    status = 422
    type_slug = "validation-error"
    title = "Validation error"


class ServiceUnavailable(DomainError):
    status = 503
    type_slug = "service-unavailable"
    title = "Service unavailable"


class TooManyRequests(DomainError):
    status = 429
    type_slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
