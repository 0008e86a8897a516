"""Register markets, queues, policy codes and reviewers on first reference.

Nothing must exist beforehand: whatever names a market, queue, policy or reviewer creates it,
in the caller's transaction. Keys are inserted sorted so concurrent registrations of the same
new names cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.markets import default_language, default_time_zone

_MARKETS = text(
    """
    INSERT INTO markets (code, default_language, time_zone)
    SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:languages AS text[]),
                         CAST(:zones AS text[]))
    ON CONFLICT DO NOTHING
    """
)
_QUEUES = text(
    """
    INSERT INTO queues (name, market_code)
    SELECT * FROM unnest(CAST(:names AS text[]), CAST(:markets AS text[]))
    ON CONFLICT DO NOTHING
    """
)
_POLICIES = text(
    "INSERT INTO policies (code) SELECT unnest(CAST(:codes AS text[])) ON CONFLICT DO NOTHING"
)
_REVIEWERS = text(
    "INSERT INTO reviewers (id) SELECT unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING"
)


def market_rows(codes: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Columns (codes, languages, time zones) for markets seen for the first time."""
    ordered = sorted(set(codes))
    return (
        ordered,
        [default_language(code) for code in ordered],
        [default_time_zone(code) for code in ordered],
    )


async def register_markets(session: AsyncSession, codes: Iterable[str]) -> None:
    codes_, languages, zones = market_rows(codes)
    if codes_:
        await session.execute(_MARKETS, {"codes": codes_, "languages": languages, "zones": zones})


async def register_queues(session: AsyncSession, queues: Iterable[tuple[str, str]]) -> None:
    """Register ``(queue, market)`` pairs; a queue keeps the market it was first seen in."""
    pairs = sorted(dict(queues).items())
    if pairs:
        await register_markets(session, (market for _, market in pairs))
        await session.execute(
            _QUEUES, {"names": [name for name, _ in pairs], "markets": [m for _, m in pairs]}
        )


async def register_policies(session: AsyncSession, codes: Iterable[str]) -> None:
    ordered = sorted(set(codes))
    if ordered:
        await session.execute(_POLICIES, {"codes": ordered})


async def register_reviewers(session: AsyncSession, reviewer_ids: Iterable[str]) -> None:
    ordered = sorted(set(reviewer_ids))
    if ordered:
        await session.execute(_REVIEWERS, {"ids": ordered})
