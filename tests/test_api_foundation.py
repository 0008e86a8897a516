"""API conventions: keys and roles, problem details, health, request ids, paging, rotation."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.worker import WorkerSettings
from shared.api_keys.service import ensure_bootstrap_admin_key
from shared.core.auth import token_digest
from shared.core.observability import request_id_var
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.models import ApiKey, OutboxJob
from tests.conftest import (
    SignedSender,
    auth,
    decision_event,
    make_key,
    relay_all,
    run_worker_burst,
    wait_for_outbox,
)
from tests.support.problems import assert_problem


async def test_api_key_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "lead", "role": "manager", "markets": ["de", "AT"]},
        headers=auth(admin_key),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["role"] == "manager"
    assert created["markets"] == ["AT", "DE"]
    key = created["key"]
    async with sessionmaker() as session:
        stored = await session.get(ApiKey, uuid.UUID(created["id"]))
    assert stored is not None
    assert stored.key_hash == token_digest(key)
    assert key.encode() not in stored.key_hash

    listed = await client.get("/v1/api-keys", headers=auth(admin_key))
    assert key not in listed.text
    assert created["id"] in listed.text

    me = await client.get("/v1/decisions", headers=auth(key))
    assert me.status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{created['id']}", headers=auth(admin_key))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    assert_problem(await client.get("/v1/decisions", headers=auth(key)), 401)


async def test_moderator_key_needs_a_reviewer(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.post(
        "/v1/api-keys", json={"name": "m", "role": "moderator"}, headers=auth(admin_key)
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/api-keys"),
        ("GET", "/v1/api-keys"),
        ("POST", "/v1/sources"),
        ("GET", "/v1/sources"),
        ("GET", "/v1/decisions"),
        ("GET", "/v1/intake-rollups"),
    ],
)
async def test_missing_or_bad_key_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_problem(await client.request(method, path), 401)
    bad = await client.request(method, path, headers=auth("plk_not-a-key"))
    assert_problem(bad, 401)
    assert bad.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("manager", "POST", "/v1/api-keys", False),
        ("qa_auditor", "GET", "/v1/api-keys", False),
        ("manager", "POST", "/v1/sources", False),
        ("policy_poc", "GET", "/v1/sources", False),
        ("qa_auditor", "GET", "/v1/decisions", False),
        ("manager", "GET", "/v1/decisions", True),
        ("policy_poc", "GET", "/v1/decisions", True),
        ("moderator", "GET", "/v1/intake-rollups", False),
        ("qa_auditor", "GET", "/v1/intake-rollups", False),
        ("manager", "GET", "/v1/intake-rollups", True),
    ],
)
async def test_role_matrix(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    method: str,
    path: str,
    allowed: bool,
) -> None:
    extra = {"reviewer_id": "mod-1"} if role == "moderator" else {}
    key = await make_key(sessionmaker, role, **extra)
    response = await client.request(
        method, path, headers=auth(key), json={"name": "x", "role": "admin"}
    )
    if allowed:
        assert response.status_code < 400, response.text
    else:
        assert_problem(response, 403)


async def test_moderator_sees_only_own_decisions(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await sender.post(
        {
            "events": [
                decision_event(1, moderator_id="mod-1"),
                decision_event(2, moderator_id="mod-2"),
            ]
        }
    )
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-1")
    own = await client.get("/v1/decisions", headers=auth(key))
    assert [item["moderator_id"] for item in own.json()["items"]] == ["mod-1"]
    other = await client.get("/v1/decisions?moderator_id=mod-2", headers=auth(key))
    assert_problem(other, 403)


async def test_market_scoped_key_sees_only_its_markets(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await sender.post({"events": [decision_event(1, market="DE"), decision_event(2, market="AT")]})
    key = await make_key(sessionmaker, "manager", markets=["AT"])
    items = (await client.get("/v1/decisions", headers=auth(key))).json()["items"]
    assert [item["market"] for item in items] == ["AT"]


async def test_pagination_and_filters(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    events = [
        decision_event(
            n,
            market="DE" if n % 2 else "AT",
            queue="q-odd" if n % 2 else "q-even",
            policy_labels=["spam"] if n % 3 == 0 else ["hate_speech"],
            decided_at=f"2026-11-2{n % 5}T10:00:00Z",
        )
        for n in range(25)
    ]
    await sender.post({"events": events})
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/decisions", params=params, headers=auth(admin_key))).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 25
    assert len(set(seen)) == 25
    assert seen == sorted(seen, reverse=True)

    async def ids(**params: str) -> set[str]:
        response = await client.get("/v1/decisions", params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        return {item["event_id"] for item in response.json()["items"]}

    expected_de = {f"evt-{n}" for n in range(25) if n % 2}
    assert await ids(market="DE") == expected_de
    assert await ids(queue="q-even") == {f"evt-{n}" for n in range(25) if n % 2 == 0}
    assert await ids(policy_label="spam") == {f"evt-{n}" for n in range(25) if n % 3 == 0}
    assert await ids(moderator_id="mod-42") == {f"evt-{n}" for n in range(25)}
    window = await ids(**{"from": "2026-11-21T00:00:00Z", "to": "2026-11-23T00:00:00Z"})
    assert window == {f"evt-{n}" for n in range(25) if n % 5 in (1, 2)}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "from=yesterday",
        "from=2026-11-24T10:00:00",  # no time zone
        "market=Germany",
        "colour=blue",  # unknown parameter
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, admin_key: str, query: str
) -> None:
    body = assert_problem(await client.get(f"/v1/decisions?{query}", headers=auth(admin_key)), 422)
    assert body["errors"]


async def test_forged_cursor_is_400(client: httpx.AsyncClient, admin_key: str) -> None:
    assert_problem(await client.get("/v1/decisions?cursor=bm9wZQ", headers=auth(admin_key)), 400)


async def test_framework_errors_are_problems(client: httpx.AsyncClient, admin_key: str) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404)
    assert_problem(await client.delete("/v1/decisions", headers=auth(admin_key)), 405)
    assert_problem(await client.get("/v1/decisions/999999", headers=auth(admin_key)), 404)
    # Malformed JSON (sent as JSON: without a content type it is a 415).
    json_headers = {**auth(admin_key), "Content-Type": "application/json"}
    assert_problem(await client.post("/v1/sources", content=b"{", headers=json_headers), 422)


async def test_health_ready_and_metrics(client: httpx.AsyncClient, sender: SignedSender) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text

    async def accepted_total() -> float:
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        [line] = [
            line
            for line in metrics.text.splitlines()
            if line.startswith("plumbline_decisions_accepted_total ")
        ]
        return float(line.split()[1])

    before = await accepted_total()
    await sender.post({"events": [decision_event(1), decision_event(2)]})
    assert await accepted_total() == before + 2
    metrics = await client.get("/metrics")
    assert 'route="/v1/webhooks/decisions"' in metrics.text


async def test_request_id_follows_the_request_into_its_job(
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: ArqRedis,
    settings: Settings,
) -> None:
    body = orjson.dumps({"events": [decision_event(1)]})
    headers = sender.headers(body) | {"X-Request-ID": "req-trace-1"}
    response = await sender.client.post("/v1/webhooks/decisions", content=body, headers=headers)
    assert response.headers["x-request-id"] == "req-trace-1"
    await wait_for_outbox(sessionmaker)
    async with sessionmaker() as session:
        assert list(await session.scalars(select(OutboxJob.request_id))) == ["req-trace-1"]

    seen: list[str | None] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(request_id_var.get())

    logger = logging.getLogger("services.report_worker.intake_rollups")
    handler = Capture()
    logger.addHandler(handler)
    try:
        await relay_all(sessionmaker, queue)
        await run_worker_burst(WorkerSettings, settings)
    finally:
        logger.removeHandler(handler)
    assert seen == ["req-trace-1"]


async def test_bootstrap_admin_key_is_idempotent(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(2):
        async with sessionmaker() as session, session.begin():
            await ensure_bootstrap_admin_key(session, key="bootstrap-secret-value")
    async with sessionmaker() as session:
        keys = list(await session.scalars(select(ApiKey)))
    assert len(keys) == 1
    assert keys[0].role == "admin"
    response = await client.get("/v1/sources", headers=auth("bootstrap-secret-value"))
    assert response.status_code == 200


async def test_source_secret_rotation_with_grace(
    client: httpx.AsyncClient, admin_key: str, sender: SignedSender
) -> None:
    sources = (await client.get("/v1/sources", headers=auth(admin_key))).json()["items"]
    assert "secret" not in sources[0]
    source_id = sources[0]["id"]
    old_secret = sender.secret

    rotated = await client.post(
        f"/v1/sources/{source_id}/rotate-secret",
        json={"grace_period_seconds": 3600},
        headers=auth(admin_key),
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    new_sender = SignedSender(client, "acme", new_secret)
    assert (await new_sender.post(decision_event(1))).status_code == 202
    assert (await sender.post(decision_event(2))).status_code == 202  # still in grace

    # Without grace, the old secret stops working at once.
    await client.post(
        f"/v1/sources/{source_id}/rotate-secret",
        json={"grace_period_seconds": 0},
        headers=auth(admin_key),
    )
    assert_problem(await new_sender.post(decision_event(3)), 401)


async def test_duplicate_source_name_is_409(client: httpx.AsyncClient, admin_key: str) -> None:
    first = await client.post("/v1/sources", json={"name": "dup"}, headers=auth(admin_key))
    assert first.status_code == 201
    again = await client.post("/v1/sources", json={"name": "dup"}, headers=auth(admin_key))
    assert_problem(again, 409)


async def test_grace_period_expires(
    client: httpx.AsyncClient, admin_key: str, sender: SignedSender
) -> None:
    [source] = (await client.get("/v1/sources", headers=auth(admin_key))).json()["items"]
    await client.post(
        f"/v1/sources/{source['id']}/rotate-secret",
        json={"grace_period_seconds": 1},
        headers=auth(admin_key),
    )
    await asyncio.sleep(1.3)
    assert_problem(await sender.post(decision_event(1)), 401)


async def test_openapi_document_is_valid_and_speaks_problems(client: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    schema = (await client.get("/openapi.json")).json()
    validate(schema)
    assert "HTTPValidationError" not in str(schema)
    webhook = schema["paths"]["/v1/webhooks/decisions"]["post"]
    body_schemas = webhook["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {"$ref": "#/components/schemas/DecisionEvent"} in body_schemas
    assert "DecisionEvent" in schema["components"]["schemas"]
    assert webhook["responses"]["422"]["content"]["application/problem+json"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    prefix = "#/components/schemas/"
    missing = {
        r for r in refs(schema) if r.removeprefix(prefix) not in schema["components"]["schemas"]
    }
    assert missing == set()


async def test_rejected_batches_are_kept_for_the_source(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    await sender.post({"events": [decision_event(1), decision_event(2, action="nuke")]})
    await sender.post({"events": []})
    [source] = (await client.get("/v1/sources", headers=auth(admin_key))).json()["items"]
    response = await client.get(
        f"/v1/sources/{source['id']}/rejected-batches?limit=1", headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    first = response.json()
    assert [item["status"] for item in first["items"]] == [422]
    assert "1 to 1000" in first["items"][0]["reason"]
    second = await client.get(
        f"/v1/sources/{source['id']}/rejected-batches",
        params={"cursor": first["next_cursor"]},
        headers=auth(admin_key),
    )
    [older] = second.json()["items"]
    assert older["reason"].startswith("event 1 is invalid")
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/deliveries",
        "/v1/audit-log",
        "/v1/sampling-plans",
        "/v1/sampling-runs",
        "/v1/disagreements",
        "/v1/quizzes",
        "/v1/training-plans",
        "/v1/golden-items",
        "/v1/calibrations",
        "/v1/sources/{source_id}/rejected-batches",
    ],
)
async def test_time_cursors_we_did_not_make_are_400(
    client: httpx.AsyncClient, admin_key: str, sender: SignedSender, path: str
) -> None:
    # Well-formed cursors (a time and an id, as the lists write them) whose values are not a
    # time and an id. tests/test_pagination.py forges many more against every list.
    [source] = (await client.get("/v1/sources", headers=auth(admin_key))).json()["items"]
    url = path.format(source_id=source["id"])
    for position in (["yesterday", "1"], ["2026-11-24", "x"]):
        cursor = base64.urlsafe_b64encode(orjson.dumps(position)).decode()
        response = await client.get(url, params={"cursor": cursor}, headers=auth(admin_key))
        assert_problem(response, 400)
