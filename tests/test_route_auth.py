"""Every endpoint has an access check: without a key, each one answers 401.

The list of endpoints comes from the OpenAPI document, so an endpoint added later without a
role check fails here.
"""

from __future__ import annotations

import uuid

import httpx

# Open by design: probes, the schema itself, and the signed webhooks (HMAC, not API keys).
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/webhooks/decisions"),
    ("post", "/v1/webhooks/appeals"),
}


def _example(parameter: dict[str, object]) -> str:
    schema = parameter.get("schema", {})
    assert isinstance(schema, dict)
    if schema.get("type") == "integer":
        return "1"
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    return "x"


async def test_every_endpoint_refuses_a_missing_key(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if (method, path) in PUBLIC:
                continue
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", _example(parameter))
            response = await client.request(method.upper(), url, json={})
            assert response.status_code == 401, f"{method.upper()} {path}: {response.status_code}"
            checked += 1
    assert checked >= 40


async def test_public_endpoints_exist(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for method, path in PUBLIC:
        assert method in schema["paths"][path]
