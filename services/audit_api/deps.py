"""Request dependencies: settings, the unit of work, the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.api_keys import service as auth_service
from shared.core.auth import ALL_ROLES, Principal, Role
from shared.core.db import unit_of_work
from shared.core.errors import Forbidden, TooManyRequests, Unauthorized
from shared.core.settings import Settings


def app_settings(request: Request) -> Settings:
    """The application's settings, for an operation that reads them without a dependency
    (FastAPI's solving of each dependency costs a busy operation a few per cent of its CPU)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_settings(request: Request) -> Settings:
    return app_settings(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent."""
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <api key>'")
    return token.strip()


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The caller behind a valid, unrevoked API key; 401 otherwise, 429 past the key's
    request limit (``requests_per_key`` per window, counted across every replica)."""
    return await _authenticate(request, session)


async def _authenticate(request: Request, session: AsyncSession) -> Principal:
    # Called once per request: each call counts the request against the key's limit.
    keys: auth_service.KeyCache = request.app.state.api_keys
    principal = await keys.authenticate(session, key=_bearer_token(request))
    if principal is None:
        raise Unauthorized("API key is not valid")
    wait = await request.app.state.rate_limits.key_request_wait(principal.key_id)
    if wait is not None:
        raise TooManyRequests("this API key has made too many requests", retry_after=wait)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


class RoleCheck:
    """A dependency admitting only ``roles``: 401 without a valid key (429 past its limit,
    as ``get_principal``), 403 for the others.

    ``roles`` is also the operation's declaration of who may call it: the role x endpoint
    test reads it from every route's dependencies. It authenticates the key itself rather
    than depending on ``get_principal``: FastAPI's solving of each dependency level costs a
    busy operation (a claim, a verdict) a few per cent of its CPU. An operation therefore
    declares either a role check or ``PrincipalDep``, never both (the key would be counted
    twice against its limit).
    """

    # The OpenAPI errors (401, 429, 503) of an operation that authenticates an API key.
    authenticates_api_key: bool = True

    def __init__(self, roles: Iterable[Role]) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, request: Request, session: SessionDep) -> Principal:
        principal = await _authenticate(request, session)
        if principal.role not in self.roles:
            raise Forbidden(f"role '{principal.role}' may not do this")
        return principal


def require_roles(*roles: Role) -> RoleCheck:
    """A dependency admitting only these roles (see ``RoleCheck``)."""
    return RoleCheck(roles)


@dataclass(frozen=True, slots=True)
class Work:
    """A role-checked caller and the request's unit of work (``RoleWork``)."""

    session: AsyncSession
    principal: Principal


class RoleWork(RoleCheck):
    """A role check that also opens the request's unit of work (``get_session``'s), for the
    busiest operations (a claim, a verdict): one dependency instead of two, and FastAPI's
    solving of a dependency, a generator one most, costs them a few per cent of their CPU.

    Use it as ``Annotated[Work, Depends(RoleWork(...), scope="function")]`` and take no
    ``SessionDep`` beside it (that would be a second transaction).
    """

    async def __call__(  # type: ignore[override]
        self, request: Request
    ) -> AsyncIterator[Work]:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            principal = await _authenticate(request, session)
            if principal.role not in self.roles:
                raise Forbidden(f"role '{principal.role}' may not do this")
            yield Work(session, principal)


class PublicAccess:
    """Declares an operation open without an API key, and why (probes, the schema, webhooks
    that carry their own HMAC signature). The role x endpoint test requires every operation
    to declare either this or a role check."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def __call__(self) -> None:
        return None


ANY_ROLE = ALL_ROLES
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
PROBE = PublicAccess("probes and metrics: load balancers and Prometheus call them without a key")
SIGNED_WEBHOOK = PublicAccess("signed webhook: the source's HMAC signature, not an API key")
