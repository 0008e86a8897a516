"""Reading the test database directly (what the API stored, not what it answers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def count_rows(
    sessionmaker: async_sessionmaker[AsyncSession], model: Any, *where: Any
) -> int:
    """How many rows of ``model`` match every condition in ``where``."""
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
