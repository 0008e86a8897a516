"""No input gets a 5xx: NUL characters, ids past int64, dates and numbers at the extremes,
periods ending before they start, repeated parameters, bodies of another media type,
malformed ids and forged signature timestamps are refused with a 4xx naming the problem.

Where a rule holds for every operation, the operations come from the OpenAPI schema, so a new
endpoint is checked without being listed here.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Appeal, BackgroundJob, Reviewer
from tests.conftest import SignedSender, auth, decision_event
from tests.support.audits import auditor, claim, make_audits, verdict
from tests.support.calibrations import calibration_body
from tests.support.problems import assert_problem
from tests.support.quizzes import quiz_body

Sessionmaker = async_sessionmaker[AsyncSession]

NUL = "\u0000"
INT64_MAX = 2**63 - 1
WEBHOOKS = ("/v1/webhooks/decisions", "/v1/webhooks/appeals")


def locations(problem: dict[str, Any]) -> list[list[str | int]]:
    return [error["loc"] for error in problem.get("errors") or []]


async def openapi_operations(client: httpx.AsyncClient) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) the API documents."""
    schema = (await client.get("/openapi.json")).json()
    return [
        (method.upper(), path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


def query_parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}


def parameter_format(parameter: dict[str, Any]) -> str | None:
    schema = parameter["schema"]
    found: str | None = schema.get("format")
    for option in schema.get("anyOf", []):
        found = found or option.get("format")
    return found


def required_query(operation: dict[str, Any]) -> dict[str, str]:
    """Values for an operation's required query parameters (the first of an enum)."""
    values = {}
    for name, parameter in query_parameters(operation).items():
        if parameter.get("required"):
            enum = parameter["schema"].get("enum")
            values[name] = enum[0] if enum else "DE"
    return values


def fill_path(path: str, names: list[str], *, nul_in: str | None) -> str:
    """``path`` with its parameters filled in: ``a%00b`` for ``nul_in``, ``x`` for the others."""
    for name in names:
        path = path.replace("{" + name + "}", "a%00b" if name == nul_in else "x")
    return path


# --- NUL characters ---------------------------------------------------------------------

REVIEWER = {"display_name": "Rev", "markets": ["DE"], "languages": ["de"]}
TRAINING_PLAN = {
    "title": "Onboarding",
    "kind": "onboarding",
    "owners": ["lead-1"],
    "assignees": ["rev-1"],
    "items": [
        {
            "id": "read",
            "kind": "read_policy",
            "policy_code": "hate_speech",
            "due_at": "2026-12-01T00:00:00Z",
        }
    ],
}
CHANNEL = {
    "name": "ops",
    "kind": "webhook",
    "target": "http://127.0.0.1:9/hook",
    "language": "de",
    "events": ["source.rejected_batch"],
}

# (method, path, body, where the NUL is): each was a 500 (PostgreSQL refuses NUL in text).
NUL_CASES = [
    ("PUT", "/v1/reviewers/rev-1", {**REVIEWER, "display_name": f"a{NUL}b"}, ["display_name"]),
    ("PUT", "/v1/reviewers/rev%001", REVIEWER, ["path", "reviewer_id"]),
    ("GET", "/v1/reviewers/rev%001", None, ["path", "reviewer_id"]),
    ("POST", "/v1/calibrations", calibration_body(title=f"week{NUL}48"), ["title"]),
    (
        "POST",
        "/v1/calibrations",
        calibration_body(items=[{"content_id": f"v{NUL}1"}, {"content_id": "v2"}]),
        ["items", 0, "content_id"],
    ),
    ("POST", "/v1/quizzes", quiz_body(title=f"quiz{NUL}"), ["title"]),
    ("POST", "/v1/training-plans", {**TRAINING_PLAN, "title": f"plan{NUL}"}, ["title"]),
    ("POST", "/v1/api-keys", {"name": f"key{NUL}", "role": "manager"}, ["name"]),
    ("POST", "/v1/channels", {**CHANNEL, "name": f"ch{NUL}"}, ["name"]),
    ("GET", "/v1/decisions?moderator_id=a%00b", None, ["query", "moderator_id"]),
    ("GET", "/v1/audits?queue=q%00", None, ["query", "queue"]),
    ("GET", "/v1/decisions?mod%00=1", None, ["query", f"mod{NUL}"]),
]


@pytest.mark.parametrize(("method", "path", "body", "where"), NUL_CASES)
async def test_nul_anywhere_is_422_naming_the_field(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    where: list[str | int],
) -> None:
    response = await client.request(method, path, json=body, headers=auth(admin_key))
    problem = assert_problem(response, 422)
    assert where in locations(problem)
    assert "NUL" in problem["detail"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Reviewer)) == 0


