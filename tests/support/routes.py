"""The app's operations and who each declares may call it, read from the routes themselves.

Every operation declares its callers through its dependencies: a role check
(``require_roles(...)``, a ``RoleCheck``), any valid key (``PrincipalDep``), or
``PublicAccess`` (the probes, and the webhooks that carry their own HMAC signature).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from services.audit_api.deps import PublicAccess, RoleCheck, get_principal
from shared.core.auth import ALL_ROLES, Role

UNDECLARED: frozenset[Role] = frozenset()
"""The roles of an operation that declares nothing (a failure of the role matrix)."""


@dataclass(frozen=True)
class Operation:
    """One method on one path, and the roles it declares may call it (None: public)."""

    method: str
    path: str
    roles: frozenset[Role] | None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def declared_roles(dependant: Dependant) -> frozenset[Role] | None:
    """The roles an operation admits, from its dependencies.

    Role checks admit their roles (several: only the roles all of them admit); a bare
    principal admits every role; ``PublicAccess`` alone means no key at all (None); none of
    these is ``UNDECLARED``.
    """
    calls = list(_calls(dependant))
    checks = [call.roles for call in calls if isinstance(call, RoleCheck)]
    if checks:
        return frozenset.intersection(*checks)
    if get_principal in calls:
        return frozenset(ALL_ROLES)
    if any(isinstance(call, PublicAccess) for call in calls):
        return None
    return UNDECLARED


def operations(app: FastAPI) -> list[Operation]:
    """Every documented operation of ``app`` with its declared roles."""
    found = []
    for context in iter_route_contexts(app.routes):
        # The context's view, not the original route's: a router included in another
        # router has its path and schema visibility only as included.
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        path = context.path_format
        assert path is not None
        for method in sorted(context.methods or ()):
            found.append(Operation(method, path, declared_roles(context.dependant)))
    return found


def example_url(path: str, operation: dict[str, Any]) -> str:
    """``path`` with every path parameter of the OpenAPI ``operation`` filled with a
    well-formed value (an integer, a UUID, or a short string)."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        schema = parameter.get("schema", {})
        if schema.get("type") == "integer":
            value = "1"
        elif schema.get("format") == "uuid":
            value = str(uuid.uuid4())
        else:
            value = "x"
        path = path.replace("{" + parameter["name"] + "}", value)
    return path
