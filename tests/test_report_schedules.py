"""Report schedules: daylight-saving-correct slots, one snapshot per slot (also after downtime
and with two workers), immutable snapshots, ``report.ready`` to the schedule's channels only
(webhook and e-mail with the files attached), bad input and market scoping."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import openpyxl
import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from services.report_worker.worker import WorkerSettings as ReportWorkerSettings
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.deliveries.lifecycle import events_missing_deliveries
from shared.events import EventType, ReportReady, record_event
from shared.models import AuditLogEntry, Channel, Delivery
from shared.models.base import utcnow
from shared.models.report_schedules import ReportSchedule, ReportSnapshot, ReportSnapshotFile
from shared.report_schedules.runs import run_due_schedules
from shared.report_schedules.slots import latest_slot, local_instant, next_slot, report_period
from tests.conftest import SignedSender, auth, make_key, relay_all, run_worker_burst
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.mail import (
    RecordingMailServer,
    decoded,
    mail_settings,
    subparts,
)
from tests.support.problems import assert_problem
from tests.support.webhooks import WebhookReceiver, create_channel, notify

Sessions = async_sessionmaker[AsyncSession]
BERLIN = "Europe/Berlin"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- slots (pure, an injected clock) -----------------------------------------------------


def _daily_slots(start: datetime, count: int, at: time) -> list[datetime]:
    slots, instant = [], start
    for _ in range(count):
        instant = next_slot(instant, cadence="daily", at=at, timezone=BERLIN)
        slots.append(instant)
    return slots


@pytest.mark.no_db
def test_berlin_08_00_stays_08_00_local_across_both_daylight_saving_changes() -> None:
    spring = _daily_slots(datetime(2026, 3, 26, 12, tzinfo=UTC), 5, time(8))
    assert spring == [
        datetime(2026, 3, 27, 7, tzinfo=UTC),
        datetime(2026, 3, 28, 7, tzinfo=UTC),
        datetime(2026, 3, 29, 6, tzinfo=UTC),  # the change day: summer time already
        datetime(2026, 3, 30, 6, tzinfo=UTC),
        datetime(2026, 3, 31, 6, tzinfo=UTC),
    ]
    autumn = _daily_slots(datetime(2026, 10, 22, 12, tzinfo=UTC), 5, time(8))
    assert autumn == [
        datetime(2026, 10, 23, 6, tzinfo=UTC),
        datetime(2026, 10, 24, 6, tzinfo=UTC),
        datetime(2026, 10, 25, 7, tzinfo=UTC),  # winter time again
        datetime(2026, 10, 26, 7, tzinfo=UTC),
        datetime(2026, 10, 27, 7, tzinfo=UTC),
    ]
    # Once a day: every slot is a different local day, all at 08:00 local.
    from zoneinfo import ZoneInfo

    for slot in spring + autumn:
        assert slot.astimezone(ZoneInfo(BERLIN)).time() == time(8)


@pytest.mark.no_db
def test_02_30_on_the_change_days_runs_once_after_the_gap_and_at_the_first_occurrence() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(BERLIN)
    # Spring forward: 02:00 -> 03:00; 02:30 does not exist and runs at 03:00 CEST (01:00 UTC).
    assert local_instant(date(2026, 3, 29), time(2, 30), zone) == datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )
    spring = _daily_slots(datetime(2026, 3, 27, 12, tzinfo=UTC), 3, time(2, 30))
    assert spring == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST, the first instant after the gap
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    # Fall back: 03:00 -> 02:00; 02:30 happens twice and runs once, the first time (CEST).
    autumn = _daily_slots(datetime(2026, 10, 23, 12, tzinfo=UTC), 3, time(2, 30))
    assert autumn == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, not 02:30 CET (01:30 UTC)
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    # Right after the first 02:30, the second one is no slot: the next is the next day.
    assert next_slot(
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC), cadence="daily", at=time(2, 30), timezone=BERLIN
    ) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.no_db
def test_weekly_and_monthly_slots_and_the_periods_they_cover() -> None:
    # Weekly: Mondays; monthly: the 1st.
    monday = next_slot(
        datetime(2026, 3, 25, tzinfo=UTC), cadence="weekly", at=time(8), timezone=BERLIN
    )
    assert monday == datetime(2026, 3, 30, 6, tzinfo=UTC)
    first = next_slot(
        datetime(2026, 3, 2, tzinfo=UTC), cadence="monthly", at=time(8), timezone=BERLIN
    )
    assert first == datetime(2026, 4, 1, 6, tzinfo=UTC)
    assert latest_slot(
        datetime(2026, 3, 31, tzinfo=UTC), cadence="monthly", at=time(8), timezone=BERLIN
    ) == datetime(2026, 3, 1, 7, tzinfo=UTC)
    assert report_period(monday, cadence="daily", timezone=BERLIN) == (
        date(2026, 3, 29),
        date(2026, 3, 29),
    )
    assert report_period(monday, cadence="weekly", timezone=BERLIN) == (
        date(2026, 3, 23),
        date(2026, 3, 29),
    )
    assert report_period(first, cadence="monthly", timezone=BERLIN) == (
        date(2026, 3, 1),
        date(2026, 3, 31),
    )


# --- API -----------------------------------------------------------------------------------


def schedule_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "DE accuracy",
        "report": "accuracy",
        "params": {"group_by": "market", "market": "DE"},
        "cadence": "daily",
        "at": "08:00",
        "timezone": BERLIN,
        "lang": "en",
        "formats": ["xlsx", "csv"],
        "channel_ids": [],
    }
    body.update(overrides)
    return body


async def create_schedule(client: httpx.AsyncClient, key: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/report-schedules", json=schedule_body(**overrides), headers=auth(key)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def error_locs(response: httpx.Response) -> list[list[Any]]:
    body = assert_problem(response, 422)
    return [error["loc"] for error in body["errors"]]


async def test_a_schedule_is_created_read_changed_and_deleted_and_audited(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    manager = await make_key(sessionmaker, "manager")
    before = utcnow()
    created = await create_schedule(client, manager)
    next_run = datetime.fromisoformat(created["next_run_at"])
    assert before < next_run <= before + timedelta(days=1)
    assert created["at"] == "08:00"
    assert created["params"] == {"group_by": "market", "market": "DE"}
    assert created["enabled"] is True

    listed = await client.get("/v1/report-schedules", headers=auth(manager))
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    one = await client.get(f"/v1/report-schedules/{created['id']}", headers=auth(admin_key))
    assert one.json() == created

    paused = await client.patch(
        f"/v1/report-schedules/{created['id']}", json={"enabled": False}, headers=auth(manager)
    )
    assert paused.status_code == 200
    assert paused.json()["enabled"] is False
    moved = await client.patch(
        f"/v1/report-schedules/{created['id']}",
        json={"enabled": True, "at": "23:30", "cadence": "weekly"},
        headers=auth(manager),
    )
    assert moved.status_code == 200, moved.text
    monday = datetime.fromisoformat(moved.json()["next_run_at"])
    from zoneinfo import ZoneInfo

    local = monday.astimezone(ZoneInfo(BERLIN))
    assert (local.weekday(), local.time()) == (0, time(23, 30))

    duplicate = await client.post(
        "/v1/report-schedules", json=schedule_body(), headers=auth(manager)
    )
    assert_problem(duplicate, 409)
    # Only managers and admins schedule.
    auditor = await make_key(sessionmaker, "qa_auditor")
    assert_problem(
        await client.post("/v1/report-schedules", json=schedule_body(), headers=auth(auditor)), 403
    )

    deleted = await client.delete(f"/v1/report-schedules/{created['id']}", headers=auth(manager))
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/report-schedules/{created['id']}", headers=auth(manager))
    assert_problem(gone, 404)
    async with sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_id == created["id"])
                .order_by(AuditLogEntry.id)
            )
        )
    assert actions == [
        "report_schedule.created",
        "report_schedule.updated",
        "report_schedule.updated",
        "report_schedule.deleted",
    ]


async def test_bad_schedules_are_422_naming_the_field(
    client: httpx.AsyncClient, admin_key: str, receiver: WebhookReceiver, sessionmaker: Sessions
) -> None:
    async def post(**overrides: Any) -> httpx.Response:
        return await client.post(
            "/v1/report-schedules", json=schedule_body(**overrides), headers=auth(admin_key)
        )

    assert ["at"] in error_locs(await post(at="25:00"))
    assert ["at"] in error_locs(await post(at="8am"))
    bad_zone = await post(timezone="Mars/Olympus_Mons")
    assert ["timezone"] in error_locs(bad_zone)
    assert "Mars/Olympus_Mons" not in bad_zone.text
    assert ["cadence"] in error_locs(await post(cadence="hourly"))
    assert ["report"] in error_locs(await post(report="population"))
    assert ["lang"] in error_locs(await post(lang="fr"))
    # The report's own query model checks params: a bad or unknown one is named.
    assert ["params", "group_by"] in error_locs(await post(params={"group_by": "team"}))
    assert ["params", "group_by"] in error_locs(await post(params={}))
    assert ["params", "colour"] in error_locs(
        await post(params={"group_by": "market", "colour": "red"})
    )
    assert ["params", "interval"] in error_locs(
        await post(report="trend", params={"interval": "year"})
    )
    assert ["params", "format"] in error_locs(
        await post(params={"group_by": "market", "format": "csv"})
    )
    assert ["params", "to"] in error_locs(
        await post(params={"group_by": "market", "from": "2026-11-01"})
    )
    assert ["params", "to"] in error_locs(
        await post(params={"group_by": "market", "from": "2001-01-01", "to": "2026-11-01"})
    )
    assert ["params"] in error_locs(
        await post(params={"group_by": "market", "from": "2026-11-02", "to": "2026-11-01"})
    )
    # Formats: what the report writes; pptx only for the briefing.
    assert ["formats", 0] in error_locs(await post(formats=["pptx"]))
    assert ["formats", 0] in error_locs(await post(formats=["pdf"]))
    briefing = await post(name="briefing", report="briefing", params={}, formats=["pptx", "xlsx"])
    assert briefing.status_code == 201, briefing.text
    # Channels: known team channels only.
    assert ["channel_ids", 0] in error_locs(await post(channel_ids=[str(uuid.uuid4())]))
    team = await create_channel(client, admin_key, receiver.url, name="team")
    personal = uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        session.add(
            Channel(
                id=personal,
                name="anna's e-mail",
                kind="email",
                target_encrypted=b"sealed",
                target_hint="a***@example.com",
                language="en",
                events=[],
                reviewer_id="anna",
            )
        )
    assert ["channel_ids", 1] in error_locs(await post(channel_ids=[team, str(personal)]))
    ok = await post(channel_ids=[team])
    assert ok.status_code == 201, ok.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ReportSchedule)) == 2


async def test_market_scoped_keys_schedule_and_read_only_their_markets(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions, settings: Settings
) -> None:
    german = await make_key(sessionmaker, "manager", markets=["DE"])
    french = await make_key(sessionmaker, "manager", markets=["FR"])
    assert_problem(
        await client.post(
            "/v1/report-schedules",
            json=schedule_body(params={"group_by": "market", "market": "FR"}),
            headers=auth(german),
        ),
        403,
    )
    assert ["params", "market"] in error_locs(
        await client.post(
            "/v1/report-schedules",
            json=schedule_body(params={"group_by": "market"}),
            headers=auth(german),
        )
    )
    de = await create_schedule(client, german)
    everywhere = await create_schedule(
        client, admin_key, name="all markets", params={"group_by": "market"}
    )
    listed = await client.get("/v1/report-schedules", headers=auth(german))
    assert [item["id"] for item in listed.json()["items"]] == [de["id"]]
    assert_problem(
        await client.get(f"/v1/report-schedules/{everywhere['id']}", headers=auth(german)), 404
    )
    assert_problem(await client.get(f"/v1/report-schedules/{de['id']}", headers=auth(french)), 404)

    await make_due(sessionmaker, days_ago=1)
    assert await run_due_schedules(sessionmaker, settings=settings, now=utcnow()) == 2
    snapshots = await client.get("/v1/report-snapshots", headers=auth(german))
    assert [item["schedule_id"] for item in snapshots.json()["items"]] == [de["id"]]
    async with sessionmaker() as session:
        other = await session.scalar(
            select(ReportSnapshot.id).where(
                ReportSnapshot.schedule_id == uuid.UUID(everywhere["id"])
            )
        )
    assert_problem(await client.get(f"/v1/report-snapshots/{other}", headers=auth(german)), 404)
    assert_problem(
        await client.get(f"/v1/report-snapshots/{other}/files/xlsx", headers=auth(french)), 404
    )
    assert (await client.get(f"/v1/report-snapshots/{other}", headers=auth(admin_key))).is_success
    # A moderator key gets no snapshot (a snapshot holds every moderator's numbers).
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    assert_problem(await client.get(f"/v1/report-snapshots/{other}", headers=auth(moderator)), 403)


# --- runs ----------------------------------------------------------------------------------


async def make_due(sessionmaker: Sessions, *, days_ago: float) -> None:
    """Every schedule's next_run_at ``days_ago`` in the past (the worker was down)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ReportSchedule).values(next_run_at=utcnow() - timedelta(days=days_ago))
        )


