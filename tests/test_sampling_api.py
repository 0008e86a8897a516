"""Sampling plans, on-demand and scheduled sampling, jobs: through the API and the worker."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.sampling import (
    day_bounds,
    sample_daily_audits,
    sample_due_markets,
)
from services.report_worker.worker import WorkerSettings
from shared.core.queue import ArqRedis, job_function
from shared.core.settings import Settings
from shared.decisions.partitions import REGISTER_MISSING_EVENT_KEYS
from shared.jobs import SampleDailyAudits
from shared.models import (
    Audit,
    AuditLogEntry,
    BackgroundJob,
    Market,
    OutboxJob,
    Policy,
    Queue,
    SamplingPlan,
    SamplingRun,
)
from tests.conftest import (
    LiveServer,
    SignedSender,
    auth,
    decision_event,
    make_key,
    relay_all,
    run_worker_burst,
)
from tests.support.db import count_rows
from tests.support.problems import assert_problem
from tests.support.sampling import plan_body
from tests.support.workers import worker_state

DAY = "2026-11-24"
SOURCE_ID = uuid.UUID("00000000-0000-0000-0000-00000000abcd")
SAMPLING_FUNCTIONS = [
    *WorkerSettings.functions,
    job_function(SampleDailyAudits, sample_daily_audits, timeout=300),
]

Sessionmaker = async_sessionmaker[AsyncSession]


async def insert_decisions(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Decisions straight into the table (the sampling tests need exact times and volumes),
    with their idempotency keys."""
    assert settings.database_url is not None
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", "", 1))
    try:
        await connection.copy_records_to_table(
            "decisions",
            columns=[
                "source_id", "event_id", "content_id", "content_type", "queue", "market",
                "language", "moderator_id", "action", "policy_labels", "decided_at",
                "handling_time_ms", "metadata", "intake_batch_id",
            ],
            records=[
                (
                    SOURCE_ID, row["event_id"], f"c-{row['event_id']}", "video", row["queue"],
                    row["market"], row.get("language", "de"), row["moderator_id"],
                    row.get("action", "remove"), row.get("labels", ["spam"]), row["decided_at"],
                    1000, "{}", SOURCE_ID,
                )
                for row in rows
            ],
        )  # fmt: skip
        await connection.execute(REGISTER_MISSING_EVENT_KEYS)
    finally:
        await connection.close()


def decision_rows(
    count_: int,
    *,
    prefix: str,
    queue: str = "de-video-standard",
    market: str = "DE",
    moderators: int = 5,
    decided_at: datetime = datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    labels: list[str] | None = None,
) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{n}",
            "queue": queue,
            "market": market,
            "moderator_id": f"{prefix}-mod-{n % moderators}",
            "decided_at": decided_at + timedelta(seconds=n),
            "labels": labels or ["spam"],
        }
        for n in range(count_)
    ]


async def run_sampling(
    client: httpx.AsyncClient,
    key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
    **body: Any,
) -> dict[str, Any]:
    """Request a sampling, let the relay and the worker do it, return the finished job."""
    response = await client.post("/v1/audits/sample", json={"day": DAY, **body}, headers=auth(key))
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    await relay_all(sessionmaker, queue)
    await run_worker_burst(WorkerSettings, settings, functions=SAMPLING_FUNCTIONS)
    job = await client.get(f"/v1/jobs/{job_id}", headers=auth(key))
    assert job.status_code == 200, job.text
    finished: dict[str, Any] = job.json()
    return finished


async def sampling_log(sessionmaker: Sessionmaker) -> list[AuditLogEntry]:
    """Audit-log entries about plans and jobs (creating keys is logged too)."""
    async with sessionmaker() as session:
        query = (
            select(AuditLogEntry)
            .where(AuditLogEntry.entity_type.in_(["sampling_plan", "background_job"]))
            .order_by(AuditLogEntry.id)
        )
        return list(await session.scalars(query))


async def audits(sessionmaker: Sessionmaker) -> list[Audit]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Audit).order_by(Audit.decision_id)))


# Plans: create, validate, list, change, deactivate.


