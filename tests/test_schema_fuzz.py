"""Schema-driven fuzzing: every operation of the OpenAPI document, called with generated
requests (valid and invalid) by a key of each role allowed to call it, against the real API
over real HTTP.

What must hold for every response: no 5xx, its status is documented for the operation, its
content type is the documented one, its body matches the documented schema, and it carries
an ``X-Request-ID``. Signed webhooks get a valid signature over the generated body, so their
validation is fuzzed too.

Bounded and reproducible: ``PLUMBLINE_FUZZ_EXAMPLES`` examples per operation (default 8),
derandomized (the same requests every run), no shrinking and no example database. Failures
are collected (one per operation and check) and reported together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.auth import ALL_ROLES, Role
from shared.core.settings import Settings
from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER, sign_payload
from tests.conftest import LiveServer, auth, make_key
from tests.support.routes import Operation, operations

EXAMPLES_PER_OPERATION = int(os.environ.get("PLUMBLINE_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SIGNED = {"/v1/webhooks/decisions", "/v1/webhooks/appeals"}

# Checks that still fail for reasons another part of issue 7 owns, by operation and check
# name; each is reported as an expected failure with its reason instead of failing the run.
KNOWN: dict[tuple[str, str], str] = {
    ("PUT /v1/reviewers/{reviewer_id}", "UndefinedStatusCode"): (
        "PUT /v1/reviewers/{id} answers 201 when it creates the profile; the OpenAPI document "
        "lists 200 only (issue 7, section 1: the schema documents every status)"
    ),
}


@dataclass
class Findings:
    """What the fuzzer found: the first failure per (operation, check)."""

    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def record(self, operation: str, found: Failure | FailureGroup) -> None:
        """Keep the first failure of each check on ``operation``, with a way to reproduce it."""
        for failure in found.exceptions if isinstance(found, FailureGroup) else [found]:
            check = type(failure).__name__
            self.failures.setdefault((operation, check), str(found)[:2000])


@pytest.fixture
async def fuzz_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """Its own API, without the per-client limits: the fuzzer is one client sending
    thousands of requests, many of them refused, which is not what those limits are about."""
    unlimited = settings.model_copy(
        update={
            "auth_failures_per_client": 0,
            "signature_failures_per_source": 0,
            "requests_per_key": 0,
        }
    )
    previous = LiveServer.running
    server = LiveServer(unlimited)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        LiveServer.running = previous


def request_for(case: schemathesis.Case[Any], headers: dict[str, str]) -> dict[str, Any]:
    """httpx arguments for ``case``: its path, query, headers and JSON body."""
    arguments: dict[str, Any] = {
        "method": case.method.upper(),
        "url": case.formatted_path,
        "params": case.query or None,
        "headers": {**{k: str(v) for k, v in (case.headers or {}).items()}, **headers},
    }
    if case.body is not NOT_SET:
        arguments["content"] = (
            case.body
            if isinstance(case.body, bytes)
            # json, not orjson: generated bodies hold integers past 64 bits.
            else json.dumps(case.body, default=str).encode()
        )
        arguments["headers"]["Content-Type"] = case.media_type or "application/json"
    return arguments


def cases(operation: Any) -> st.SearchStrategy[schemathesis.Case[Any]]:
    """Valid requests and, where the schema allows them, invalid ones."""
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    # Nothing to make invalid (no parameters, no body) raises: valid requests only then.
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


def fuzz_operation(
    client: httpx.Client,
    schema: Any,
    operation: Operation,
    keys: dict[Role, str],
    secret: str,
    findings: Findings,
) -> None:
    """Run ``EXAMPLES_PER_OPERATION`` generated requests against one operation."""
    api_operation = schema[operation.path][operation.method]
    roles = sorted(operation.roles) if operation.roles else [None]
    name = str(operation)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(api_operation), role=st.sampled_from(roles))
    def run(case: schemathesis.Case[Any], role: Role | None) -> None:
        headers = auth(keys[role]) if role is not None else {}
        arguments = request_for(case, headers)
        if operation.path in SIGNED:
            body = arguments.get("content", b"")
            arguments["headers"][SOURCE_HEADER] = "fuzz"
            arguments["headers"][SIGNATURE_HEADER] = sign_payload(secret, body, int(time.time()))
        try:
            response = client.request(**arguments)
        except httpx.LocalProtocolError:
            return  # a header no HTTP client can send (a control character, say): not a request
        findings.requests += 1
        findings.statuses[response.status_code] = findings.statuses.get(response.status_code, 0) + 1
        if "x-request-id" not in response.headers:
            # Every answer, errors included, names its request (issue 7, section 1).
            findings.failures.setdefault(
                (name, "MissingRequestId"), f"{response.status_code} without X-Request-ID"
            )
        try:
            case.validate_response(response, checks=CHECKS, headers=arguments["headers"])
        except FailureGroup as group:
            findings.record(name, group)
        except Failure as failure:
            findings.record(name, failure)

    run()


def fuzz_all(
    base_url: str,
    document: dict[str, Any],
    targets: list[Operation],
    keys: dict[Role, str],
    secret: str,
    progress: Callable[[str], None],
) -> Findings:
    """Fuzz every operation in ``targets`` (blocking; run it off the server's event loop)."""
    schema = schemathesis.openapi.from_dict(document)
    findings = Findings()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for operation in targets:
            progress(str(operation))
            fuzz_operation(client, schema, operation, keys, secret, findings)
    return findings


async def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    fuzz_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession], admin_key: str
) -> None:
    keys = {
        role: await make_key(sessionmaker, role, reviewer_id=f"fuzz-{role}") for role in ALL_ROLES
    }
    async with httpx.AsyncClient(base_url=fuzz_server.url) as client:
        document = (await client.get("/openapi.json")).json()
        created = await client.post("/v1/sources", json={"name": "fuzz"}, headers=auth(admin_key))
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
    targets = operations(fuzz_server.app)
    assert len(targets) >= 70

    findings = await asyncio.to_thread(
        fuzz_all, fuzz_server.url, document, targets, keys, secret, lambda _: None
    )

    assert findings.requests >= len(targets)
    unexpected = {key: message for key, message in findings.failures.items() if key not in KNOWN}
    report = "\n\n".join(
        f"{op} [{check}]\n{message}" for (op, check), message in unexpected.items()
    )
    assert not unexpected, f"{len(unexpected)} failing checks:\n\n{report}"
    still_known = [KNOWN[key] for key in findings.failures if key in KNOWN]
    if still_known:
        pytest.xfail("; ".join(sorted(set(still_known))))