async def snapshots_of(sessionmaker: Sessions) -> list[ReportSnapshot]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(ReportSnapshot).order_by(ReportSnapshot.slot_at)))


async def test_a_run_missed_during_downtime_runs_once_for_the_latest_slot(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions, settings: Settings
) -> None:
    created = await create_schedule(client, admin_key)
    await make_due(sessionmaker, days_ago=5)
    now = utcnow()
    assert await run_due_schedules(sessionmaker, settings=settings, now=now) == 1
    assert await run_due_schedules(sessionmaker, settings=settings, now=now) == 0
    [snapshot] = await snapshots_of(sessionmaker)
    slot = latest_slot(now, cadence="daily", at=time(8), timezone=BERLIN)
    assert snapshot.slot_at == slot
    day_from, _ = report_period(slot, cadence="daily", timezone=BERLIN)
    assert snapshot.params["from"] == day_from.isoformat() == snapshot.params["to"]
    async with sessionmaker() as session:
        schedule = await session.get(ReportSchedule, uuid.UUID(created["id"]))
        assert schedule is not None
        assert now < schedule.next_run_at <= now + timedelta(days=1)
        assert schedule.next_run_at == next_slot(now, cadence="daily", at=time(8), timezone=BERLIN)
    # A paused schedule does not run.
    await client.patch(
        f"/v1/report-schedules/{created['id']}", json={"enabled": False}, headers=auth(admin_key)
    )
    await make_due(sessionmaker, days_ago=1)
    assert await run_due_schedules(sessionmaker, settings=settings, now=utcnow()) == 0


