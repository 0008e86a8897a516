"""The OpenAPI document, adjusted to what the API really does.

FastAPI documents validation errors as its own ``HTTPValidationError``; ours are RFC 9457
problems. The webhook reads its raw body (the signature covers the exact bytes), so its body
models are added to the components by hand.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

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


def _problem_responses(schema: dict[str, Any]) -> None:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}


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
        _problem_responses(schema)
        components["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "Plumbline API key"}
        }
        schema["security"] = [{"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
