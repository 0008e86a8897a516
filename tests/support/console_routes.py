"""The console's routes, read from the app itself, with the roles each one declares.

A console route declares its callers like an API operation does: ``console_page(...)`` (a
``ConsolePage``, which is a ``RoleCheck``) or ``CONSOLE_PUBLIC`` (a ``PublicAccess``). The
role matrix, the accessibility checks and the screenshots all enumerate routes from here,
so a page added tomorrow is covered without editing them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from services.audit_api.console.session import ConsolePage
from services.audit_api.deps import PublicAccess, RoleCheck
from shared.core.auth import Role

STATIC_PREFIX = "/console/static"


@dataclass(frozen=True)
class ConsoleRoute:
    """One method on one console path; ``roles`` is None for a public route and empty for a
    route that declares nothing (a failure)."""

    method: str
    path: str
    roles: frozenset[Role] | None
    # Path parameter name -> its annotation (uuid.UUID, int, str...).
    path_params: tuple[tuple[str, object], ...]
    form_fields: tuple[str, ...]
    # Role checks that are not ``console_page(...)`` (an API key's ``require_roles``): a
    # console route must not use them (a browser has no API key).
    api_key_checks: int

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def public(self) -> bool:
        return self.roles is None

    def example_path(self) -> str:
        """The path with every parameter filled: a random UUID, a number, or ``x``."""
        path = self.path
        for name, annotation in self.path_params:
            if annotation is uuid.UUID:
                value = str(uuid.uuid4())
            elif annotation is int:
                value = "987654321"
            else:
                value = "x"
            path = path.replace("{" + name + "}", value)
        return path


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def console_routes(app: FastAPI) -> list[ConsoleRoute]:
    """Every console route of ``app`` (``/console...`` but not its static files)."""
    found = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        path = context.path_format
        assert path is not None
        if not path.startswith("/console") or path.startswith(STATIC_PREFIX):
            continue
        calls = list(_calls(context.dependant))
        checks = [call.roles for call in calls if isinstance(call, ConsolePage)]
        roles: frozenset[Role] | None
        if checks:
            roles = frozenset.intersection(*checks)
        elif any(isinstance(call, PublicAccess) for call in calls):
            roles = None
        else:
            roles = frozenset()
        params = tuple(
            (param.name, param.field_info.annotation) for param in context.dependant.path_params
        )
        fields = tuple(param.name for param in context.dependant.body_params)
        api_key_checks = sum(
            isinstance(call, RoleCheck) and not isinstance(call, ConsolePage) for call in calls
        )
        for method in sorted(context.methods or ()):
            found.append(ConsoleRoute(method, path, roles, params, fields, api_key_checks))
    return found


def main_pages(app: FastAPI, *, forms: bool = False) -> list[ConsoleRoute]:
    """The console's parameterless GET pages for signed-in people (with ``forms``, also the
    ``.../new`` forms)."""
    return [
        route
        for route in console_routes(app)
        if route.method == "GET"
        and not route.path_params
        and route.roles
        and (forms or not route.path.endswith("/new"))
        and route.path not in ("/console/", "/console/reports/download")
    ]
