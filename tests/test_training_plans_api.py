"""Training plans: progress, completion, overdue items, pass_quiz items completed by passing,
remedial plans for failing reviewers, and the overdue reminder (sent once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.training_reminders import run_remind_overdue_training_items
from shared.core.settings import Settings
from shared.events import EventType
from shared.models import AuditLogEntry, Event, TrainingItemProgress, TrainingPlan
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.audits import auditor, drain, make_audits
from tests.support.quizzes import ALL_RIGHT, attempt, create_quiz, reviewer_key
from tests.support.workers import worker_state

Sessionmaker = async_sessionmaker[AsyncSession]


def _at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def plan_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Onboarding DE",
        "kind": "onboarding",
        "owners": ["lead-1"],
        "assignees": ["rev-1", "rev-2"],
        "items": [
            {"id": "read", "kind": "read_policy", "policy_code": "hate_speech", "due_at": _at(-1)},
            {"id": "shadow", "kind": "shadow_audits", "count": 20, "due_at": _at(48)},
        ],
    }
    body.update(overrides)
    return body


async def create_plan(client: httpx.AsyncClient, key: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/training-plans", json=plan_body(**overrides), headers=auth(key)
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def progress_of(client: httpx.AsyncClient, plan_id: str, key: str) -> dict[str, Any]:
    response = await client.get(f"/v1/training-plans/{plan_id}/progress", headers=auth(key))
    assert response.status_code == 200, response.text
    return {row["reviewer_id"]: row for row in response.json()["items"]}


async def complete(
    client: httpx.AsyncClient, plan_id: str, item_id: str, key: str, **body: str
) -> httpx.Response:
    return await client.post(
        f"/v1/training-plans/{plan_id}/items/{item_id}/complete",
        json=body or None,
        headers=auth(key),
    )


async def test_progress_completion_and_overdue(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    plan = await create_plan(client, admin_key)
    assert plan["assignees"] == ["rev-1", "rev-2"]
    assert [item["id"] for item in plan["items"]] == ["read", "shadow"]
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    owner = await reviewer_key(sessionmaker, "lead-1", role="qa_auditor")
    stranger = await reviewer_key(sessionmaker, "rev-9")

    before = await progress_of(client, plan["id"], admin_key)
    assert before["rev-1"]["done"] == 0
    assert before["rev-1"]["overdue"] == 1
    assert [(i["item_id"], i["overdue"]) for i in before["rev-1"]["items"]] == [
        ("read", True),
        ("shadow", False),
    ]

    done = await complete(client, plan["id"], "read", rev1)
    assert done.status_code == 200, done.text
    assert done.json()["done"] is True
    assert done.json()["overdue"] is False
    assert (await complete(client, plan["id"], "read", rev1)).status_code == 409
    # The owner completes on behalf of rev-2; a stranger may not.
    assert (
        await complete(client, plan["id"], "shadow", stranger, reviewer_id="rev-2")
    ).status_code == 403
    assert (await complete(client, plan["id"], "shadow", stranger)).status_code == 403
    assert (
        await complete(client, plan["id"], "shadow", owner, reviewer_id="rev-2")
    ).status_code == 200
    assert (await complete(client, plan["id"], "nope", rev1)).status_code == 404
    assert (
        await complete(client, plan["id"], "read", admin_key, reviewer_id="rev-9")
    ).status_code == 422

    after = await progress_of(client, plan["id"], owner)
    assert (after["rev-1"]["done"], after["rev-1"]["overdue"]) == (1, 0)
    assert (after["rev-2"]["done"], after["rev-2"]["overdue"]) == (1, 1)
    # An assignee sees their own progress only; a stranger none.
    assert list(await progress_of(client, plan["id"], rev1)) == ["rev-1"]
    forbidden = await client.get(
        f"/v1/training-plans/{plan['id']}/progress", headers=auth(stranger)
    )
    assert forbidden.status_code == 403

    overdue = (await client.get("/v1/training-plans/overdue", headers=auth(admin_key))).json()
    assert [(o["reviewer_id"], o["item_id"]) for o in overdue["items"]] == [("rev-2", "read")]
    assert overdue["items"][0]["plan_title"] == "Onboarding DE"

    async with sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_type == "training_plan")
                .order_by(AuditLogEntry.id)
            )
        )
    assert actions == ["training_plan.created", "training_item.completed",
                       "training_item.completed"]  # fmt: skip


async def test_overdue_filters_by_market_and_pages(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    for reviewer_id, market in [("de-1", "DE"), ("de-2", "DE"), ("at-1", "AT")]:
        await client.put(
            f"/v1/reviewers/{reviewer_id}",
            json={"markets": [market], "languages": ["de"]},
            headers=auth(admin_key),
        )
    await create_plan(client, admin_key, assignees=["de-1", "de-2", "at-1"])
    listed = await client.get(
        "/v1/training-plans/overdue", params={"market": "de", "limit": 1}, headers=auth(admin_key)
    )
    page = listed.json()
    assert [o["reviewer_id"] for o in page["items"]] == ["de-1"]
    second = await client.get(
        "/v1/training-plans/overdue",
        params={"market": "DE", "limit": 1, "cursor": page["next_cursor"]},
        headers=auth(admin_key),
    )
    assert [o["reviewer_id"] for o in second.json()["items"]] == ["de-2"]
    assert second.json()["next_cursor"] is None
    at_manager = await make_key(sessionmaker, "manager", markets=["AT"])
    scoped = await client.get("/v1/training-plans/overdue", headers=auth(at_manager))
    assert [o["reviewer_id"] for o in scoped.json()["items"]] == ["at-1"]


async def test_a_scoped_key_sees_the_overdue_items_of_the_reviewers_it_may_see(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # The overdue list applies the reviewer list's rule: a reviewer with no market yet is
    # visible to every market-scoped key, in both.
    for reviewer_id, markets in [("at-1", ["AT"]), ("de-1", ["DE"]), ("new-1", [])]:
        await client.put(
            f"/v1/reviewers/{reviewer_id}",
            json={"markets": markets, "languages": ["de"]},
            headers=auth(admin_key),
        )
    await create_plan(client, admin_key, assignees=["at-1", "de-1", "new-1"])
    at_manager = auth(await make_key(sessionmaker, "manager", markets=["AT"]))
    reviewers = await client.get("/v1/reviewers", headers=at_manager)
    overdue = await client.get("/v1/training-plans/overdue", headers=at_manager)
    visible = {r["id"] for r in reviewers.json()["items"]} & {"at-1", "de-1", "new-1"}
    assert visible == {"at-1", "new-1"}
    assert {o["reviewer_id"] for o in overdue.json()["items"]} == visible


async def test_passing_the_quiz_completes_pass_quiz_items_and_failures_get_a_plan(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    quiz = await create_quiz(client, admin_key, retakes_allowed=True)
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    rev2 = await reviewer_key(sessionmaker, "rev-2")
    await attempt(client, quiz["id"], rev1, {})  # fails
    await attempt(client, quiz["id"], rev2, ALL_RIGHT)  # passes
    plan = await create_plan(
        client,
        admin_key,
        kind="remedial",
        assignees=[],
        items=[{"id": "quiz", "kind": "pass_quiz", "quiz_id": quiz["id"], "due_at": _at(24)}],
    )
    assigned = await client.post(
        f"/v1/quizzes/{quiz['id']}/failures/assign-plan",
        json={"plan_id": plan["id"]},
        headers=auth(admin_key),
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json() == {"plan_id": plan["id"], "added": ["rev-1"], "already_assigned": []}
    again = await client.post(
        f"/v1/quizzes/{quiz['id']}/failures/assign-plan",
        json={"plan_id": plan["id"]},
        headers=auth(admin_key),
    )
    assert again.json()["already_assigned"] == ["rev-1"]
    assert (await progress_of(client, plan["id"], admin_key))["rev-1"]["done"] == 0
    # The assignee cannot tick a pass_quiz item by hand: passing does it.
    assert (await complete(client, plan["id"], "quiz", rev1)).status_code == 409

    passed = await attempt(client, quiz["id"], rev1, ALL_RIGHT)
    assert passed.json()["passed"] is True
    item = (await progress_of(client, plan["id"], admin_key))["rev-1"]["items"][0]
    assert item["done"] is True
    assert item["completed_by"] == f"quiz_attempt:{passed.json()['id']}"

    # A reviewer who passed before joining a plan has the item done at once.
    later = await create_plan(
        client,
        admin_key,
        assignees=["rev-2"],
        items=[{"id": "quiz", "kind": "pass_quiz", "quiz_id": quiz["id"], "due_at": _at(-1)}],
    )
    assert (await progress_of(client, later["id"], admin_key))["rev-2"]["done"] == 1


async def test_overdue_items_are_reminded_once(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessionmaker,
) -> None:
    await client.put(
        "/v1/reviewers/rev-1",
        json={"markets": ["DE"], "languages": ["de"]},
        headers=auth(admin_key),
    )
    plan = await create_plan(client, admin_key)
    rev2 = await reviewer_key(sessionmaker, "rev-2")
    assert (await complete(client, plan["id"], "read", rev2)).status_code == 200
    state = worker_state(settings, sessionmaker)

    assert await run_remind_overdue_training_items(state) == 1  # rev-1's "read"; rev-2 is done
    assert await run_remind_overdue_training_items(state) == 0
    async with sessionmaker() as session:
        events = list(
            await session.scalars(
                select(Event).where(Event.type == EventType.TRAINING_ITEM_OVERDUE.value)
            )
        )
        reminded = await session.scalar(
            select(func.count())
            .select_from(TrainingItemProgress)
            .where(TrainingItemProgress.reminded_at.is_not(None))
        )
    assert len(events) == 1
    assert events[0].market == "DE"
    assert events[0].data["reviewer_id"] == "rev-1"
    assert events[0].data["item_id"] == "read"
    assert events[0].data["plan_id"] == plan["id"]
    assert events[0].data["owners"] == ["lead-1"]
    assert reminded == 1
    overdue = (await client.get("/v1/training-plans/overdue", headers=auth(admin_key))).json()
    assert overdue["items"][0]["reminded_at"] is not None


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "yearly"},
        {"owners": []},
        {"items": []},
        {"items": [{"id": "q", "kind": "pass_quiz", "due_at": "2026-12-01T00:00:00Z"}]},
        {"items": [{"id": "s", "kind": "shadow_audits", "due_at": "2026-12-01T00:00:00Z"}]},
        {"items": [{"id": "r", "kind": "read_policy", "policy_code": "x", "due_at": "tomorrow"}]},
        {
            "items": [
                {
                    "id": "q",
                    "kind": "pass_quiz",
                    "quiz_id": "00000000-0000-0000-0000-000000000001",
                    "due_at": "2026-12-01T00:00:00Z",
                }
            ]
        },
    ],
)
async def test_bad_plans_are_422_and_store_nothing(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    change: dict[str, Any],
) -> None:
    response = await client.post(
        "/v1/training-plans", json=plan_body(**change), headers=auth(admin_key)
    )
    assert response.status_code == 422, response.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TrainingPlan)) == 0


@pytest.mark.parametrize("role", ["admin", "manager", "policy_poc", "qa_auditor", "moderator"])
async def test_roles(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker, role: str
) -> None:
    manages = role in ("admin", "manager")
    key = await make_key(sessionmaker, role, reviewer_id="someone")
    plan = await create_plan(client, admin_key)
    created = await client.post("/v1/training-plans", json=plan_body(), headers=auth(key))
    assert created.status_code == (201 if manages else 403)
    overdue = await client.get("/v1/training-plans/overdue", headers=auth(key))
    assert overdue.status_code == (200 if manages else 403)
    # Anyone lists plans; who is neither a manager, an owner nor an assignee sees none.
    listed = await client.get("/v1/training-plans", headers=auth(key))
    assert listed.status_code == 200
    listed_ids = [p["id"] for p in listed.json()["items"]]
    assert (plan["id"] in listed_ids) if manages else (listed_ids == [])
    for url in ("/v1/training-plans", "/v1/training-plans/overdue"):
        assert (await client.get(url)).status_code == 401
    for url in (f"/v1/training-plans/{plan['id']}", f"/v1/training-plans/{plan['id']}/progress"):
        assert (await client.get(url, headers=auth(key))).status_code == (200 if manages else 403)
        assert (await client.get(url)).status_code == 401
    on_behalf = await complete(client, plan["id"], "shadow", key, reviewer_id="rev-1")
    assert on_behalf.status_code == (200 if manages else 403)
    assert (
        await client.post(f"/v1/training-plans/{plan['id']}/items/read/complete")
    ).status_code == 401
    assert (await client.post("/v1/training-plans", json=plan_body())).status_code == 401


async def test_assignees_and_owners_list_their_own_plans(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # Found on the landed code: only managers could list plans, so an assignee had no way to
    # find the plans they were given.
    first = await create_plan(client, admin_key, assignees=["rev-1"], owners=["lead-1"])
    second = await create_plan(client, admin_key, assignees=["rev-2"], owners=["lead-2"])

    async def listed(key: str) -> list[str]:
        response = await client.get("/v1/training-plans", headers=auth(key))
        assert response.status_code == 200, response.text
        return [plan["id"] for plan in response.json()["items"]]

    assert await listed(await reviewer_key(sessionmaker, "rev-1")) == [first["id"]]
    assert await listed(await reviewer_key(sessionmaker, "lead-2", role="qa_auditor")) == [
        second["id"]
    ]
    assert await listed(admin_key) == [first["id"], second["id"]]
    assert await listed(await make_key(sessionmaker, "policy_poc")) == []


async def test_listing_plans_takes_the_same_statements_for_one_plan_or_many(
    client: httpx.AsyncClient, admin_key: str, live_server: Any
) -> None:
    # Found on the landed code: 2N + 2 statements for N plans (items and assignees per plan).
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = live_server.app.state.engine.sync_engine

    async def statements_to_list() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = await client.get("/v1/training-plans", headers=auth(admin_key))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        return len(statements)

    await create_plan(client, admin_key)
    one = await statements_to_list()
    for n in range(5):
        await create_plan(client, admin_key, title=f"Plan {n}")
    many = await statements_to_list()
    assert many == one
    assert one <= 6  # key lookup, plans, items, assignees, and the transaction's own


async def test_a_late_completion_keeps_its_late_mark(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    # Found on the landed code: completing an overdue item erased every trace of lateness.
    plan = await create_plan(client, admin_key)  # "read" was due an hour ago
    rev1 = await reviewer_key(sessionmaker, "rev-1")
    assert (await complete(client, plan["id"], "read", rev1)).status_code == 200
    progress = await progress_of(client, plan["id"], admin_key)
    read, shadow = progress["rev-1"]["items"]
    assert (read["done"], read["overdue"], read["late"]) == (True, False, True)
    assert (shadow["done"], shadow["overdue"], shadow["late"]) == (False, False, False)
    assert progress["rev-1"]["late"] == 1
    # rev-2 has not done it: overdue and late.
    read2 = progress["rev-2"]["items"][0]
    assert (read2["done"], read2["overdue"], read2["late"]) == (False, True, True)


async def test_shadow_audits_are_counted_from_completed_audits(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker, sender: SignedSender
) -> None:
    # Found on the landed code: a trainee could declare shadow audits done without any audit.
    items = [
        {"id": "two", "kind": "shadow_audits", "count": 2, "due_at": _at(48)},
        {"id": "three", "kind": "shadow_audits", "count": 3, "due_at": _at(48)},
        {"id": "spam", "kind": "shadow_audits", "count": 1, "policy_code": "spam",
         "due_at": _at(48)},
    ]  # fmt: skip
    plan = await create_plan(client, admin_key, assignees=["aud-1"], items=items)
    trainee = await auditor(sessionmaker, "aud-1")
    refused = await complete(client, plan["id"], "two", trainee)
    assert refused.status_code == 409
    assert "audits" in refused.json()["detail"]

    await make_audits(sender, sessionmaker, [decision_event(n) for n in (1, 2)])
    judged = await drain(client, trainee)
    assert len(judged) == 2  # both hate_speech decisions

    progress = (await progress_of(client, plan["id"], admin_key))["aud-1"]
    by_item = {item["item_id"]: item for item in progress["items"]}
    assert (by_item["two"]["done"], by_item["two"]["audits_done"]) == (True, 2)
    assert by_item["two"]["completed_by"] == "audits"
    assert (by_item["three"]["done"], by_item["three"]["audits_done"]) == (False, 2)
    # Of another policy: none of the audits counts.
    assert (by_item["spam"]["done"], by_item["spam"]["audits_done"]) == (False, 0)
    async with sessionmaker() as session:
        logged = await session.scalar(
            select(func.count())
            .select_from(AuditLogEntry)
            .where(AuditLogEntry.action == "training_item.completed")
        )
    assert logged == 1
