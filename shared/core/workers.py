"""What a worker process holds while it runs: its settings, database and Redis, typed.

A worker's start-up hook builds its state once (``WorkerState.open``, settings read then,
not when a module is imported) and puts it where ``shared.core.queue``'s job wrappers find
it; every job and scheduled job gets it as its first argument. A worker needing more (the
notifier's HTTP client and adapters) subclasses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.core.db import create_sessionmaker, engine_from_settings
from shared.core.queue import STATE_KEY, ArqRedis, Context
from shared.core.settings import Settings, get_settings


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerState:
    """The resources every job of a worker shares."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: ArqRedis

    @classmethod
    def open(cls, settings: Settings, *, redis: ArqRedis) -> WorkerState:
        """A state for ``settings``, with a database engine opened for it."""
        return WorkerState(**cls.base_fields(settings, redis=redis))

    @staticmethod
    def base_fields(settings: Settings, *, redis: ArqRedis) -> dict[str, Any]:
        """The fields every state has, for ``settings`` (a subclass adds its own)."""
        engine = engine_from_settings(settings)
        return {
            "settings": settings,
            "engine": engine,
            "sessionmaker": create_sessionmaker(engine),
            "redis": redis,
        }

    async def close(self) -> None:
        """Release what the state opened."""
        await self.engine.dispose()


def startup_settings(ctx: Context) -> Settings:
    """The settings a worker starts with: those handed in (tests, ``plumbline`` commands
    that resolved the embedded servers), else the environment's, read now."""
    handed_in = ctx.get("settings")
    return handed_in if isinstance(handed_in, Settings) else get_settings()


def install_state(ctx: Context, state: WorkerState) -> None:
    """Make ``state`` the one every job of this worker receives."""
    ctx[STATE_KEY] = state


def installed_state(ctx: Context) -> WorkerState:
    """The state ``install_state`` put in place (for the shutdown hook)."""
    state = ctx[STATE_KEY]
    assert isinstance(state, WorkerState)
    return state


def queue_of(ctx: Context) -> ArqRedis:
    """The Redis pool arq opened for this worker (arq puts it in place before start-up)."""
    redis = ctx["redis"]
    assert isinstance(redis, ArqRedis)
    return redis