async def test_nul_in_any_parameter_or_body_is_422_on_every_operation(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    """Each documented path and query parameter, and any string or key of any JSON body."""
    checked = {"path": 0, "query": 0, "body": 0}
    for method, path, operation in await openapi_operations(client):
        if path in WEBHOOKS:
            continue  # their own parsing: test_intake_refusals and the appeals case below
        parameters = operation.get("parameters", [])
        in_path = [p["name"] for p in parameters if p["in"] == "path"]
        url = {nul_in: fill_path(path, in_path, nul_in=nul_in) for nul_in in [None, *in_path]}

        for name in in_path:
            response = await client.request(method, url[name], headers=auth(admin_key))
            assert ["path", name] in locations(assert_problem(response, 422)), (method, path)
            checked["path"] += 1
        for name in query_parameters(operation):
            response = await client.request(
                method, url[None], params={name: f"a{NUL}b"}, headers=auth(admin_key)
            )
            assert ["query", name] in locations(assert_problem(response, 422)), (method, path)
            checked["query"] += 1
        if "requestBody" in operation:
            body = {"title": f"t{NUL}", "items": [{"ok": "fine", f"k{NUL}": 1}]}
            response = await client.request(method, url[None], json=body, headers=auth(admin_key))
            found = locations(assert_problem(response, 422))
            assert ["title"] in found, (method, path)
            assert ["items", 0, f"k{NUL}"] in found, (method, path)
            checked["body"] += 1
    assert checked["path"] >= 40, checked
    assert checked["query"] >= 60, checked
    assert checked["body"] >= 20, checked


@pytest.mark.parametrize("depth", [100, 900, 5000])
async def test_nul_deep_in_a_nested_body_is_never_a_5xx(
    client: httpx.AsyncClient, admin_key: str, depth: int
) -> None:
    body = b'{"name": ' + b"[" * depth + b'"\\u0000"' + b"]" * depth + b', "role": "admin"}'
    response = await client.post(
        "/v1/api-keys",
        content=body,
        headers={**auth(admin_key), "Content-Type": "application/json"},
    )
    if depth <= 100:
        assert locations(assert_problem(response, 422)) == [["name", *[0] * depth]]
    else:  # past what the JSON parser takes: 400 or, parsed, a 422; never a crash
        assert response.status_code in (400, 422), response.text


async def test_nul_in_a_verdict_comment_is_422_and_the_audit_stays_open(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    key = await auditor(sessionmaker)
    assert (await claim(client, key)).status_code == 200
    response = await verdict(client, key, audit_id, outcome="correct", comment=f"ok{NUL}")
    assert locations(assert_problem(response, 422)) == [["comment"]]
    # The claim is still held and takes a clean verdict.
    response = await verdict(client, key, audit_id, outcome="correct", comment="ok")
    assert response.status_code == 200, response.text


async def test_an_escaped_backslash_is_not_a_nul(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.put(
        "/v1/reviewers/rev-1",
        json={**REVIEWER, "display_name": "C:\\u0000"},
        headers=auth(admin_key),
    )
    assert response.status_code == 201, response.text
    assert response.json()["display_name"] == "C:\\u0000"


def appeal(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "ap-1",
        "content_id": "vid-1",
        "outcome": "reversed",
        "decided_at": "2026-11-24T10:00:00Z",
        **fields,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"event_id": f"ap{NUL}1"},
        {"content_id": f"vid{NUL}"},
        {"original_event_id": f"evt{NUL}"},
        {"decided_at": "0001-01-01T00:00:00+14:00"},
        {"decided_at": "9999-12-31T23:59:59-14:00"},
    ],
)
async def test_appeals_with_nul_or_dates_out_of_range_are_422(
    sender: SignedSender, sessionmaker: Sessionmaker, bad: dict[str, Any]
) -> None:
    body = orjson.dumps({"events": [appeal(event_id="ap-0"), appeal(**bad)]})
    response = await sender.client.post(
        "/v1/webhooks/appeals", content=body, headers=sender.headers(body)
    )
    problem = assert_problem(response, 422)
    assert problem["detail"].startswith("event 1")
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Appeal)) == 0


