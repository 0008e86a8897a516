"""Who may call what: a role x endpoint matrix generated from the app's own routes.

Every operation declares its callers in code, through its dependencies: a role check
(``require_roles(...)``, a ``RoleCheck``), any valid key (``PrincipalDep``), or
``PublicAccess`` (the probes, and the webhooks that carry their own HMAC signature). An
operation declaring none of these fails here, so a new endpoint cannot ship without a decision
about who may call it. Each operation is then called with a key of every role: 403 where the
role is not allowed, never 401 or 403 where it is, and 401 without a key unless it is public.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.deps import PROBE, SIGNED_WEBHOOK, PrincipalDep, require_roles
from shared.core.auth import ALL_ROLES, Principal, Role
from tests.conftest import LiveServer, auth, make_key
from tests.support.routes import UNDECLARED, Operation, example_url, operations

# Open without an API key, on purpose. Adding one here is a security decision.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/webhooks/decisions"),
    ("POST", "/v1/webhooks/appeals"),
    # The acknowledgement link of a policy-update e-mail: its signed token (one reviewer, one
    # update, expiring) is the credential. GET only shows a confirm page; POST acknowledges,
    # and without a token it takes the reviewer's own key (401 without one).
    ("GET", "/v1/policy-updates/{update_id}/acknowledge"),
    ("POST", "/v1/policy-updates/{update_id}/acknowledge"),
}


async def call(
    client: httpx.AsyncClient,
    schema: dict[str, Any],
    operation: Operation,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Call ``operation`` with well-formed path parameters and, if it takes one, ``{}``."""
    documented = schema["paths"][operation.path][operation.method.lower()]
    url = example_url(operation.path, documented)
    body: dict[str, Any] | None = {} if "requestBody" in documented else None
    return await client.request(operation.method, url, json=body, headers=headers)


# ------------------------------------------------------------------------- declarations


def test_an_operation_without_a_declaration_is_caught() -> None:
    # What the matrix would say about a new endpoint written with no access dependency.
    router = APIRouter()

    @router.get("/open")
    async def forgot() -> None: ...

    @router.get("/any-key")
    async def any_key(_: PrincipalDep) -> None: ...

    @router.get("/managers")
    async def managers(
        _: Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))],
    ) -> None: ...

    @router.get("/probe", dependencies=[Depends(PROBE)])
    async def probe() -> None: ...

    app = FastAPI()
    app.include_router(router)
    assert {str(o): o.roles for o in operations(app)} == {
        "GET /open": UNDECLARED,
        "GET /any-key": frozenset(ALL_ROLES),
        "GET /managers": {Role.ADMIN, Role.MANAGER},
        "GET /probe": None,
    }


def test_every_operation_declares_who_may_call_it(live_server: LiveServer) -> None:
    found = operations(live_server.app)
    undeclared = [str(operation) for operation in found if operation.roles == UNDECLARED]
    assert undeclared == [], "declare require_roles(...), PrincipalDep or PublicAccess"
    public = {(operation.method, operation.path) for operation in found if operation.roles is None}
    assert public == PUBLIC
    assert len(found) >= 70


async def test_the_matrix_covers_every_documented_operation(
    client: httpx.AsyncClient, live_server: LiveServer
) -> None:
    schema = (await client.get("/openapi.json")).json()
    documented = {
        (method.upper(), path) for path, methods in schema["paths"].items() for method in methods
    }
    assert documented == {(o.method, o.path) for o in operations(live_server.app)}


def test_public_operations_say_why() -> None:
    assert PROBE.reason
    assert SIGNED_WEBHOOK.reason


# ------------------------------------------------------------------------------ calling


@pytest.fixture
async def role_keys(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[Role, str]:
    """A key of every role, each bound to a reviewer of its own, all markets."""
    return {
        role: await make_key(sessionmaker, role, reviewer_id=f"matrix-{role}") for role in ALL_ROLES
    }


async def test_each_role_is_refused_exactly_where_it_is_not_allowed(
    client: httpx.AsyncClient, live_server: LiveServer, role_keys: dict[Role, str]
) -> None:
    schema = (await client.get("/openapi.json")).json()
    wrong: list[str] = []
    checked = 0
    for operation in operations(live_server.app):
        if operation.roles is None:
            continue
        for role in ALL_ROLES:
            response = await call(client, schema, operation, auth(role_keys[role]))
            allowed = role in operation.roles
            if allowed and response.status_code in (401, 403):
                wrong.append(f"{operation} as {role}: {response.status_code} {response.text}")
            if not allowed and response.status_code != 403:
                wrong.append(f"{operation} as {role}: {response.status_code}, expected 403")
            assert response.status_code < 500, f"{operation} as {role}: {response.text}"
            checked += 1
    assert wrong == []
    assert checked >= 300


async def test_every_operation_but_the_public_ones_refuses_a_missing_key(
    client: httpx.AsyncClient, live_server: LiveServer
) -> None:
    schema = (await client.get("/openapi.json")).json()
    checked = 0
    for operation in operations(live_server.app):
        if operation.roles is None:
            continue
        response = await call(client, schema, operation)
        assert response.status_code == 401, f"{operation}: {response.status_code}"
        checked += 1
    assert checked >= 60
