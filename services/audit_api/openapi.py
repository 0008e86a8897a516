"""The OpenAPI document, adjusted to what the API really does, and the docs page.

FastAPI documents validation errors as its own ``HTTPValidationError``; ours are RFC 9457
problems. The webhook reads its raw body (the signature covers the exact bytes), so its body
models are added to the components by hand. The error statuses an operation can answer
follow from how it is built (its dependencies, parameters and body, and the middleware every
request passes), so they are derived from the route, not written by hand per route.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

from services.audit_api.deps import RoleCheck, get_principal, get_session
from services.audit_api.middleware import PROBE_PATHS
from services.audit_api.problems import PROBLEM_JSON
from shared.schemas.appeals import AppealBatch, AppealEvent
from shared.schemas.common import Problem
from shared.schemas.decisions import DecisionBatch, DecisionEvent

EXTRA_MODELS: tuple[type[BaseModel], ...] = (DecisionEvent, DecisionBatch, AppealEvent, AppealBatch)
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (400, 401, 413, 422, 503)
}


def webhook_request_body(single: type[BaseModel], batch: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a signed webhook, which reads its raw body: one event or a batch."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": f"#/components/schemas/{single.__name__}"},
                            {"$ref": f"#/components/schemas/{batch.__name__}"},
                        ]
                    }
                }
            },
        }
    }


STATUS_DESCRIPTIONS = {
    400: "Bad request: a cursor this API did not issue, or a body it cannot read.",
    401: "No valid credentials (API key, or the webhook's signature).",
    403: "The API key's role, reviewer or markets do not allow this.",
    404: "Not found, or not visible to this API key.",
    408: "The request body did not arrive in time.",
    413: "The request body is larger than the limit.",
    415: "The body's Content-Type is not JSON.",
    422: "A parameter or the body is not valid; `errors` says which.",
    429: "Too many requests, or too many failed authentications; wait `Retry-After` seconds.",
    503: "The database is unavailable; nothing was changed; send again after `Retry-After`.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending again.",
        "schema": {"type": "integer"},
    }
}


def _calls(dependant: Dependant) -> list[Any]:
    """Every dependency callable of an operation, nested ones included."""
    found: list[Any] = []
    pending = list(dependant.dependencies)
    while pending:
        current = pending.pop()
        found.append(current.call)
        pending.extend(current.dependencies)
    return found


def error_statuses(route: RouteContext, operation: dict[str, Any]) -> set[int]:
    """The error statuses this operation can answer, from how it is built.

    Every request passes the body limits (413, 408); every one but the probes, the failed-
    authentication limit (429). An API key means 401 and the per-key limit (429), a role
    check 403, the database 503; parameters mean 422 (path ones also 404), a ``cursor`` 400
    (one the API did not issue), a body 400, 415 and 422. Statuses of the domain (a 409, a
    201 besides a 200) are declared by the route itself.
    """
    calls = _calls(route.dependant)
    parameters = operation.get("parameters", [])
    statuses = {408, 413}
    if route.path_format not in PROBE_PATHS:
        statuses.add(429)
    if get_principal in calls or any(
        getattr(call, "authenticates_api_key", False) for call in calls
    ):
        statuses |= {401, 503}
    if get_session in calls:
        statuses.add(503)
    if any(isinstance(call, RoleCheck) for call in calls):
        statuses.add(403)
    if parameters:
        statuses.add(422)
    if any(parameter["in"] == "path" for parameter in parameters):
        statuses.add(404)
    if any(parameter["name"] == "cursor" for parameter in parameters):
        statuses.add(400)
    if "requestBody" in operation:
        statuses |= {400, 413, 415, 422}
    return statuses


def _document_errors(app: FastAPI, schema: dict[str, Any]) -> None:
    # Included routers are wrapped; a route's context has its effective path and dependencies.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(route, operation)):
                responses.setdefault(str(status), {"description": STATUS_DESCRIPTIONS[status]})


def _problem_responses(schema: dict[str, Any]) -> None:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
                if status in ("429", "503"):
                    response.setdefault("headers", {}).update(_RETRY_AFTER)


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with a generator that applies the adjustments once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in EXTRA_MODELS:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(model_schema.pop("$defs", {}))
            schemas[model.__name__] = model_schema
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        _document_errors(app, schema)
        _problem_responses(schema)
        components["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "Plumbline API key"}
        }
        schema["security"] = [{"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _swagger_ui_assets() -> Path:
    """Swagger UI's files as shipped by the ``swagger-ui-py`` package (not imported: only
    its static directory is used)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI served from this process, so the page loads no third-party
    script (FastAPI's default fetches it from a CDN)."""
    assets = "/docs/assets"
    app.mount(assets, StaticFiles(directory=_swagger_ui_assets()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )
