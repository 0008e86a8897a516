"""Migrations: upgrade from empty, downgrade to empty, and models that match the schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.core.migrate import alembic_config, upgrade_to_head
from shared.models import Base
from tests.conftest import scratch_database

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
    context = MigrationContext.configure(connection, opts={"compare_type": True})
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