# --- ids beyond int64 -------------------------------------------------------------------


async def test_ids_beyond_int64_are_422(client: httpx.AsyncClient, admin_key: str) -> None:
    headers = auth(admin_key)
    response = await client.get(f"/v1/decisions/{INT64_MAX + 1}", headers=headers)
    assert ["path", "decision_id"] in locations(assert_problem(response, 422))
    # The largest bigint is a well-formed id of no decision.
    assert_problem(await client.get(f"/v1/decisions/{INT64_MAX}", headers=headers), 404)

    items = [{"content_id": "v1", "decision_id": INT64_MAX + 1}, {"content_id": "v2"}]
    response = await client.post(
        "/v1/calibrations", json=calibration_body(items=items), headers=headers
    )
    assert ["items", 0, "decision_id"] in locations(assert_problem(response, 422))

    response = await client.post(
        "/v1/golden-items",
        json={"decision_id": INT64_MAX + 1, "expected_action": "remove"},
        headers=headers,
    )
    assert ["decision_id"] in locations(assert_problem(response, 422))


# --- dates and numbers at the extremes --------------------------------------------------


async def test_dates_outside_the_window_are_422_on_every_query(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    """Every documented date or date-time query parameter refuses 0001-01-01 and 9999-12-31."""
    checked = []
    for method, path, operation in await openapi_operations(client):
        if method != "GET" or "{" in path:
            continue
        for name, parameter in query_parameters(operation).items():
            kind = parameter_format(parameter)
            if kind not in ("date", "date-time"):
                continue
            for extreme in ("0001-01-01", "9999-12-31"):
                value = extreme if kind == "date" else f"{extreme}T00:00:00Z"
                params = {**required_query(operation), name: value}
                response = await client.get(path, params=params, headers=auth(admin_key))
                problem = assert_problem(response, 422)
                assert ["query", name] in locations(problem), (path, name, problem)
            checked.append(f"{path}?{name}")
    # The ones the issue found, at least.
    assert {"/v1/auditor-quality?from", "/v1/decisions?to", "/v1/audits?from"} <= set(checked)


async def test_auditor_quality_over_the_whole_calendar_is_422(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.get(
        "/v1/auditor-quality?from=0001-01-01&to=9999-12-31", headers=auth(admin_key)
    )
    assert {"detail", "errors"} <= set(assert_problem(response, 422))
    inside = await client.get(
        "/v1/auditor-quality?from=1970-01-01&to=2999-12-31", headers=auth(admin_key)
    )
    assert inside.status_code == 200, inside.text


async def test_sampling_day_zero_is_422_and_no_job(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    for day in ("0001-01-01", "9999-12-31"):
        response = await client.post(
            "/v1/audits/sample", json={"day": day}, headers=auth(admin_key)
        )
        assert ["day"] in locations(assert_problem(response, 422))
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(BackgroundJob)) == 0


@pytest.mark.parametrize("margin", ["1e-300", "5e-324", "0.00009", "0", "-1", "nan", "inf"])
async def test_sample_size_margins_past_the_bound_are_422(
    client: httpx.AsyncClient, admin_key: str, margin: str
) -> None:
    response = await client.get(
        f"/v1/sampling/sample-size?expected_accuracy=0.5&margin={margin}", headers=auth(admin_key)
    )
    assert ["query", "margin"] in locations(assert_problem(response, 422))


async def test_the_smallest_margin_gives_a_finite_sample_size(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await client.get(
        "/v1/sampling/sample-size?expected_accuracy=0.5&margin=0.0001", headers=auth(admin_key)
    )
    assert response.status_code == 200, response.text
    assert 9e7 < response.json()["n"] < 1e8


# --- periods, repeated parameters -------------------------------------------------------


async def test_from_after_to_is_422_on_every_endpoint_taking_both(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    checked = []
    for method, path, operation in await openapi_operations(client):
        parameters = query_parameters(operation)
        if method != "GET" or not {"from", "to"} <= set(parameters):
            continue
        if parameter_format(parameters["from"]) == "date":
            period = {"from": "2026-02-01", "to": "2026-01-31"}
        else:
            period = {"from": "2026-02-01T00:00:00Z", "to": "2026-01-31T23:59:59Z"}
        params = {**required_query(operation), **period}
        response = await client.get(path, params=params, headers=auth(admin_key))
        problem = assert_problem(response, 422)
        assert "'from' must not be after 'to'" in problem["detail"], (path, problem)
        checked.append(path)
    assert len(checked) >= 7, checked


@pytest.mark.parametrize(
    "path",
    [
        "/v1/decisions?limit=1&limit=2",
        "/v1/audits?market=DE&market=AT",
        "/v1/sampling/sample-size?expected_accuracy=0.5&margin=0.1&margin=0.01",
        "/v1/reports/accuracy?group_by=market&group_by=queue",
    ],
)
async def test_a_repeated_single_valued_parameter_is_422(
    client: httpx.AsyncClient, admin_key: str, path: str
) -> None:
    repeated = path.rsplit("&", 1)[1].split("=")[0]
    response = await client.get(path, headers=auth(admin_key))
    assert locations(assert_problem(response, 422)) == [["query", repeated]]


# --- media types, malformed ids ---------------------------------------------------------


async def test_a_json_body_of_another_media_type_is_415_on_every_operation(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    checked = 0
    for method, path, operation in await openapi_operations(client):
        if "requestBody" not in operation or path in WEBHOOKS:
            continue
        url = path.replace("{", "").replace("}", "")  # any value: the media type comes first
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = auth(admin_key)
            if content_type:
                headers["Content-Type"] = content_type
            response = await client.request(method, url, content=b"{}", headers=headers)
            assert_problem(response, 415)
        checked += 1
    assert checked >= 20
    # JSON under its own types still goes through.
    for content_type in ("application/json", "application/json; charset=utf-8"):
        response = await client.post(
            "/v1/api-keys",
            content=orjson.dumps({"name": f"k {content_type}", "role": "manager"}),
            headers={**auth(admin_key), "Content-Type": content_type},
        )
        assert response.status_code == 201, response.text


async def test_malformed_uuids_in_paths_are_422_everywhere(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    assert_problem(await client.get("/v1/audits/not-a-uuid", headers=auth(admin_key)), 422)
    assert_problem(await client.get("/v1/jobs/not-a-uuid", headers=auth(admin_key)), 422)
    checked = 0
    for method, path, operation in await openapi_operations(client):
        uuids = [
            p["name"]
            for p in operation.get("parameters", [])
            if p["in"] == "path" and p["schema"].get("format") == "uuid"
        ]
        for name in uuids:
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    value = "not-a-uuid" if parameter["name"] == name else str(uuid.uuid4())
                    url = url.replace("{" + parameter["name"] + "}", value)
            response = await client.request(method, url, json={}, headers=auth(admin_key))
            if response.status_code == 403:
                continue  # not an admin's operation: the role is refused before the request
            assert ["path", name] in locations(assert_problem(response, 422)), (method, url)
            checked += 1
    assert checked >= 25, checked


# --- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_a_signature_timestamp_of_thousands_of_digits_is_401(
    sender: SignedSender, path: str
) -> None:
    body = orjson.dumps(decision_event(1))
    headers = {**sender.headers(body), "X-Plumbline-Signature": f"t={'9' * 5000},v1={'a' * 64}"}
    response = await sender.client.post(path, content=body, headers=headers)
    assert_problem(response, 401)
