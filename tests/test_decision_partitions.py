"""Decision partitions and retention: months created ahead, rows of a new month moved out of
DEFAULT, expired months dropped with their unaudited decisions and keys, audited decisions
kept and readable, rollups (and so the reports over old days) untouched, idempotent runs.

Times are relative to now (the worker job uses the clock): the old decisions lie in months
entirely older than the 60-day retention, the recent ones in the current window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.decision_partitions import run_maintain_decision_partitions
from shared.analytics.rollups import apply_pending_intake_batches
from shared.core.settings import Settings
from shared.decisions.partitions import (
    DECISION_REFERENCES,
    MonthPartition,
    add_months,
    decision_partitions,
    ensure_decision_partitions,
)
from shared.models import Base, Decision, DecisionEventKey, QualityRollup
from tests.conftest import SignedSender, auth, decision_event
from tests.support.audits import make_audits
from tests.support.workers import worker_state

Sessions = async_sessionmaker[AsyncSession]
RETENTION_DAYS = 60


@pytest.fixture(autouse=True)
async def restore_partitions(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """The months a test creates or drops are put back as the migration left them, so
    other tests meet the same partitions."""
    if request.node.get_closest_marker("no_db"):
        yield
        return
    sessionmaker: Sessions = request.getfixturevalue("sessionmaker")
    async with sessionmaker() as session:
        before, _ = await decision_partitions(session)
    yield
    async with sessionmaker() as session, session.begin():
        await session.execute(text("TRUNCATE decisions, decision_event_keys"))
        after, _ = await decision_partitions(session)
        for partition in set(after) - set(before):
            await session.execute(text(f"DROP TABLE {partition.name}"))
        for partition in set(before) - set(after):
            await session.execute(
                text(
                    f"CREATE TABLE {partition.name} PARTITION OF decisions FOR VALUES "
                    f"FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')"
                )
            )


def month_of(moment: datetime) -> date:
    return moment.date().replace(day=1)


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def partition_of(sessionmaker: Sessions) -> dict[str, str]:
    """Each decision's event id and the partition holding it."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT event_id, tableoid::regclass::text FROM decisions")
        )
        return {row[0]: row[1] for row in rows}


async def keys(sessionmaker: Sessions) -> set[str]:
    async with sessionmaker() as session:
        return set(await session.scalars(select(DecisionEventKey.event_id)))


async def intake_rollups(client: httpx.AsyncClient, key: str, day_from: date) -> list[Any]:
    response = await client.get(
        "/v1/intake-rollups",
        params={"from": day_from.isoformat(), "limit": 1000},
        headers=auth(key),
    )
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


@pytest.mark.no_db
def test_every_table_that_refers_to_decisions_keeps_them_from_retention() -> None:
    referring = {
        table.name for table in Base.metadata.tables.values() if "decision_id" in table.columns
    }
    # The key table's rows are the decisions' own (retention deletes them with them).
    assert referring - {"decision_event_keys"} == set(DECISION_REFERENCES)


@pytest.mark.no_db
def test_month_partitions_are_named_and_bounded_by_utc_month() -> None:
    december = MonthPartition(date(2026, 12, 1))
    assert december.name == "decisions_p2026_12"
    assert (december.start, december.end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert MonthPartition.named("decisions_p2026_12") == december
    assert MonthPartition.named("decisions_default") is None
    assert add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)


async def test_intake_never_lacks_a_partition_and_a_new_month_takes_its_rows_from_default(
    sender: SignedSender, sessionmaker: Sessions
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=400)
    response = await sender.post(
        {"events": [decision_event(1, decided_at=at(old)), decision_event(2, decided_at=at(now))]}
    )
    assert response.json() == {"accepted": 2, "duplicates": 0}
    assert (await partition_of(sessionmaker))["evt-1"] == "decisions_default"

    async with sessionmaker() as session, session.begin():
        created = await ensure_decision_partitions(session, today=old.date(), months_ahead=0)
    assert created == [MonthPartition(month_of(old)).name]
    placed = await partition_of(sessionmaker)
    assert placed["evt-1"] == MonthPartition(month_of(old)).name
    assert placed["evt-2"] == MonthPartition(month_of(now)).name

    # The key still holds across partitions: the same event again is a duplicate.
    again = await sender.post({"events": [decision_event(1, decided_at=at(old))]})
    assert again.json() == {"accepted": 0, "duplicates": 1}
    async with sessionmaker() as session, session.begin():
        assert await ensure_decision_partitions(session, today=old.date(), months_ahead=0) == []


async def test_the_job_creates_months_ahead_and_running_it_again_changes_nothing(
    settings: Settings, sessionmaker: Sessions
) -> None:
    ahead = settings.model_copy(update={"decision_partitions_ahead_months": 5})
    this_month = datetime.now(UTC).date().replace(day=1)
    await run_maintain_decision_partitions(worker_state(ahead, sessionmaker))
    async with sessionmaker() as session:
        months, has_default = await decision_partitions(session)
    assert has_default
    assert {add_months(this_month, n) for n in range(6)} <= {p.month for p in months}
    assert await run_maintain_decision_partitions(worker_state(ahead, sessionmaker)) == 0
    async with sessionmaker() as session:
        assert (await decision_partitions(session))[0] == months


