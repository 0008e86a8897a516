"""API keys: creation (shown once), hashing, authentication, revocation."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import Actor, record_change
from shared.core.auth import Principal, Role, token_digest
from shared.core.errors import NotFound, UnprocessableEntity
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.models import ApiKey
from shared.models.base import utcnow
from shared.reference import register_markets, register_reviewers
from shared.schemas.auth import ApiKeyRead

KEY_PREFIX = "plk_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_api_key(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    reviewer_id: str | None = None,
    markets: Sequence[str] | None = None,
    key: str | None = None,
    actor: Actor | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored.

    Audit-logged (``api_key.created``) without the plaintext or its hash; ``actor`` is None
    for keys made outside the API (bootstrap, command line). ``markets`` None is every market;
    an empty list is a 422.
    """
    if markets is not None and not markets:
        # An empty list must not read as "no limit": a key is for every market (None) or
        # for at least one.
        raise UnprocessableEntity(
            "markets must name at least one market (leave it out for every market)",
            errors=[{"loc": ["markets"], "msg": "must not be empty"}],
        )
    plaintext = key or generate_key()
    if reviewer_id is not None:
        await register_reviewers(session, [reviewer_id])
    if markets is not None:
        await register_markets(session, markets)
    api_key = ApiKey(
        id=uuid.uuid4(),
        name=name,
        role=role,
        prefix=plaintext[:10],
        key_hash=token_digest(plaintext),
        reviewer_id=reviewer_id,
        markets=sorted(set(markets)) if markets is not None else None,
    )
    session.add(api_key)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="api_key.created",
        entity_type="api_key",
        entity_id=api_key.id,
        after=_key_snapshot(api_key),
    )
    return api_key, plaintext


def _key_snapshot(api_key: ApiKey) -> dict[str, object]:
    """What the audit log keeps of a key: its public view (never the key or its hash)."""
    return ApiKeyRead.model_validate(api_key).model_dump(mode="json")


async def ensure_bootstrap_admin_key(session: AsyncSession, *, key: str) -> ApiKey:
    """Make sure an admin key with exactly this value exists (idempotent)."""
    existing = await session.scalar(select(ApiKey).where(ApiKey.key_hash == token_digest(key)))
    if existing is not None:
        if existing.revoked_at is not None or existing.role != "admin":
            existing.revoked_at = None
            existing.role = "admin"
            await session.flush()
        return existing
    api_key, _ = await create_api_key(session, name="bootstrap admin", role="admin", key=key)
    return api_key


async def has_admin_key(session: AsyncSession) -> bool:
    """Whether any usable admin key exists (the first run prints one when none does)."""
    found = await session.scalar(
        select(ApiKey.id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None)).limit(1)
    )
    return found is not None


_AUTHENTICATE = select(ApiKey.id, ApiKey.role, ApiKey.reviewer_id, ApiKey.markets).where(
    ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None)
)


async def authenticate(session: AsyncSession, *, key: str) -> Principal | None:
    """The caller behind the unrevoked key with this value, if any (looked up by hash, never
    by plaintext)."""
    if len(key) > 512:
        return None
    row = (await session.execute(_AUTHENTICATE, {"digest": token_digest(key)})).first()
    if row is None:
        return None
    key_id, role, reviewer_id, markets = row
    return Principal(
        key_id=str(key_id),
        role=Role(role),
        reviewer_id=reviewer_id,
        markets=tuple(markets) if markets is not None else None,
    )


# Bumped by every revocation in this process: a cache entry older than the last one is read
# again, so a key revoked here stops working here at once (elsewhere within the TTL).
_revocations = 0


def _count_revocation(*_: object) -> None:
    global _revocations
    _revocations += 1


@dataclass(frozen=True, slots=True)
class _CachedKey:
    principal: Principal
    expires_at: float
    revocations: int


class KeyCache:
    """Principals by key digest, kept ``ttl_seconds`` per API process.

    A key's role, reviewer and markets never change once it is made; only its revocation
    does. A key revoked through this process is refused at once (``revoke_api_key`` marks
    every entry stale); one revoked elsewhere (another API worker or replica, the command
    line) within ``ttl_seconds``. Unknown or revoked keys are never cached: each failure
    is read again (and counted by the failed-authentication limit).
    """

    # Past this many cached keys, forget them all (memory stays bounded).
    MAX_ENTRIES = 10_000

    def __init__(self, *, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[bytes, _CachedKey] = {}

    async def authenticate(self, session: AsyncSession, *, key: str) -> Principal | None:
        """``authenticate``, from the cache while the entry is fresh."""
        if len(key) > 512:
            return None
        digest = token_digest(key)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is not None and entry.revocations == _revocations and now < entry.expires_at:
            return entry.principal
        revocations = _revocations
        principal = await authenticate(session, key=key)
        if principal is None:
            self._entries.pop(digest, None)
            return None
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = _CachedKey(principal, now + self._ttl, revocations)
        return principal


API_KEY_ORDER = Keyset(ApiKey.id)


async def list_api_keys(session: AsyncSession, *, page: PageRequest) -> KeysetPage[ApiKey]:
    """A page of API keys (revoked ones too), by id."""
    keys = list(await session.scalars(API_KEY_ORDER.apply(select(ApiKey), page)))
    return API_KEY_ORDER.page(keys, page)


async def revoke_api_key(
    session: AsyncSession, *, key_id: uuid.UUID, actor: Actor | None = None
) -> ApiKey:
    """Revoke a key (idempotent); the revocation, not a repeat of it, is audit-logged."""
    api_key = await session.get(ApiKey, key_id)
    if api_key is None:
        raise NotFound("API key not found")
    if api_key.revoked_at is None:
        # Cached keys go stale now and again at commit: a request that read the key between
        # the two (the revocation not committed yet) does not keep it.
        _count_revocation()
        event.listen(session.sync_session, "after_commit", _count_revocation, once=True)
        before = _key_snapshot(api_key)
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        await session.refresh(api_key)
        await record_change(
            session,
            actor=actor,
            action="api_key.revoked",
            entity_type="api_key",
            entity_id=api_key.id,
            before=before,
            after=_key_snapshot(api_key),
        )
    return api_key
