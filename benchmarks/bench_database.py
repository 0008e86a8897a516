"""A benchmark's own database and Redis: created fresh on the server, dropped afterwards."""

from __future__ import annotations

import contextlib

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from shared.core.settings import to_asyncpg_url


def plain_dsn(url: str) -> str:
    """``url`` as a DSN asyncpg accepts (no ``+asyncpg`` driver suffix)."""
    return make_url(to_asyncpg_url(url)).set(drivername="postgresql").render_as_string(False)


def database_url(server_url: str, database: str) -> str:
    """The (asyncpg) URL of ``database`` on the server at ``server_url``."""
    return make_url(to_asyncpg_url(server_url)).set(database=database).render_as_string(False)


async def _on_maintenance_database(server_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(plain_dsn(database_url(server_url, "postgres")))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def recreate_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server; return its (asyncpg) URL."""
    await _on_maintenance_database(
        server_url,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    )
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` at the end of a run (the report keeps the numbers)."""
    with contextlib.suppress(Exception):
        await _on_maintenance_database(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def flush_redis(url: str) -> None:
    """Empty the benchmark's Redis database, so no job of an earlier run is waiting."""
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