async def test_retention_drops_old_unaudited_decisions_and_keeps_audited_ones(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessions,
    settings: Settings,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Two different months, each ending more than RETENTION_DAYS ago.
    expired = [now - timedelta(days=160), now - timedelta(days=100)]
    in_default = now - timedelta(days=400)
    recent = now - timedelta(days=1)
    # Unaudited: two in each expired month, one in DEFAULT, one recent.
    events = [
        decision_event(n, decided_at=at(moment))
        for n, moment in enumerate([*expired, *expired, in_default, recent], start=1)
    ]
    assert (await sender.post({"events": events})).json()["accepted"] == 6
    # Audited: one in the first expired month, one in DEFAULT.
    audited_events = [
        decision_event(10, decided_at=at(expired[0])),
        decision_event(11, decided_at=at(in_default)),
    ]
    await make_audits(sender, sessionmaker, audited_events)
    async with sessionmaker() as session, session.begin():
        for moment in expired:
            await ensure_decision_partitions(session, today=moment.date(), months_ahead=0)
        assert await apply_pending_intake_batches(session) == 8
    placed = await partition_of(sessionmaker)
    assert placed["evt-10"] == MonthPartition(month_of(expired[0])).name
    rollups_before = await intake_rollups(client, admin_key, in_default.date())
    assert sum(row["decisions"] for row in rollups_before) == 8
    async with sessionmaker() as session:
        quality_before = (await session.execute(select(QualityRollup.__table__))).all()
        rows = (await session.execute(select(Decision.event_id, Decision.id))).all()
        ids = {event_id: decision_id for event_id, decision_id in rows}

    retaining = settings.model_copy(update={"decision_retention_days": RETENTION_DAYS})
    changed = await run_maintain_decision_partitions(worker_state(retaining, sessionmaker))
    assert changed >= 2

    placed = await partition_of(sessionmaker)
    assert set(placed) == {"evt-10", "evt-11", "evt-6"}
    assert placed["evt-10"] == placed["evt-11"] == "decisions_default"
    assert await keys(sessionmaker) == {"evt-10", "evt-11", "evt-6"}
    async with sessionmaker() as session:
        months, _ = await decision_partitions(session)
    assert not {month_of(moment) for moment in expired} & {p.month for p in months}

    # Audited decisions stay readable, by id and through their audit.
    response = await client.get(f"/v1/decisions/{ids['evt-10']}", headers=auth(admin_key))
    assert response.status_code == 200, response.text
    assert response.json()["decided_at"] == at(expired[0])
    listed = await client.get(
        "/v1/decisions", params={"to": at(now - timedelta(days=100))}, headers=auth(admin_key)
    )
    assert {item["event_id"] for item in listed.json()["items"]} == {"evt-10", "evt-11"}
    audits = await client.get("/v1/audits", headers=auth(admin_key))
    assert audits.status_code == 200, audits.text
    for audit in audits.json()["items"]:
        read = await client.get(f"/v1/audits/{audit['id']}", headers=auth(admin_key))
        assert read.status_code == 200, read.text
        assert read.json()["decision"]["id"] in {ids["evt-10"], ids["evt-11"]}

    # The reports over old days read rollups, which retention leaves alone.
    assert await intake_rollups(client, admin_key, in_default.date()) == rollups_before
    async with sessionmaker() as session:
        assert (await session.execute(select(QualityRollup.__table__))).all() == quality_before

    # A second run changes nothing.
    assert await run_maintain_decision_partitions(worker_state(retaining, sessionmaker)) == 0
    assert await partition_of(sessionmaker) == placed
    assert await keys(sessionmaker) == {"evt-10", "evt-11", "evt-6"}

    # A dropped event sent again is new (its key went with it); a kept one is a duplicate.
    again = await sender.post(
        {"events": [decision_event(1, decided_at=at(expired[0])), audited_events[0]]}
    )
    assert again.json() == {"accepted": 1, "duplicates": 1}


async def test_retention_unset_keeps_every_decision(
    sender: SignedSender, sessionmaker: Sessions, settings: Settings
) -> None:
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3000)
    await sender.post({"events": [decision_event(1, decided_at=at(old))]})
    assert settings.decision_retention_days is None
    await run_maintain_decision_partitions(worker_state(settings, sessionmaker))
    assert set(await partition_of(sessionmaker)) == {"evt-1"}


@pytest.mark.no_db
def test_retention_days_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="decision_retention_days"):
        Settings(decision_retention_days=0)
    assert Settings(decision_retention_days=1).decision_retention_days == 1
