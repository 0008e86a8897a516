"""Migrations: upgrade from empty, downgrade to empty, and models that match the schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.audit_api.decisions.writer import STORE_DECISIONS, store_arguments
from shared.core.migrate import alembic_config, include_object, upgrade_to_head
from shared.decisions.partitions import MonthPartition, add_months
from shared.models import Base
from shared.schemas.decisions import DecisionEvent
from tests.conftest import decision_event, scratch_database

pytestmark = pytest.mark.no_db


@pytest.fixture
def empty_database(server_database_url: str) -> Iterator[str]:
    with scratch_database(server_database_url, "plumbline_migrate") as url:
        yield url


def _inspect(url: str, check: Any) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(check)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include_object}
    )
    return list(compare_metadata(context, Base.metadata))


def test_upgrade_from_empty_matches_the_models(empty_database: str) -> None:
    upgrade_to_head(empty_database)
    tables = _inspect(empty_database, _tables)
    assert set(Base.metadata.tables) <= tables
    assert _inspect(empty_database, _diff) == []


def test_downgrade_to_empty_and_up_again(empty_database: str) -> None:
    upgrade_to_head(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    assert _inspect(empty_database, _tables) <= {"alembic_version"}
    upgrade_to_head(empty_database)
    assert set(Base.metadata.tables) <= _inspect(empty_database, _tables)


# Decisions as 0007 stored them: two months of history, a third far back, ids from IDENTITY.
_OLD_DECISIONS = [
    ("evt-1", "2026-09-03T10:00:00+00:00"),
    ("evt-2", "2026-09-30T23:59:59+00:00"),
    ("evt-3", "2026-10-01T00:00:00+00:00"),
    ("evt-4", "2024-02-29T12:00:00+00:00"),
]
_SOURCE = "00000000-0000-0000-0000-0000000000aa"


async def _insert_old_decisions(url: str) -> None:
    connection = await asyncpg.connect(url.replace("+asyncpg", "", 1))
    try:
        await connection.executemany(
            "INSERT INTO decisions (source_id, event_id, content_id, content_type, queue, "
            "market, language, moderator_id, action, policy_labels, decided_at, metadata, "
            "intake_batch_id) VALUES ($1::uuid, $2, 'c', 'video', 'q', 'DE', 'de', 'mod-1', "
            "'remove', '{}', $3::timestamptz, '{}', $1::uuid)",
            [(_SOURCE, event_id, datetime.fromisoformat(at)) for event_id, at in _OLD_DECISIONS],
        )
    finally:
        await connection.close()


async def _decisions(url: str) -> list[tuple[int, str, str]]:
    """(id, event_id, partition) of every decision, by id."""
    connection = await asyncpg.connect(url.replace("+asyncpg", "", 1))
    try:
        rows = await connection.fetch(
            "SELECT id, event_id, tableoid::regclass::text AS part FROM decisions ORDER BY id"
        )
        return [(row["id"], row["event_id"], row["part"]) for row in rows]
    finally:
        await connection.close()


async def _store_through_intake(url: str, event_ids: list[str]) -> list[str]:
    """The intake statement itself (what the API runs) for ``event_ids``; the stored ones."""
    events = [
        decision_event(n, event_id=event_id, decided_at="2026-09-15T00:00:00Z")
        for n, event_id in enumerate(sorted(event_ids))
    ]
    parsed = [DecisionEvent.model_validate(event) for event in events]
    connection = await asyncpg.connect(url.replace("+asyncpg", "", 1))
    try:
        rows = await connection.fetch(
            STORE_DECISIONS,
            *store_arguments(source_id=uuid.UUID(_SOURCE), batch_id=uuid.uuid4(), events=parsed),
        )
        return sorted(row["event_id"] for row in rows)
    finally:
        await connection.close()


def test_0008_partitions_an_existing_table_and_back(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0007")
    asyncio.run(_insert_old_decisions(empty_database))
    before = asyncio.run(_decisions(empty_database))
    assert [event_id for _, event_id, _ in before] == ["evt-1", "evt-2", "evt-3", "evt-4"]

    command.upgrade(config, "0008")
    after = asyncio.run(_decisions(empty_database))
    # Every row, its id kept, in its month's partition.
    assert [(id_, event_id) for id_, event_id, _ in after] == [
        (id_, event_id) for id_, event_id, _ in before
    ]
    assert [part for _, _, part in after] == [
        "decisions_p2026_09",
        "decisions_p2026_09",
        "decisions_p2026_10",
        "decisions_p2024_02",
    ]
    this_month = datetime.now(UTC).date().replace(day=1)
    partitions = set(_inspect(empty_database, _tables))
    assert {MonthPartition(add_months(this_month, n)).name for n in range(4)} <= partitions
    assert "decisions_default" in partitions
    # Not every month between: only those with data, and from now on.
    assert "decisions_p2025_06" not in partitions

    # The keys came along: an old event sent again is a duplicate; a new one gets an id
    # past every old one.
    assert asyncio.run(_store_through_intake(empty_database, ["evt-2", "evt-9"])) == ["evt-9"]
    stored = asyncio.run(_decisions(empty_database))
    assert stored[-1][1] == "evt-9"
    assert stored[-1][0] > max(id_ for id_, _, _ in before)

    command.downgrade(config, "0007")
    back = asyncio.run(_decisions(empty_database))
    assert [(id_, event_id) for id_, event_id, _ in back] == [
        (id_, event_id) for id_, event_id, _ in stored
    ]
    assert {part for _, _, part in back} == {"decisions"}
    upgrade_to_head(empty_database)
    assert [(id_, event_id) for id_, event_id, _ in asyncio.run(_decisions(empty_database))] == [
        (id_, event_id) for id_, event_id, _ in stored
    ]
    assert asyncio.run(_store_through_intake(empty_database, ["evt-1", "evt-9"])) == []
