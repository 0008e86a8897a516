"""The typed state a worker's jobs receive, built for calling a job directly in a test."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.core.workers import WorkerState


def worker_state(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> WorkerState:
    """What the report worker's start-up builds, on the test's database (its Redis client
    connects only if a job enqueues something)."""
    engine = sessionmaker.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    assert settings.redis_url is not None
    return WorkerState(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        redis=ArqRedis.from_url(settings.redis_url),
    )
