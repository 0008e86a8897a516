"""Database engine and sessions. One transaction per request or job: ``unit_of_work``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.core.settings import Settings

CONNECT_TIMEOUT_SECONDS = 5.0


def _discard_closed_connection(dbapi_connection: Any, *_: object) -> None:
    """Hand out no pooled connection the driver already knows is closed (checked locally).

    Instead of ``pool_pre_ping``, which costs three round trips per checkout (BEGIN,
    SELECT 1, ROLLBACK): asyncpg notices a server that closed the socket (a restart, a
    terminated backend) without being asked. A connection that dies unnoticed fails at its
    first statement: that request gets a 503 (``is_connection_error``), and SQLAlchemy,
    seeing a disconnect, discards every connection of the pool made before it.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise sa_exc.DisconnectionError("the pooled connection was closed by the server")


def create_engine(database_url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An asyncpg engine whose pool skips connections known to be closed (no pre-ping)."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # asyncpg caches prepared statements per connection; keep that, it is most of the win.
        # A database host that does not answer at all fails a connection attempt in 5 s
        # (asyncpg waits 60 s), so a request gets its 503 while the client still waits.
        connect_args={
            "server_settings": {"application_name": "plumbline"},
            "timeout": CONNECT_TIMEOUT_SECONDS,
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed_connection)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no lazy reloads in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def engine_from_settings(settings: Settings) -> AsyncEngine:
    """The engine for the configured database (the URL must already be resolved)."""
    if settings.database_url is None:
        raise RuntimeError("PLUMBLINE_DATABASE_URL is not resolved; start via `plumbline`")
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# Failures that say "the database cannot be reached right now", not "this request is wrong":
# a request or job that meets one may succeed unchanged later. OSError covers refused and
# reset sockets and timeouts (TimeoutError is an OSError).
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection became free in time
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) means the database is unreachable or unavailable.

    SQLAlchemy wraps the driver's error (``.orig``, ``__cause__``), and a group may hold
    several; a DBAPIError on a connection SQLAlchemy had to invalidate also counts.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            return bool(current.exceptions) and all(
                is_connection_error(member) for member in current.exceptions
            )
        if isinstance(current, _CONNECTION_ERRORS):
            return True
        if isinstance(current, sa_exc.DBAPIError):
            if current.connection_invalidated:
                return True
            pending.append(current.orig)
        pending.append(current.__cause__)
    return False
