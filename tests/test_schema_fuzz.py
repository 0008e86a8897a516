"""Schema-driven fuzzing: every operation of the OpenAPI document, called with generated
requests (valid and invalid) by a key of each role allowed to call it, against the real API
over real HTTP.

What must hold for every response: no 5xx, its status is documented for the operation, its
content type is the documented one, its body matches the documented schema, and it carries
an ``X-Request-ID``. Signed webhooks get a valid signature over the generated body, so their
validation is fuzzed too.

Bounded and reproducible: ``PLUMBLINE_FUZZ_EXAMPLES`` examples per operation (default 15),
derandomized (the same requests every run), no shrinking and no example database. Failures
are collected (one per operation and check) and reported together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.auth import ALL_ROLES, Role
from shared.core.settings import Settings
from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER, sign_payload
from shared.models import Decision
from tests.conftest import LiveServer, SignedSender, auth, decision_event, make_key
from tests.support.audits import claim, make_audits, set_profile, verdict
from tests.support.calibrations import create_calibration
from tests.support.quizzes import create_quiz, hours_from_now
from tests.support.routes import Operation, operations
from tests.support.sampling import create_sampling_plan
from tests.support.webhooks import create_channel

EXAMPLES_PER_OPERATION = int(os.environ.get("PLUMBLINE_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SIGNED = {"/v1/webhooks/decisions", "/v1/webhooks/appeals"}

# Checks that still fail for reasons another part of issue 7 owns, by operation and check
# name; each is reported as an expected failure with its reason instead of failing the run.
KNOWN: dict[tuple[str, str], str] = {}


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


def cases(
    operation: Any, known: dict[str, Any] | None
) -> st.SearchStrategy[schemathesis.Case[Any]]:
    """Valid requests and, where the schema allows them, invalid ones; with ``known`` path
    parameters, also valid requests about objects that exist (so reads find something and
    their bodies are checked too)."""
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    if known:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    # Nothing to make invalid (no parameters, no body) raises: valid requests only then.
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


@dataclass(frozen=True)
class World:
    """What the fuzzer calls with: a key per role, the webhook source's secret, and the path
    parameters naming seeded objects, by path template."""

    keys: dict[Role, str]
    secret: str
    known: dict[str, dict[str, Any]]


def fuzz_operation(
    client: httpx.Client, schema: Any, operation: Operation, world: World, findings: Findings
) -> None:
    """Run ``EXAMPLES_PER_OPERATION`` generated requests against one operation."""
    api_operation = schema[operation.path][operation.method]
    keys, secret = world.keys, world.secret
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
    @given(case=cases(api_operation, world.known.get(operation.path)), role=st.sampled_from(roles))
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
    world: World,
) -> Findings:
    """Fuzz every operation in ``targets`` (blocking; run it off the server's event loop)."""
    schema = schemathesis.openapi.from_dict(document)
    findings = Findings()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for operation in targets:
            fuzz_operation(client, schema, operation, world, findings)
    return findings


async def seed_objects(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    admin_key: str,
    keys: dict[Role, str],
    sender: SignedSender,
) -> dict[str, dict[str, Any]]:
    """One or two objects of every kind, seen by the role-bound keys too (the moderator's
    decisions, the auditor's verdicts); the path parameters naming them, by path template."""
    admin = auth(admin_key)
    moderator, auditor = f"fuzz-{Role.MODERATOR}", f"fuzz-{Role.QA_AUDITOR}"
    events = [decision_event(n, moderator_id=moderator) for n in (1, 2, 3, 4)]
    audit_ids = await make_audits(sender, sessionmaker, events[:3])
    assert (await sender.post(events[3])).status_code == 202  # not audited: a golden item
    await set_profile(sessionmaker, auditor, ["DE"], ["de"])
    # The first verdict opens a disagreement; the third audit stays pending.
    incorrect = {"outcome": "incorrect", "expected_action": "approve", "severity": "major"}
    for outcome in (incorrect, {"outcome": "correct"}):
        claimed = await claim(client, keys[Role.QA_AUDITOR])
        assert claimed.status_code == 200, claimed.text
        judged = await verdict(client, keys[Role.QA_AUDITOR], claimed.json()["id"], **outcome)
        assert judged.status_code == 200, judged.text
    async with sessionmaker() as session:
        decision_ids = list(await session.scalars(select(Decision.id).order_by(Decision.id)))
    disagreements = await client.get("/v1/disagreements", headers=admin)
    assert disagreements.status_code == 200, disagreements.text
    source = (await client.get("/v1/sources", headers=admin)).json()["items"][0]
    victim = await client.post(
        "/v1/api-keys", json={"name": "fuzz victim", "role": "manager"}, headers=admin
    )
    assert victim.status_code == 201, victim.text
    sampled = await client.post("/v1/audits/sample", json={"day": "2026-11-24"}, headers=admin)
    assert sampled.status_code == 202, sampled.text
    golden = await client.post(
        "/v1/golden-items",
        json={"decision_id": decision_ids[-1], "expected_outcome": "correct"},
        headers=admin,
    )
    assert golden.status_code == 201, golden.text
    training = await client.post(
        "/v1/training-plans",
        json={
            "title": "Fuzz onboarding",
            "kind": "onboarding",
            "owners": [auditor],
            "assignees": [moderator],
            "items": [
                {
                    "id": "read",
                    "kind": "read_policy",
                    "policy_code": "hate_speech",
                    "due_at": hours_from_now(24),
                }
            ],
        },
        headers=admin,
    )
    assert training.status_code == 201, training.text
    quiz = await create_quiz(client, admin_key, assignee_reviewer_ids=[moderator])
    calibration = await create_calibration(client, admin_key, participants=[moderator, auditor])
    channel = await create_channel(client, admin_key, "http://127.0.0.1:9/fuzz", secret=None)
    plan = await create_sampling_plan(client, admin_key)
    training_id = training.json()["id"]
    return {
        "/v1/api-keys/{key_id}": {"key_id": victim.json()["id"]},
        **{
            path: {"source_id": source["id"]}
            for path in (
                "/v1/sources/{source_id}",
                "/v1/sources/{source_id}/rejected-batches",
                "/v1/sources/{source_id}/rotate-secret",
                "/v1/sources/{source_id}/correction-target",
            )
        },
        "/v1/decisions/{decision_id}": {"decision_id": decision_ids[0]},
        "/v1/channels/{channel_id}": {"channel_id": channel},
        **{
            path: {"disagreement_id": disagreements.json()["items"][0]["id"]}
            for path in (
                "/v1/disagreements/{disagreement_id}",
                "/v1/disagreements/{disagreement_id}/dispute",
                "/v1/disagreements/{disagreement_id}/resolve",
            )
        },
        "/v1/audits/{audit_id}": {"audit_id": str(audit_ids[0])},
        "/v1/audits/{audit_id}/verdict": {"audit_id": str(audit_ids[2])},
        "/v1/wellbeing/caps/{policy_code}": {"policy_code": "hate_speech"},
        "/v1/sampling-plans/{plan_id}": {"plan_id": plan["id"]},
        "/v1/training-plans/{plan_id}": {"plan_id": training_id},
        "/v1/training-plans/{plan_id}/progress": {"plan_id": training_id},
        "/v1/training-plans/{plan_id}/items/{item_id}/complete": {
            "plan_id": training_id,
            "item_id": "read",
        },
        "/v1/jobs/{job_id}": {"job_id": sampled.json()["job_id"]},
        "/v1/reviewers/{reviewer_id}": {"reviewer_id": auditor},
        **{
            path: {"quiz_id": quiz["id"]}
            for path in (
                "/v1/quizzes/{quiz_id}",
                "/v1/quizzes/{quiz_id}/attempts",
                "/v1/quizzes/{quiz_id}/retakes",
                "/v1/quizzes/{quiz_id}/scores",
                "/v1/quizzes/{quiz_id}/failures/assign-plan",
            )
        },
        **{
            path: {"calibration_id": calibration["id"]}
            for path in (
                "/v1/calibrations/{calibration_id}",
                "/v1/calibrations/{calibration_id}/labels",
                "/v1/calibrations/{calibration_id}/close",
                "/v1/calibrations/{calibration_id}/results",
                "/v1/golden-items/from-calibration/{calibration_id}",
            )
        },
        "/v1/calibrations/{calibration_id}/items/{content_id}/note": {
            "calibration_id": calibration["id"],
            "content_id": "v1",
        },
        "/v1/golden-items/{golden_item_id}": {"golden_item_id": golden.json()["id"]},
    }


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
        sender = SignedSender(client, "fuzz", secret)
        known = await seed_objects(client, sessionmaker, admin_key, keys, sender)
    targets = operations(fuzz_server.app)
    assert len(targets) >= 70
    # Every seeded path is one the API has (a renamed path would silently lose its objects).
    assert set(known) <= {operation.path for operation in targets}

    world = World(keys=keys, secret=secret, known=known)
    findings = await asyncio.to_thread(fuzz_all, fuzz_server.url, document, targets, world)

    assert findings.requests >= len(targets)
    unexpected = {key: message for key, message in findings.failures.items() if key not in KNOWN}
    report = "\n\n".join(
        f"{op} [{check}]\n{message}" for (op, check), message in unexpected.items()
    )
    assert not unexpected, f"{len(unexpected)} failing checks:\n\n{report}"
    still_known = [KNOWN[key] for key in findings.failures if key in KNOWN]
    if still_known:
        pytest.xfail("; ".join(sorted(set(still_known))))
