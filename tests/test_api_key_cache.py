"""The per-process API key cache: a revocation is honoured, at once through this process."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.api_keys.service import KeyCache, revoke_api_key
from shared.core.auth import Role, token_digest
from shared.models import ApiKey
from shared.models.base import utcnow
from tests.conftest import make_key

Sessionmaker = async_sessionmaker[AsyncSession]


async def _key_id(sessionmaker: Sessionmaker, key: str) -> uuid.UUID:
    async with sessionmaker() as session:
        found = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == token_digest(key)))
    assert found is not None
    return found


async def test_a_cached_key_revoked_through_this_process_is_refused_at_once(
    sessionmaker: Sessionmaker,
) -> None:
    key = await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1", markets=["DE"])
    cache = KeyCache(ttl_seconds=3600)
    async with sessionmaker() as session:
        principal = await cache.authenticate(session, key=key)
    assert principal is not None
    assert (principal.role, principal.reviewer_id, principal.markets) == (
        Role.QA_AUDITOR,
        "aud-1",
        ("DE",),
    )

    async with sessionmaker() as session, session.begin():
        await revoke_api_key(session, key_id=await _key_id(sessionmaker, key))
    async with sessionmaker() as session:
        assert await cache.authenticate(session, key=key) is None


async def test_a_key_read_while_its_revocation_was_not_committed_is_not_kept(
    sessionmaker: Sessionmaker,
) -> None:
    key = await make_key(sessionmaker, "manager")
    cache = KeyCache(ttl_seconds=3600)
    async with sessionmaker() as revoking, revoking.begin():
        await revoke_api_key(revoking, key_id=await _key_id(sessionmaker, key))
        # Another request reads the key before the revocation commits: still valid then.
        async with sessionmaker() as session:
            assert await cache.authenticate(session, key=key) is not None
    async with sessionmaker() as session:
        assert await cache.authenticate(session, key=key) is None


async def test_a_key_revoked_elsewhere_is_refused_once_its_entry_expires(
    sessionmaker: Sessionmaker,
) -> None:
    key = await make_key(sessionmaker, "manager")
    cache = KeyCache(ttl_seconds=0)
    async with sessionmaker() as session:
        assert await cache.authenticate(session, key=key) is not None
    # Revoked by another process (another API worker, the command line): no signal here.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ApiKey).where(ApiKey.key_hash == token_digest(key)).values(revoked_at=utcnow())
        )
    async with sessionmaker() as session:
        assert await cache.authenticate(session, key=key) is None
        assert await cache.authenticate(session, key="plk_unknown") is None
