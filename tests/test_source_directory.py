"""The API's cache of signing sources (shared.sources.service.SourceDirectory): when an entry
expires, the webhooks in flight share one read instead of each reading and decrypting the
source; a read asked for afresh (a signature that failed against the cache) is never
shared."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.encryption import secret_box
from shared.core.settings import Settings
from shared.sources.service import SourceDirectory, create_source


class CountingSessions:
    """A sessionmaker that counts the sessions opened (one per read of a source)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.opened = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        self.opened += 1
        async with self.sessionmaker() as session:
            yield session


async def test_expired_entry_is_read_once_for_every_request_waiting_on_it(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    box = secret_box(settings)
    async with sessionmaker.begin() as session:
        _, secret = await create_source(session, name="platform-a", box=box)
    sessions = CountingSessions(sessionmaker)
    # A TTL of 0: every entry has expired by the time anyone asks again.
    directory = SourceDirectory(sessions, box, ttl_seconds=0)  # type: ignore[arg-type]

    entries = await asyncio.gather(*(directory.get("platform-a") for _ in range(20)))

    assert sessions.opened == 1
    assert {entry.secret for entry in entries if entry is not None} == {secret}
    assert all(entry is entries[0] for entry in entries)

    # Once that read is done, the next request after expiry reads again.
    await directory.get("platform-a")
    assert sessions.opened == 2


async def test_fresh_reads_are_not_shared(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    box = secret_box(settings)
    async with sessionmaker.begin() as session:
        await create_source(session, name="platform-b", box=box)
    sessions = CountingSessions(sessionmaker)
    directory = SourceDirectory(sessions, box, ttl_seconds=3600)  # type: ignore[arg-type]

    await asyncio.gather(
        directory.get("platform-b"),
        directory.get("platform-b", fresh=True),
        directory.get("platform-b", fresh=True),
    )

    # The plain read and each fresh one: a fresh read may not join one begun before it.
    assert sessions.opened == 3


async def test_unknown_source_is_none_for_every_waiter(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sessions = CountingSessions(sessionmaker)
    directory = SourceDirectory(sessions, secret_box(settings), ttl_seconds=5)  # type: ignore[arg-type]

    assert await asyncio.gather(*(directory.get("nobody") for _ in range(5))) == [None] * 5
    assert sessions.opened == 1
