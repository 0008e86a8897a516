"""An auditor's workload of the day: how many verdicts they gave (what the workbench shows
next to the wellbeing caps)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.auth import Principal
from shared.models import Verdict
from shared.wellbeing.service import utc_day_bounds


async def verdicts_given_on(session: AsyncSession, *, principal: Principal, day: date) -> int:
    """How many verdicts the calling auditor gave on a UTC day (the wellbeing caps' day),
    golden ones included (they are work too); a market-scoped key counts its markets only;
    0 for a key bound to no reviewer."""
    if principal.reviewer_id is None:
        return 0
    start, end = utc_day_bounds(day)
    query = (
        select(func.count())
        .select_from(Verdict)
        .where(
            Verdict.auditor_id == principal.reviewer_id,
            Verdict.created_at >= start,
            Verdict.created_at < end,
        )
    )
    if principal.markets is not None:
        query = query.where(Verdict.market.in_(principal.markets))
    return int(await session.scalar(query) or 0)