async def test_two_workers_running_a_due_schedule_at_once_store_one_snapshot(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions, settings: Settings
) -> None:
    await create_schedule(client, admin_key, formats=["xlsx", "csv"])
    await make_due(sessionmaker, days_ago=2)
    now = utcnow()
    results = await asyncio.gather(
        *(run_due_schedules(sessionmaker, settings=settings, now=now) for _ in range(4))
    )
    assert sorted(results) == [0, 0, 0, 1]
    assert len(await snapshots_of(sessionmaker)) == 1


JUDGED = [
    Judged({"market": "DE", "decided_at": "2026-11-24T10:00:00Z"}),
    Judged({"market": "DE", "decided_at": "2026-11-24T11:00:00Z"}),
    Judged({"market": "DE", "decided_at": "2026-11-24T12:00:00Z"}, verdict=incorrect("approve")),
]


async def test_a_snapshot_never_changes_when_later_verdicts_change_the_numbers(
    client: httpx.AsyncClient,
    sender: SignedSender,
    admin_key: str,
    sessionmaker: Sessions,
    settings: Settings,
    queue: ArqRedis,
) -> None:
    await seed_judged(client, sender, sessionmaker, JUDGED)
    params = {"group_by": "market", "market": "DE", "from": "2026-11-20", "to": "2026-11-28"}
    created = await create_schedule(client, admin_key, params=params, formats=["xlsx", "csv"])
    await make_due(sessionmaker, days_ago=1)
    assert await run_due_schedules(sessionmaker, settings=settings, now=utcnow()) == 1
    [stored] = await snapshots_of(sessionmaker)

    first = await client.get(f"/v1/report-snapshots/{stored.id}", headers=auth(admin_key))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["data"]["rows"] == [
        {
            "key": "DE",
            "audited": 3,
            "correct": 2,
            "accuracy": pytest.approx(2 / 3),
            "ci_low": pytest.approx(body["data"]["rows"][0]["ci_low"]),
            "ci_high": pytest.approx(body["data"]["rows"][0]["ci_high"]),
        }
    ]
    assert body["params"]["from"] == "2026-11-20"  # explicit dates win over the slot's period
    assert sorted(file["format"] for file in body["files"]) == ["csv", "xlsx"]
    xlsx = await client.get(f"/v1/report-snapshots/{stored.id}/files/xlsx", headers=auth(admin_key))
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"] == XLSX
    assert 'filename="' in xlsx.headers["content-disposition"]
    assert xlsx.headers["content-disposition"].endswith('.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).worksheets[0]
    assert any(cell.value == "DE" for row in sheet.iter_rows() for cell in row)
    csv = await client.get(f"/v1/report-snapshots/{stored.id}/files/csv", headers=auth(admin_key))
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "key,audited,correct,accuracy,ci_low,ci_high"
    as_json = await client.get(
        f"/v1/report-snapshots/{stored.id}/files/json", headers=auth(admin_key)
    )
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json() == body["data"]
    assert_problem(
        await client.get(f"/v1/report-snapshots/{stored.id}/files/pptx", headers=auth(admin_key)),
        404,
    )
    assert_problem(
        await client.get(f"/v1/report-snapshots/{stored.id}/files/doc", headers=auth(admin_key)),
        422,
    )

    # Later verdicts change the numbers of that period...
    later = [
        Judged({"market": "DE", "decided_at": "2026-11-25T10:00:00Z"}, verdict=incorrect("approve"))
    ]
    await seed_judged(client, sender, sessionmaker, later, prefix="late")
    live = await client.get(
        "/v1/reports/accuracy",
        params={"group_by": "market", "market": "DE", "from": "2026-11-20", "to": "2026-11-28"},
        headers=auth(admin_key),
    )
    assert live.json()["rows"][0]["audited"] == 4
    # ...but not the snapshot: its data and its files stay as they were.
    again = await client.get(f"/v1/report-snapshots/{stored.id}", headers=auth(admin_key))
    assert again.json() == body
    xlsx_again = await client.get(
        f"/v1/report-snapshots/{stored.id}/files/xlsx", headers=auth(admin_key)
    )
    assert xlsx_again.content == xlsx.content
    # No endpoint changes a snapshot.
    for method in ("PUT", "PATCH", "DELETE"):
        answer = await client.request(
            method, f"/v1/report-snapshots/{stored.id}", headers=auth(admin_key)
        )
        assert answer.status_code == 405

    # A new run (by hand: a job) sees the new numbers.
    run = await client.post(f"/v1/report-schedules/{created['id']}/run", headers=auth(admin_key))
    assert run.status_code == 202, run.text
    job_id = run.json()["job_id"]
    await relay_all(sessionmaker, queue)
    await run_worker_burst(ReportWorkerSettings, settings)
    job = await client.get(f"/v1/jobs/{job_id}", headers=auth(admin_key))
    assert job.json()["status"] == "complete", job.text
    new_id = job.json()["result"]["snapshot_id"]
    fresh = await client.get(f"/v1/report-snapshots/{new_id}", headers=auth(admin_key))
    assert fresh.json()["slot_at"] is None
    assert fresh.json()["data"]["rows"][0]["audited"] == 4
    listed = await client.get(
        "/v1/report-snapshots", params={"schedule_id": created["id"]}, headers=auth(admin_key)
    )
    assert [item["id"] for item in listed.json()["items"]] == [new_id, str(stored.id)]


# --- report.ready -------------------------------------------------------------------------


async def test_report_ready_reaches_the_schedules_channels_only_with_the_files_by_email(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
    settings: Settings,
    queue: ArqRedis,
    receiver: WebhookReceiver,
    mail_server: tuple[RecordingMailServer, int],
) -> None:
    handler, port = mail_server
    named = await create_channel(client, admin_key, receiver.url + "/named", name="named")
    # Subscribed to report.ready, but not named by the schedule: gets nothing.
    await create_channel(
        client, admin_key, receiver.url + "/other", name="other", events=("report.ready",)
    )
    mailbox = await create_channel(
        client, admin_key, "qa-leads@example.com", name="leads", kind="email", secret=None
    )
    await create_schedule(client, admin_key, formats=["xlsx"], channel_ids=[named, mailbox])
    await make_due(sessionmaker, days_ago=1)
    assert await run_due_schedules(sessionmaker, settings=settings, now=utcnow()) == 1
    [snapshot] = await snapshots_of(sessionmaker)
    for _ in range(3):
        await notify(mail_settings(settings, port), sessionmaker, queue)
        async with sessionmaker() as session:
            pending = await session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
            )
        if not pending:
            break

    assert [request.path for request in receiver.requests] == ["/hooks/plumbline/named"]
    posted = orjson.loads(receiver.requests[0].body)
    assert posted["type"] == "report.ready"
    assert posted["data"]["id"] == str(snapshot.id)
    assert posted["data"]["attachments"] == []  # the files are not copied into the event

    [(envelope, message)] = handler.messages
    assert envelope.rcpt_tos == ["qa-leads@example.com"]
    async with sessionmaker() as session:
        stored = await session.get(ReportSnapshotFile, (snapshot.id, "xlsx"))
        assert stored is not None
    attachments = [
        part for part in message.walk() if part.get_content_disposition() == "attachment"
    ]
    assert [part.get_filename() for part in attachments] == [stored.filename]
    assert attachments[0].get_content_type() == XLSX
    assert decoded(attachments[0]) == stored.content
    text = "".join(
        decoded(part).decode() for part in message.walk() if part.get_content_type() == "text/plain"
    )
    assert f"/v1/report-snapshots/{snapshot.id}" in text
    assert subparts(message)


