"""Keyset pagination: the one helper every list endpoint pages through, and cursors we did not
make, forged against every list endpoint the OpenAPI schema declares."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.errors import BadRequest
from shared.core.pagination import MAX_CURSOR_LENGTH, Keyset
from shared.models import ALL_POLICIES, AuditLogEntry, QualityRollup, SamplingPlan
from tests.conftest import LiveServer, SignedSender, auth, decision_event
from tests.support.audits import make_audits
from tests.support.problems import assert_problem

Sessionmaker = async_sessionmaker[AsyncSession]


def forge(position: object) -> str:
    """A cursor as a client could build one: URL-safe base64 of any JSON."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def forge_json(text: str) -> str:
    """A cursor of any text, JSON or not."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _in_hours(hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


# --- the helper itself ---------------------------------------------------------------------

_metadata = MetaData()
ROWS = Table(
    "rows",
    _metadata,
    Column("id", BigInteger, primary_key=True),
    Column("small", Integer),
    Column("name", String(128)),
    Column("ref", Uuid),
    Column("at", DateTime(timezone=True)),
    Column("day", Date),
    Column("score", Float),
    Column("data", JSON),
)


URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class Row:
    at: datetime
    id: int


@dataclass
class Request:
    limit: int
    cursor: str | None = None


def _sql(statement: Any) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(statement.compile(dialect=dialect)).replace("\n", " ")


def _refused(keyset: Keyset, cursor: str) -> bool:
    try:
        keyset.decode(cursor)
    except BadRequest:
        return True
    return False


@pytest.mark.no_db
def test_a_cursor_holds_each_key_type_exactly() -> None:
    c = ROWS.c
    keyset = Keyset(c.at, c.day, c.ref, c.name, c.id)
    ref = uuid.uuid4()
    at = datetime(2026, 11, 29, 23, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    name = 'Müller 🙂 \\" ,]'
    for big in (2**63 - 1, -(2**63)):
        cursor = keyset.encode([at, date(2026, 11, 29), ref, name, big])
        assert set(cursor) <= set(URL_SAFE)
        decoded = keyset.decode(cursor)
        assert decoded == (at, date(2026, 11, 29), ref, name, big)
        # The same instant, in UTC: what PostgreSQL compares.
        assert isinstance(decoded[0], datetime)
        assert decoded[0].utcoffset() == timedelta(0)


@pytest.mark.no_db
def test_cursors_we_did_not_make_are_refused_per_column_type() -> None:
    c = ROWS.c
    cases: list[tuple[Keyset, list[object]]] = [
        (Keyset(c.id), [2**63, -(2**63) - 1, 1.0, True, "1", None, [1], {"a": 1}]),
        (Keyset(c.small), [2**31, -(2**31) - 1, False]),
        (Keyset(c.name), [1, None, True, ["a"], {"a": "b"}, "a\u0000b", "\u0000"]),
        (Keyset(c.ref), [1, "x", "", str(uuid.uuid4()) + "0", None, "\u0000"]),
        (
            Keyset(c.at),
            [
                "9999-12-31T23:59:59-14:00",
                "0001-01-01T00:00:00+14:00",
                "2026-11-29T10:00:00",  # no offset: which instant?
                "2026-11-29",
                "2026-02-30T00:00:00+00:00",
                "yesterday",
                1764403200,
                None,
            ],
        ),
        (Keyset(c.day), ["2026-11-29T10:00:00+00:00", "2026-13-01", "10000-01-01", 20261129]),
    ]
    for keyset, values in cases:
        for value in values:
            assert _refused(keyset, forge([value])), (keyset.columns[0].name, value)
    keyset = Keyset(c.at, c.id)
    valid = keyset.encode([datetime(2026, 11, 29, tzinfo=UTC), 7])
    assert keyset.decode(valid) == (datetime(2026, 11, 29, tzinfo=UTC), 7)
    for cursor in (
        forge(["2026-11-29T00:00:00+00:00"]),  # too short
        forge(["2026-11-29T00:00:00+00:00", 7, 7]),  # too long
        forge({"at": "2026-11-29T00:00:00+00:00", "id": 7}),
        forge(None),
        valid + "!",
        valid[:-1] + "=" * 5,
        "é" + valid,
        valid.replace("-", "+").replace("_", "/") if ("-" in valid or "_" in valid) else "+/",
        "A" * (MAX_CURSOR_LENGTH + 1),
        "",
    ):
        assert _refused(keyset, cursor), cursor


@pytest.mark.no_db
def test_a_row_whose_key_is_not_its_declared_type_is_a_bug_not_a_cursor() -> None:
    c = ROWS.c
    with pytest.raises(TypeError):
        Keyset(c.at, c.id).encode([datetime(2026, 11, 29), 1])  # naive time in a tz column
    with pytest.raises(TypeError):
        Keyset(c.id).encode(["1"])
    with pytest.raises(TypeError):
        Keyset(c.day).encode([datetime(2026, 11, 29, tzinfo=UTC)])
    with pytest.raises(TypeError):
        Keyset(c.id).encode([1, 2])
    for unsupported in (c.score, c.data, func.count(), (c.id + 1)):
        with pytest.raises(TypeError):
            Keyset(unsupported)
    with pytest.raises(TypeError):
        Keyset()


@pytest.mark.no_db
def test_apply_orders_filters_and_fetches_one_more_than_the_page() -> None:
    c = ROWS.c
    ascending = Keyset(c.at, c.id)
    first = _sql(ascending.apply(select(c.id), Request(limit=10)))
    assert "WHERE" not in first
    assert "ORDER BY rows.at ASC, rows.id ASC" in first
    assert first.endswith("LIMIT %(param_1)s::INTEGER")
    cursor = ascending.encode([datetime(2026, 11, 29, tzinfo=UTC), 3])
    statement = ascending.apply(select(c.id).where(c.name == "x"), Request(10, cursor))
    after = _sql(statement)
    assert "WHERE rows.name = %(name_1)s::VARCHAR AND (rows.at, rows.id) > (" in after
    assert statement.compile().params["param_3"] == 11  # limit + 1
    descending = _sql(
        Keyset(c.day, c.ref, descending=True).apply(
            select(c.id), Request(5, Keyset(c.day, c.ref).encode([date(2026, 1, 1), uuid.uuid4()]))
        )
    )
    assert "(rows.day, rows.ref) < (" in descending
    assert "ORDER BY rows.day DESC, rows.ref DESC" in descending
    single = _sql(Keyset(c.name).apply(select(c.id), Request(5, Keyset(c.name).encode(["m"]))))
    assert "WHERE rows.name > %(param_1)s::VARCHAR" in single
    # A computed key, labelled, pages like a column.
    lowered = func.lower(c.name, type_=String).label("lowered")
    computed = _sql(Keyset(lowered).apply(select(c.id), Request(5, forge(["m"]))))
    assert "lower(rows.name) > %(param_1)s::VARCHAR" in computed
    with pytest.raises(BadRequest):
        ascending.apply(select(c.id), Request(10, forge(["2026-11-29", "3"])))


@pytest.mark.no_db
def test_page_cuts_the_extra_row_and_points_after_the_last_item() -> None:
    keyset = Keyset(ROWS.c.at, ROWS.c.id)
    at = datetime(2026, 11, 29, tzinfo=UTC)
    rows = [Row(at=at, id=n) for n in range(4)]
    last_page = keyset.page(rows[:3], Request(limit=3))
    assert last_page.items == rows[:3]
    assert last_page.next_cursor is None
    assert keyset.page([], Request(limit=3)).next_cursor is None
    page = keyset.page(rows, Request(limit=3))
    assert page.items == rows[:3]
    assert page.next_cursor is not None
    assert keyset.decode(page.next_cursor) == (at, 2)
    by_key = keyset.page(rows, Request(limit=1), key=lambda row: [row.at, row.id + 100])
    assert by_key.next_cursor is not None
    assert keyset.decode(by_key.next_cursor) == (at, 100)


# --- forged cursors against every list endpoint ------------------------------------------

HUGE = 2**63
SOME_ID = str(uuid.uuid4())

# Cursors no key type accepts at any position: wrong shapes, wrong JSON types, integers past
# int64, NUL (PostgreSQL text cannot hold it), nested values, not base64 or not JSON at all.
FORGED = [
    forge({"day": "2026-11-29", "id": 1}),
    forge({"created_at": "2026-11-24T10:00:00+00:00", "id": 1}),
    forge({"created_at": None, "id": SOME_ID}),
    forge({"id": HUGE}),
    forge({"id": "1"}),
    forge({"name": "a\u0000b"}),
    forge({"code": {"nested": 1}}),
    forge({"k": [{"a": 1}, None]}),
    forge({"k": ["2026-11-29", "DE", "q", None]}),
    forge({"reviewer_id": ["x"]}),
    forge({"due_at": "2026-11-29T00:00:00Z", "plan_id": 1, "item_id": {}, "reviewer_id": None}),
    forge(None),
    forge("2026-11-29"),
    forge(12),
    forge(1.5),
    forge(True),
    forge([]),
    forge([None]),
    forge([HUGE]),
    forge([-(2**63) - 1]),
    forge([123456789012345678901234567890]),
    forge([18446744073709551615]),
    forge(["a\u0000"]),
    forge([{"a": 1}]),
    forge([[1]]),
    forge([1.5]),
    forge([True]),
    forge([None, None]),
    forge([HUGE, HUGE]),
    forge(["\u0000", "\u0000"]),
    forge([{"x": 1}, [2]]),
    forge([False, 0.5]),
    forge(["2026-11-29", "DE", "q", "\u0000"]),
    forge([None, None, None, None]),
    forge([HUGE, HUGE, HUGE, HUGE]),
    forge([1, 2, 3, 4, 5, 6, 7, 8]),
    forge({"a": 1, "b": 2, "c": 3, "d": 4}),
    "not base64!",
    "////",
    "A",
    base64.urlsafe_b64encode(b"not json").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    forge(["\ud800"]),
    forge_json('["x"] trailing'),
]

# Time positions at the edges of the calendar: valid as written, out of range in UTC (or no
# time at all). A list keyed by a string may take them as a plain string (200); none may fail.
EDGE_TIMES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-00:01",
    "2026-11-29T10:00:00",
    "2026-02-30T00:00:00+00:00",
    "yesterday",
]
EDGE = [
    forge(shape)
    for when in EDGE_TIMES
    for shape in (
        [when],
        [when, SOME_ID],
        [when, 1],
        [when, when],
        [when, SOME_ID, "item", "rev-1"],
        {"created_at": when, "id": SOME_ID},
        {"closed_at": when, "id": SOME_ID},
        {"day": when, "id": SOME_ID},
        {"due_at": when, "plan_id": SOME_ID, "item_id": "x", "reviewer_id": "y"},
    )
]

QUIZ = {
    "title": "Paging quiz",
    "policy_code": "hate_speech",
    "questions": [
        {"id": "q1", "kind": "choice", "prompt": "?", "options": ["a", "b"], "answer": "a"}
    ],
    "pass_mark": 0.5,
    "assignee_reviewer_ids": ["rev-1"],
    "due_at": _in_hours(24),
}
PLAN = {
    "title": "Paging plan",
    "kind": "onboarding",
    "owners": ["lead-1"],
    "assignees": ["rev-1", "rev-2"],
    "items": [{"id": "read", "kind": "read_policy", "policy_code": "hate_speech", "due_at": ""}],
}


async def _created(client: httpx.AsyncClient, key: str, url: str, body: dict[str, Any]) -> str:
    response = await client.post(url, json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


async def _list_operations(
    client: httpx.AsyncClient, live_server: LiveServer, admin_key: str, sender: SignedSender
) -> list[tuple[str, str, dict[str, str]]]:
    """Every GET operation with a ``cursor`` parameter: (path, URL, required query values)."""
    [source] = (await client.get("/v1/sources", headers=auth(admin_key))).json()["items"]
    plan = {**PLAN, "items": [{**PLAN["items"][0], "due_at": _in_hours(-1)}]}  # type: ignore[dict-item]
    path_values = {
        "source_id": source["id"],
        "quiz_id": await _created(client, admin_key, "/v1/quizzes", QUIZ),
        "plan_id": await _created(client, admin_key, "/v1/training-plans", plan),
    }
    query_values = {"market": "DE"}
    operations = []
    for path, methods in live_server.app.openapi()["paths"].items():
        operation = methods.get("get")
        parameters = operation.get("parameters", []) if operation else []
        if not any(p["name"] == "cursor" and p["in"] == "query" for p in parameters):
            continue
        url, query = path, {}
        for parameter in parameters:
            name = parameter["name"]
            if parameter["in"] == "path":
                assert name in path_values, f"{path}: give the test a value for {{{name}}}"
                url = url.replace("{" + name + "}", path_values[name])
            elif parameter.get("required"):
                assert name in query_values, f"{path}: give the test a value for ?{name}"
                query[name] = query_values[name]
        operations.append((path, url, query))
    return operations


async def test_forged_cursors_are_400_on_every_list_endpoint(
    client: httpx.AsyncClient, live_server: LiveServer, admin_key: str, sender: SignedSender
) -> None:
    operations = await _list_operations(client, live_server, admin_key, sender)
    assert len(operations) >= 23
    failures = []
    for path, url, query in operations:
        first = await client.get(url, params=query, headers=auth(admin_key))
        assert first.status_code == 200, f"{path}: {first.text}"
        for cursor in FORGED:
            response = await client.get(
                url, params={**query, "cursor": cursor}, headers=auth(admin_key)
            )
            if response.status_code != 400:
                failures.append(f"{path} {cursor}: {response.status_code}")
                continue
            assert_problem(response, 400)
        for cursor in EDGE:
            response = await client.get(
                url, params={**query, "cursor": cursor}, headers=auth(admin_key)
            )
            if response.status_code not in (200, 400):
                failures.append(f"{path} {cursor}: {response.status_code}")
            elif response.status_code == 400:
                assert_problem(response, 400)
    assert not failures, "\n".join(failures)


# --- paging round trips: no row skipped or repeated, ties included ---------------------------


async def _all_pages(
    client: httpx.AsyncClient, key: str, url: str, *, limit: int, **filters: str
) -> list[dict[str, Any]]:
    """Every item of a list, page by page, each page checked against ``limit``."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {**filters, "limit": limit}
    for _ in range(100):
        response = await client.get(url, params=params, headers=auth(key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        assert len(page["items"]) == limit
        params["cursor"] = page["next_cursor"]
    raise AssertionError(f"{url} did not end")


async def _pages_match_one_fetch(
    client: httpx.AsyncClient,
    key: str,
    url: str,
    *,
    expected: int,
    limit: int = 2,
    **filters: str,
) -> None:
    whole = await client.get(url, params={**filters, "limit": 1000}, headers=auth(key))
    assert whole.status_code == 200, whole.text
    assert whole.json()["next_cursor"] is None
    assert len(whole.json()["items"]) == expected
    paged = await _all_pages(client, key, url, limit=limit, **filters)
    assert paged == whole.json()["items"]


async def test_time_ordered_lists_page_through_ties_without_gaps(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # Rows written in one transaction share their time: only the id orders them.
    tied = datetime(2026, 11, 29, 10, 0, 0, 500000, tzinfo=UTC)
    async with sessionmaker() as session, session.begin():
        for n in range(7):
            when = tied if n < 5 else tied + timedelta(microseconds=n)
            session.add(
                AuditLogEntry(
                    action="test.paged", entity_type="test", entity_id=str(n), created_at=when
                )
            )
            session.add(
                SamplingPlan(queue=f"queue-{n}", rate=0.1, min_per_moderator=0, created_at=when)
            )
    await _pages_match_one_fetch(
        client, admin_key, "/v1/audit-log", expected=7, action="test.paged"
    )
    await _pages_match_one_fetch(client, admin_key, "/v1/sampling-plans", expected=7)
    plans = (await client.get("/v1/sampling-plans", headers=auth(admin_key))).json()["items"]
    assert [plan["queue"] for plan in plans][5:] == ["queue-5", "queue-6"]


async def test_audits_of_one_day_page_through(
    client: httpx.AsyncClient, admin_key: str, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    events = [decision_event(n, decided_at="2026-11-24T10:00:00Z") for n in range(5)]
    await make_audits(sender, sessionmaker, events)
    await _pages_match_one_fetch(client, admin_key, "/v1/audits", expected=5)


async def test_a_four_column_key_with_long_ids_pages_through(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # The widest cursor a list writes: a day and three ids of up to 128 characters, each up
    # to four bytes of UTF-8, must still be a cursor the API takes back.
    moderators = ["mod-1", "\U0001f642" * 128]
    async with sessionmaker() as session, session.begin():
        for day in (date(2026, 11, 28), date(2026, 11, 29)):
            for market in ("AT", "DE"):
                for queue in ("q-" + "x" * 126, "q-short"):
                    for moderator in moderators:
                        session.add(
                            QualityRollup(
                                day=day,
                                market=market,
                                queue=queue,
                                moderator_id=moderator,
                                policy=ALL_POLICIES,
                                decisions=1,
                            )
                        )
    await _pages_match_one_fetch(client, admin_key, "/v1/intake-rollups", expected=16, limit=3)


async def test_plan_progress_pages_by_assignee(client: httpx.AsyncClient, admin_key: str) -> None:
    plan = {
        **PLAN,
        "assignees": [f"rev-{n}" for n in range(5)],
        "items": [{**PLAN["items"][0], "due_at": _in_hours(24)}],  # type: ignore[dict-item]
    }
    plan_id = await _created(client, admin_key, "/v1/training-plans", plan)
    url = f"/v1/training-plans/{plan_id}/progress"
    await _pages_match_one_fetch(client, admin_key, url, expected=5)
    assignees = await _all_pages(client, admin_key, url, limit=2)
    assert [row["reviewer_id"] for row in assignees] == [f"rev-{n}" for n in range(5)]