async def test_create_plan_registers_references_and_is_audit_logged(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    response = await client.post(
        "/v1/sampling-plans",
        json=plan_body(
            market="de",
            label_boosts={"hate_speech": 3},
            label_quotas={"csam": 5},
            action_boosts={"approve": 2},
            daily_cap=500,
        ),
        headers=auth(admin_key),
    )
    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["market"] == "DE"
    assert plan["queue"] == "de-video-standard"
    assert plan["rate"] == 0.1
    assert plan["version"] == 1
    assert plan["active"] is True
    assert plan["label_quotas"] == {"csam": 5}
    async with sessionmaker() as session:
        assert await session.get(Market, "DE") is not None
        stored_queue = await session.get(Queue, "de-video-standard")
        assert stored_queue is not None
        assert stored_queue.market_code == "DE"
        assert await session.get(Policy, "hate_speech") is not None
        assert await session.get(Policy, "csam") is not None
    entries = await sampling_log(sessionmaker)
    assert [(e.action, e.entity_type, e.entity_id) for e in entries] == [
        ("sampling_plan.created", "sampling_plan", plan["id"])
    ]
    assert entries[0].after is not None
    assert entries[0].after["rate"] == 0.1
    assert entries[0].actor_role == "admin"


INVALID_PLANS = [
    plan_body(rate=1.5),
    plan_body(rate=-0.1),
    plan_body(min_per_moderator=-1),
    {"rate": 0.1, "min_per_moderator": 1},
    plan_body(queue=None),
    plan_body(label_boosts={"Not A Code": 2}),
    plan_body(label_quotas={"csam": -1}),
    plan_body(action_boosts={"delete": 2}),
    plan_body(new_moderator_multiplier=-1),
    plan_body(daily_cap=-5),
    plan_body(surprise=True),
    {"queue": "de-video-standard", "min_per_moderator": 1},
]


async def test_invalid_plans_are_422_and_store_nothing(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    for body in INVALID_PLANS:
        response = await client.post("/v1/sampling-plans", json=body, headers=auth(admin_key))
        problem = assert_problem(response, 422)
        assert problem["errors"], body
    assert await count_rows(sessionmaker, SamplingPlan) == 0
    assert await sampling_log(sessionmaker) == []


async def test_one_active_plan_per_scope(client: httpx.AsyncClient, admin_key: str) -> None:
    first = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    assert first.status_code == 201
    again = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    assert_problem(again, 409)
    # Another scope is fine: the queue within a market, or the market.
    for body in (plan_body(market="DE"), plan_body(queue=None, market="DE")):
        response = await client.post("/v1/sampling-plans", json=body, headers=auth(admin_key))
        assert response.status_code == 201, response.text
    # Once deactivated, its scope is free again.
    deleted = await client.delete(
        f"/v1/sampling-plans/{first.json()['id']}", headers=auth(admin_key)
    )
    assert deleted.status_code == 204
    replacement = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    assert replacement.status_code == 201


async def test_list_get_and_page_plans(client: httpx.AsyncClient, admin_key: str) -> None:
    created = []
    for queue in ("q-a", "q-b", "q-c"):
        response = await client.post(
            "/v1/sampling-plans", json=plan_body(queue=queue), headers=auth(admin_key)
        )
        created.append(response.json()["id"])
    first = await client.get("/v1/sampling-plans?limit=2", headers=auth(admin_key))
    assert first.status_code == 200
    page = first.json()
    assert [item["id"] for item in page["items"]] == created[:2]
    assert page["next_cursor"]
    second = await client.get(
        "/v1/sampling-plans", params={"limit": 2, "cursor": page["next_cursor"]},
        headers=auth(admin_key),
    )  # fmt: skip
    assert [item["id"] for item in second.json()["items"]] == created[2:]
    assert second.json()["next_cursor"] is None

    filtered = await client.get("/v1/sampling-plans?queue=q-b", headers=auth(admin_key))
    assert [item["id"] for item in filtered.json()["items"]] == [created[1]]
    one = await client.get(f"/v1/sampling-plans/{created[2]}", headers=auth(admin_key))
    assert one.json()["queue"] == "q-c"
    assert_problem(
        await client.get(f"/v1/sampling-plans/{uuid.uuid4()}", headers=auth(admin_key)), 404
    )
    assert_problem(
        await client.get("/v1/sampling-plans?cursor=garbage", headers=auth(admin_key)), 400
    )


async def test_patch_bumps_version_and_logs_before_and_after(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    created = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    plan_id = created.json()["id"]
    changed = await client.patch(
        f"/v1/sampling-plans/{plan_id}",
        json={"rate": 0.25, "daily_cap": 100, "label_quotas": {"csam": 3}},
        headers=auth(admin_key),
    )
    assert changed.status_code == 200, changed.text
    plan = changed.json()
    assert (plan["rate"], plan["daily_cap"], plan["version"]) == (0.25, 100, 2)
    assert plan["min_per_moderator"] == 2  # untouched

    cleared = await client.patch(
        f"/v1/sampling-plans/{plan_id}", json={"daily_cap": None}, headers=auth(admin_key)
    )
    assert cleared.json()["daily_cap"] is None
    assert cleared.json()["version"] == 3

    entries = [e for e in await sampling_log(sessionmaker) if e.action == "sampling_plan.updated"]
    assert len(entries) == 2
    assert entries[0].before is not None
    assert entries[0].after is not None
    assert (entries[0].before["rate"], entries[0].after["rate"]) == (0.1, 0.25)
    assert (entries[0].before["version"], entries[0].after["version"]) == (1, 2)


async def test_bad_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    created = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    plan_id = created.json()["id"]
    for body in (
        {"rate": 2},
        {"min_per_moderator": -3},
        {"rate": None},
        {"queue": None},  # the plan names no market: it would have no scope left
        {},
        {"unknown": 1},
    ):
        response = await client.patch(
            f"/v1/sampling-plans/{plan_id}", json=body, headers=auth(admin_key)
        )
        assert_problem(response, 422)
    after = await client.get(f"/v1/sampling-plans/{plan_id}", headers=auth(admin_key))
    assert after.json() == created.json()
    assert len(await sampling_log(sessionmaker)) == 1  # the creation only


async def test_deactivate_keeps_the_plan_readable(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    created = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    plan_id = created.json()["id"]
    assert (
        await client.delete(f"/v1/sampling-plans/{plan_id}", headers=auth(admin_key))
    ).status_code == 204
    plan = (await client.get(f"/v1/sampling-plans/{plan_id}", headers=auth(admin_key))).json()
    assert plan["active"] is False
    assert plan["version"] == 2
    inactive = await client.get("/v1/sampling-plans?active=false", headers=auth(admin_key))
    assert [item["id"] for item in inactive.json()["items"]] == [plan_id]
    # Again: nothing changes, nothing more is logged.
    assert (
        await client.delete(f"/v1/sampling-plans/{plan_id}", headers=auth(admin_key))
    ).status_code == 204
    actions = [entry.action for entry in await sampling_log(sessionmaker)]
    assert actions == ["sampling_plan.created", "sampling_plan.deactivated"]


# Roles and scopes.


SAMPLING_ENDPOINTS = [
    ("POST", "/v1/sampling-plans"),
    ("GET", "/v1/sampling-plans"),
    ("GET", f"/v1/sampling-plans/{uuid.UUID(int=1)}"),
    ("PATCH", f"/v1/sampling-plans/{uuid.UUID(int=1)}"),
    ("DELETE", f"/v1/sampling-plans/{uuid.UUID(int=1)}"),
    ("POST", "/v1/audits/sample"),
    ("GET", f"/v1/jobs/{uuid.UUID(int=1)}"),
    ("GET", "/v1/sampling-runs"),
    ("GET", "/v1/sampling/sample-size?expected_accuracy=0.9&margin=0.05"),
]


async def test_sampling_endpoints_need_a_key(client: httpx.AsyncClient) -> None:
    for method, path in SAMPLING_ENDPOINTS:
        assert_problem(await client.request(method, path), 401)
        assert_problem(await client.request(method, path, headers=auth("plk_nope")), 401)


@pytest.mark.parametrize("role", ["policy_poc", "qa_auditor", "moderator"])
async def test_only_admins_and_managers_plan_and_sample(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker, role: str
) -> None:
    created = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    plan_id = created.json()["id"]
    sampled = await client.post("/v1/audits/sample", json={"day": DAY}, headers=auth(admin_key))
    job_id = sampled.json()["job_id"]
    key = await make_key(sessionmaker, role, reviewer_id="rev-1")
    requests = [
        ("POST", "/v1/sampling-plans", plan_body(queue="other")),
        ("GET", "/v1/sampling-plans", None),
        ("GET", f"/v1/sampling-plans/{plan_id}", None),
        ("PATCH", f"/v1/sampling-plans/{plan_id}", {"rate": 0.5}),
        ("DELETE", f"/v1/sampling-plans/{plan_id}", None),
        ("POST", "/v1/audits/sample", {"day": DAY}),
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", "/v1/sampling-runs", None),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=auth(key))
        assert_problem(response, 403)
    assert await count_rows(sessionmaker, SamplingPlan) == 1
    assert await count_rows(sessionmaker, BackgroundJob) == 1
    # Any valid key may ask for a sample size.
    size = await client.get(
        "/v1/sampling/sample-size?expected_accuracy=0.95&margin=0.02", headers=auth(key)
    )
    assert size.status_code == 200
    assert size.json()["n"] == 457


async def test_manager_may_do_everything_an_admin_may(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    key = await make_key(sessionmaker, "manager")
    created = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(key))
    assert created.status_code == 201
    plan_id = created.json()["id"]
    assert (await client.get("/v1/sampling-plans", headers=auth(key))).status_code == 200
    patched = await client.patch(
        f"/v1/sampling-plans/{plan_id}", json={"rate": 0.3}, headers=auth(key)
    )
    assert patched.status_code == 200
    sampled = await client.post("/v1/audits/sample", json={"day": DAY}, headers=auth(key))
    assert sampled.status_code == 202
    job = await client.get(f"/v1/jobs/{sampled.json()['job_id']}", headers=auth(key))
    assert job.json()["status"] == "queued"
    assert (
        await client.delete(f"/v1/sampling-plans/{plan_id}", headers=auth(key))
    ).status_code == 204


async def test_market_scoped_keys_stay_in_their_markets(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    at_plan = await client.post(
        "/v1/sampling-plans", json=plan_body(queue=None, market="AT"), headers=auth(admin_key)
    )
    queue_only = await client.post("/v1/sampling-plans", json=plan_body(), headers=auth(admin_key))
    at_job = await client.post(
        "/v1/audits/sample", json={"day": DAY, "market": "AT"}, headers=auth(admin_key)
    )
    key = await make_key(sessionmaker, "manager", markets=["DE"])

    mine = await client.post(
        "/v1/sampling-plans", json=plan_body(queue=None, market="DE"), headers=auth(key)
    )
    assert mine.status_code == 201
    for body in (plan_body(queue=None, market="AT"), plan_body(queue="de-text")):
        assert_problem(await client.post("/v1/sampling-plans", json=body, headers=auth(key)), 403)
    listed = await client.get("/v1/sampling-plans", headers=auth(key))
    assert [item["id"] for item in listed.json()["items"]] == [mine.json()["id"]]
    for other in (at_plan, queue_only):
        plan_id = other.json()["id"]
        path = f"/v1/sampling-plans/{plan_id}"
        assert_problem(await client.get(path, headers=auth(key)), 404)
        assert_problem(await client.patch(path, json={"rate": 1}, headers=auth(key)), 404)
        assert_problem(await client.delete(path, headers=auth(key)), 404)
    moved = await client.patch(
        f"/v1/sampling-plans/{mine.json()['id']}", json={"market": "AT"}, headers=auth(key)
    )
    assert_problem(moved, 403)

    assert_problem(
        await client.post("/v1/audits/sample", json={"day": DAY}, headers=auth(key)), 403
    )
    assert_problem(
        await client.post(
            "/v1/audits/sample", json={"day": DAY, "market": "AT"}, headers=auth(key)
        ),
        403,
    )
    ok = await client.post(
        "/v1/audits/sample", json={"day": DAY, "market": "de"}, headers=auth(key)
    )
    assert ok.status_code == 202
    assert (
        await client.get(f"/v1/jobs/{ok.json()['job_id']}", headers=auth(key))
    ).status_code == 200
    assert_problem(await client.get(f"/v1/jobs/{at_job.json()['job_id']}", headers=auth(key)), 404)


# Requesting a sampling.


async def test_bad_sample_requests_are_422_and_queue_nothing(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    for body in ({"day": "24.11.2026"}, {}, {"day": DAY, "market": "DEU"}, {"day": "2099-01-01"}):
        response = await client.post("/v1/audits/sample", json=body, headers=auth(admin_key))
        assert_problem(response, 422)
    assert await count_rows(sessionmaker, BackgroundJob) == 0
    assert await count_rows(sessionmaker, OutboxJob) == 0


async def test_sample_request_queues_a_job_through_the_outbox(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    response = await client.post(
        "/v1/audits/sample", json={"day": DAY, "market": "de"}, headers=auth(admin_key)
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    async with sessionmaker() as session:
        outbox = list(await session.scalars(select(OutboxJob)))
        entry = await session.scalar(
            select(AuditLogEntry).where(AuditLogEntry.action == "sampling.requested")
        )
    assert [(row.function, row.payload) for row in outbox] == [
        ("sample_daily_audits", {"job_id": job_id, "day": DAY, "market": "DE"})
    ]
    assert entry is not None
    assert entry.entity_id == job_id
    job = (await client.get(f"/v1/jobs/{job_id}", headers=auth(admin_key))).json()
    assert job["status"] == "queued"
    assert job["result"] is None
    assert job["kind"] == "sample_daily_audits"
    assert job["params"] == {"day": DAY, "market": "DE"}
    assert_problem(await client.get(f"/v1/jobs/{uuid.uuid4()}", headers=auth(admin_key)), 404)


# The sampling job, end to end.


async def test_sampling_end_to_end_through_webhooks_relay_and_worker(
    client: httpx.AsyncClient,
    admin_key: str,
    sender: SignedSender,
    live_server: LiveServer,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    events = [
        decision_event(n, moderator_id=f"mod-{n % 3}", policy_labels=["spam", "scam"])
        for n in range(30)
    ]
    events += [decision_event(100, queue="de-text", moderator_id="mod-9")]  # no plan: skipped
    assert (await sender.post({"events": events})).status_code == 202
    await live_server.app.state.decision_writer.quiesce()
    created = await client.post(
        "/v1/sampling-plans",
        json=plan_body(market="DE", rate=0.0, min_per_moderator=2),
        headers=auth(admin_key),
    )
    plan_id = created.json()["id"]

    job = await run_sampling(client, admin_key, sessionmaker, queue, settings, market="DE")
    assert job["status"] == "complete", job
    assert job["finished_at"] is not None
    result = job["result"]
    assert result["audits_created"] == 6
    assert result["decisions_considered"] == 30
    [market] = result["markets"]
    assert market["time_zone"] == "Europe/Berlin"
    assert market["audits_per_moderator"] == {"mod-0": 2, "mod-1": 2, "mod-2": 2}
    [plan] = market["plans"]
    assert plan["plan_id"] == plan_id
    assert plan["by_reason"] == {"base": 0, "boost": 0, "minimum": 6, "quota": 0}

    rows = await audits(sessionmaker)
    assert len(rows) == 6
    first = rows[0]
    assert (first.status, first.market, first.queue, first.language) == (
        "pending",
        "DE",
        "de-video-standard",
        "de",
    )
    assert first.policy_labels == ["spam", "scam"]
    assert first.day == date(2026, 11, 24)
    assert str(first.plan_id) == plan_id
    assert str(first.sampling_run_id) == market["sampling_run_id"]
    assert first.reason == "minimum"
    assert len({row.priority for row in rows}) == 6
    assert all(0 <= row.priority < 1 for row in rows)

    # Sampling the day again creates nothing new; the run is recorded.
    again = await run_sampling(client, admin_key, sessionmaker, queue, settings, market="DE")
    assert again["status"] == "complete"
    assert again["result"]["audits_created"] == 0
    assert again["result"]["markets"][0]["plans"][0]["already_audited"] == 6
    assert [a.id for a in await audits(sessionmaker)] == [a.id for a in rows]
    runs = await client.get(f"/v1/sampling-runs?market=DE&day={DAY}", headers=auth(admin_key))
    assert [run["audits_created"] for run in runs.json()["items"]] == [0, 6]


async def test_market_day_follows_the_market_time_zone(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    await client.post(
        "/v1/sampling-plans",
        json=plan_body(queue=None, market="DE", rate=1.0, min_per_moderator=0),
        headers=auth(admin_key),
    )
    times = {
        "before": datetime(2026, 11, 23, 22, 59, 59, tzinfo=UTC),  # 23:59:59 on the 23rd
        "first": datetime(2026, 11, 23, 23, 0, tzinfo=UTC),  # 00:00 on the 24th in Berlin
        "last": datetime(2026, 11, 24, 22, 59, 59, tzinfo=UTC),  # 23:59:59 on the 24th
        "after": datetime(2026, 11, 24, 23, 0, tzinfo=UTC),  # 00:00 on the 25th
    }
    rows = [
        {"event_id": name, "queue": "de-x", "market": "DE", "moderator_id": "m", "decided_at": at}
        for name, at in times.items()
    ]
    rows.append({**rows[1], "event_id": "elsewhere", "market": "AT"})
    await insert_decisions(settings, rows)
    job = await run_sampling(client, admin_key, sessionmaker, queue, settings, market="DE")
    assert job["result"]["audits_created"] == 2
    async with sessionmaker() as session:
        sampled = set(
            await session.scalars(
                text("SELECT d.event_id FROM audits a JOIN decisions d ON d.id = a.decision_id")
            )
        )
    assert sampled == {"first", "last"}


@pytest.mark.no_db
def test_day_bounds_hold_the_local_day_with_margin() -> None:
    low, high = day_bounds(date(2026, 3, 29), "Europe/Berlin")  # a 23-hour day (DST)
    assert low <= datetime(2026, 3, 28, 23, 0, tzinfo=UTC) - timedelta(hours=1)
    assert high >= datetime(2026, 3, 29, 22, 0, tzinfo=UTC) + timedelta(hours=1)
    assert high - low < timedelta(days=2)
    wide_low, wide_high = day_bounds(date(2026, 3, 29), "Not/AZone")
    assert (wide_low, wide_high) == (
        datetime(2026, 3, 28, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    )


async def test_queue_plan_wins_and_unplanned_decisions_are_not_sampled(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    market_plan = await client.post(
        "/v1/sampling-plans",
        json=plan_body(queue=None, market="DE", rate=1.0, min_per_moderator=0),
        headers=auth(admin_key),
    )
    queue_plan = await client.post(
        "/v1/sampling-plans",
        json=plan_body(queue="de-vip", rate=0.0, min_per_moderator=1),
        headers=auth(admin_key),
    )
    await client.post(
        "/v1/sampling-plans",
        json=plan_body(queue="at-only", market="AT", rate=1.0, min_per_moderator=0),
        headers=auth(admin_key),
    )
    await insert_decisions(
        settings,
        decision_rows(4, prefix="reg", queue="de-regular")
        + decision_rows(10, prefix="vip", queue="de-vip", moderators=2)
        + decision_rows(3, prefix="fr", queue="fr-any", market="FR"),
    )
    # Every market with a plan (FR has none and is not sampled).
    job = await run_sampling(client, admin_key, sessionmaker, queue, settings)
    assert job["status"] == "complete", job
    assert [m["market"] for m in job["result"]["markets"]] == ["AT", "DE"]
    by_plan = Counter(str(a.plan_id) for a in await audits(sessionmaker))
    assert by_plan == {market_plan.json()["id"]: 4, queue_plan.json()["id"]: 2}


async def test_boosts_use_profiles_first_decisions_and_recent_accuracy(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    # Rate 0.02 with x50 for new moderators and for low accuracy: boosted ones are all in.
    await client.post(
        "/v1/sampling-plans",
        json=plan_body(
            queue=None,
            market="DE",
            rate=0.02,
            min_per_moderator=0,
            new_moderator_days=30,
            new_moderator_multiplier=50,
            low_accuracy_threshold=0.8,
            low_accuracy_multiplier=50,
            low_accuracy_window_days=7,
        ),
        headers=auth(admin_key),
    )
    async with sessionmaker() as session, session.begin():
        for reviewer, started in (("veteran", date(2020, 1, 1)), ("rookie", date(2026, 11, 20))):
            await session.execute(
                text("INSERT INTO reviewers (id, started_on) VALUES (:id, :started)"),
                {"id": reviewer, "started": started},
            )
    day = datetime(2026, 11, 24, 10, tzinfo=UTC)
    # "old-timer" and "sloppy" have no profile but decided 90 days ago: not new.
    # "newcomer" has neither: their first decision is today's.
    rows: list[dict[str, Any]] = [
        {"event_id": f"{moderator}-old", "queue": "q", "market": "DE",
         "moderator_id": moderator, "decided_at": day - timedelta(days=90)}
        for moderator in ("old-timer", "sloppy")
    ]  # fmt: skip
    for moderator in ("veteran", "rookie", "old-timer", "newcomer", "sloppy"):
        rows += [
            {"event_id": f"{moderator}-{n}", "queue": "q", "market": "DE",
             "moderator_id": moderator, "decided_at": day + timedelta(seconds=n)}
            for n in range(60)
        ]  # fmt: skip
    await insert_decisions(settings, rows)
    # "sloppy" had 1 of 4 audits correct last week. 20 correct golden items would lift that
    # to 0.875, above the threshold; they test the auditors, not the moderator, and are ignored.
    async with sessionmaker() as session, session.begin():
        for n, (outcome, golden) in enumerate(
            [("correct", False), ("incorrect", False), ("incorrect", False),
             ("incorrect", False), *[("correct", True)] * 20]
        ):  # fmt: skip
            audit_id = uuid.uuid4()
            verdict_day = date(2026, 11, 20)
            await session.execute(
                text(
                    "INSERT INTO audits (id, decision_id, reason, market, queue, language, "
                    "moderator_id, policy_labels, day, status, priority, is_golden) VALUES "
                    "(:id, :d, 'base', 'DE', 'q', 'de', 'sloppy', '{}', :day, 'completed', 0.5, "
                    ":golden)"
                ),
                {"id": audit_id, "d": 10_000_000 + n, "day": verdict_day, "golden": golden},
            )
            await session.execute(
                text(
                    "INSERT INTO verdicts (id, audit_id, decision_id, auditor_id, moderator_id, "
                    "market, queue, day, outcome, effective_outcome, policy_versions) VALUES "
                    "(:id, :audit, :d, 'aud', 'sloppy', 'DE', 'q', :day, :o, :o, '{}')"
                ),
                {"id": uuid.uuid4(), "audit": audit_id, "d": 10_000_000 + n, "day": verdict_day,
                 "o": outcome},
            )  # fmt: skip

    job = await run_sampling(client, admin_key, sessionmaker, queue, settings, market="DE")
    assert job["status"] == "complete", job
    per_moderator = job["result"]["markets"][0]["audits_per_moderator"]
    assert per_moderator["rookie"] == 60
    assert per_moderator["newcomer"] == 60
    assert per_moderator["sloppy"] == 60
    assert per_moderator.get("veteran", 0) < 15
    assert per_moderator.get("old-timer", 0) < 15


async def test_sampling_job_is_idempotent_and_reports_failures(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    settings: Settings,
) -> None:
    await client.post(
        "/v1/sampling-plans",
        json=plan_body(queue=None, market="DE", rate=0.5, min_per_moderator=1),
        headers=auth(admin_key),
    )
    await insert_decisions(settings, decision_rows(200, prefix="d"))
    response = await client.post(
        "/v1/audits/sample", json={"day": DAY, "market": "DE"}, headers=auth(admin_key)
    )
    job_id = uuid.UUID(response.json()["job_id"])
    state = worker_state(settings, sessionmaker)
    job = SampleDailyAudits(job_id=job_id, day=date(2026, 11, 24), market="DE")
    first = await sample_daily_audits(state, job)
    assert first is not None
    created = first["audits_created"]
    assert 60 < created < 140
    # Delivered again: the finished job is left alone.
    assert await sample_daily_audits(state, job) == {"status": "complete", "already_done": True}
    assert await count_rows(sessionmaker, SamplingRun) == 1
    # Even run again from scratch, it creates no second audit for any decision.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE background_jobs SET status = 'queued' WHERE id = :id"), {"id": job_id}
        )
    await sample_daily_audits(state, job)
    stored = (await client.get(f"/v1/jobs/{job_id}", headers=auth(admin_key))).json()
    assert stored["status"] == "complete"
    assert stored["result"]["audits_created"] == 0
    assert len(await audits(sessionmaker)) == created

    # A market whose stored time zone PostgreSQL does not know: the job fails, cleanly.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE markets SET time_zone = 'Mars/Olympus' WHERE code = 'DE'")
        )
    broken = await client.post(
        "/v1/audits/sample", json={"day": DAY, "market": "DE"}, headers=auth(admin_key)
    )
    broken_id = uuid.UUID(broken.json()["job_id"])
    await sample_daily_audits(
        state, SampleDailyAudits(job_id=broken_id, day=date(2026, 11, 24), market="DE")
    )
    failed = (await client.get(f"/v1/jobs/{broken_id}", headers=auth(admin_key))).json()
    assert failed["status"] == "failed"
    assert failed["error"]
    assert "Traceback" not in failed["error"]
    assert failed["finished_at"] is not None
    assert await count_rows(sessionmaker, SamplingRun) == 2  # the failed run left nothing


async def test_rerun_after_late_decisions_adds_only_what_they_call_for(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    await client.post(
        "/v1/sampling-plans",
        json=plan_body(queue=None, market="DE", rate=0.1, min_per_moderator=3),
        headers=auth(admin_key),
    )
    await insert_decisions(settings, decision_rows(500, prefix="early", moderators=5))
    first = await run_sampling(client, admin_key, sessionmaker, queue, settings, market="DE")
    before = {a.decision_id: a.reason for a in await audits(sessionmaker)}
    assert first["result"]["audits_created"] == len(before)
    await insert_decisions(
        settings,
        decision_rows(
            500, prefix="late", moderators=5, decided_at=datetime(2026, 11, 24, 15, tzinfo=UTC)
        ),
    )
    second = await run_sampling(client, admin_key, sessionmaker, queue, settings, market="DE")
    after = {a.decision_id: a.reason for a in await audits(sessionmaker)}
    assert before.items() <= after.items()
    added = {reason for decision_id, reason in after.items() if decision_id not in before}
    # The five early moderators had their minimum; the five late ones get theirs now.
    assert second["result"]["audits_created"] == len(after) - len(before)
    assert added <= {"base", "minimum"}
    per_moderator = Counter(a.moderator_id for a in await audits(sessionmaker))
    assert min(per_moderator.values()) >= 3
    assert len(per_moderator) == 10


async def test_scheduled_sampling_samples_each_market_once_after_one_oclock(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    settings: Settings,
) -> None:
    for market in ("DE", "US"):
        await client.post(
            "/v1/sampling-plans",
            json=plan_body(queue=None, market=market, rate=1.0, min_per_moderator=0),
            headers=auth(admin_key),
        )
    await insert_decisions(
        settings,
        decision_rows(3, prefix="de", market="DE")
        + decision_rows(
            2, prefix="us", market="US", decided_at=datetime(2026, 11, 24, 18, tzinfo=UTC)
        ),
    )
    seed = settings.sampling_seed
    # 00:30 in Berlin on the 25th: the 24th is not due yet (the 23rd is, and is empty).
    assert (
        await sample_due_markets(
            sessionmaker, seed_base=seed, now=datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
        )
        == 0
    )
    # 01:30 in Berlin on the 25th: the 24th is due there; in New York it is still the 24th.
    now = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    assert await sample_due_markets(sessionmaker, seed_base=seed, now=now) == 3
    assert await sample_due_markets(sessionmaker, seed_base=seed, now=now) == 0
    async with sessionmaker() as session:
        runs = sorted(
            (run.market or "", run.day.isoformat(), run.audits_created, run.job_id)
            for run in await session.scalars(select(SamplingRun))
        )
    assert runs == [
        ("DE", "2026-11-23", 0, None),
        ("DE", "2026-11-24", 3, None),
        ("US", "2026-11-23", 0, None),
    ]
    # 06:30 UTC on the 25th is 01:30 in New York: its 24th is due now.
    later = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
    assert await sample_due_markets(sessionmaker, seed_base=seed, now=later) == 2


async def test_sample_size_helper(client: httpx.AsyncClient, admin_key: str) -> None:
    response = await client.get(
        "/v1/sampling/sample-size",
        params={"expected_accuracy": 0.5, "margin": 0.05},
        headers=auth(admin_key),
    )
    assert response.status_code == 200
    assert response.json()["n"] == 385
    for params in (
        {"expected_accuracy": 0.5, "margin": 0},
        {"expected_accuracy": 1.2, "margin": 0.05},
        {"margin": 0.05},
        {"expected_accuracy": 0.5, "margin": 0.05, "extra": 1},
    ):
        assert_problem(
            await client.get("/v1/sampling/sample-size", params=params, headers=auth(admin_key)),
            422,
        )