async def test_the_sweep_finds_an_addressed_event_missing_a_delivery_and_only_that(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
    settings: Settings,
    queue: ArqRedis,
    receiver: WebhookReceiver,
) -> None:
    named = await create_channel(client, admin_key, receiver.url + "/named", name="named")
    await create_channel(
        client, admin_key, receiver.url + "/other", name="other", events=("report.ready",)
    )
    async with sessionmaker() as session, session.begin():
        event = await record_event(
            session,
            type=EventType.REPORT_READY,
            data=ReportReady(
                id=uuid.uuid4(),
                schedule_id=None,
                title="Weekly",
                report="trend",
                period_from="2026-11-16",
                period_to="2026-11-22",
                formats=[],
            ),
            channel_ids=[uuid.UUID(named)],
        )

    async def missing() -> list[uuid.UUID]:
        async with sessionmaker() as session:
            return await events_missing_deliveries(
                session,
                since=utcnow() - timedelta(hours=1),
                until=utcnow() + timedelta(minutes=1),
                supported_kinds=SUPPORTED_KINDS,
                limit=10,
            )

    assert await missing() == [event.id]  # its fan-out has not run yet
    await notify(settings, sessionmaker, queue)
    # Delivered to the named channel; the subscribed one was never owed it.
    assert await missing() == []
    assert [request.path for request in receiver.requests] == ["/hooks/plumbline/named"]


async def test_every_report_runs_on_schedule_and_serves_its_files_with_their_types(
    client: httpx.AsyncClient,
    sender: SignedSender,
    admin_key: str,
    sessionmaker: Sessions,
    settings: Settings,
) -> None:
    await seed_judged(client, sender, sessionmaker, JUDGED)
    period = {"from": "2026-11-20", "to": "2026-11-28"}
    await create_schedule(
        client,
        admin_key,
        name="briefing",
        report="briefing",
        params={"market": "DE", **period},
        formats=["pptx", "xlsx"],
        lang="de",
    )
    await create_schedule(
        client,
        admin_key,
        name="trend",
        report="trend",
        params={"interval": "day", **period},
        formats=["csv", "png"],
        cadence="weekly",
    )
    await create_schedule(
        client,
        admin_key,
        name="comparison",
        report="comparison",
        params={"dimension": "queue", "target": 0.9, **period},
        formats=["xlsx"],
        cadence="monthly",
    )
    await make_due(sessionmaker, days_ago=40)
    assert await run_due_schedules(sessionmaker, settings=settings, now=utcnow()) == 3
    expected = {
        "briefing": {
            "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "xlsx": XLSX,
        },
        "trend": {"csv": "text/csv; charset=utf-8", "png": "image/png"},
        "comparison": {"xlsx": XLSX},
    }
    for snapshot in await snapshots_of(sessionmaker):
        read = await client.get(f"/v1/report-snapshots/{snapshot.id}", headers=auth(admin_key))
        assert read.status_code == 200, read.text
        assert read.json()["data"]["day_from"] == "2026-11-20"
        for file_format, content_type in expected[snapshot.report].items():
            served = await client.get(
                f"/v1/report-snapshots/{snapshot.id}/files/{file_format}", headers=auth(admin_key)
            )
            assert served.status_code == 200, served.text
            assert served.headers["content-type"] == content_type
            disposition = served.headers["content-disposition"]
            assert disposition.startswith('attachment; filename="')
            assert disposition.endswith(f'.{file_format}"')
            assert served.content
    briefing = next(s for s in await snapshots_of(sessionmaker) if s.report == "briefing")
    assert briefing.lang == "de"
    assert briefing.data["headline"]["audited"] == 3


async def test_a_run_that_fails_midway_loses_no_slot(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await create_schedule(client, admin_key, formats=["xlsx"])
    await make_due(sessionmaker, days_ago=1)
    async with sessionmaker() as session:
        due = await session.scalar(
            select(ReportSchedule.next_run_at).where(ReportSchedule.id == uuid.UUID(created["id"]))
        )

    def broken_writer(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("the workbook writer crashed")

    # The worker dies while writing the file, after the report was computed.
    monkeypatch.setattr("shared.reports.exports.accuracy_xlsx", broken_writer)
    now = utcnow()
    assert await run_due_schedules(sessionmaker, settings=settings, now=now) == 0
    assert await snapshots_of(sessionmaker) == []
    async with sessionmaker() as session:
        still_due = await session.scalar(
            select(ReportSchedule.next_run_at).where(ReportSchedule.id == uuid.UUID(created["id"]))
        )
        entries = await session.scalar(
            select(func.count())
            .select_from(AuditLogEntry)
            .where(AuditLogEntry.action == "report_snapshot.created")
        )
    assert still_due == due
    assert entries == 0
    # The next run (the writer works again) stores the slot.
    monkeypatch.undo()
    assert await run_due_schedules(sessionmaker, settings=settings, now=now) == 1
    [snapshot] = await snapshots_of(sessionmaker)
    assert snapshot.slot_at == latest_slot(now, cadence="daily", at=time(8), timezone=BERLIN)
