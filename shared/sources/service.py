"""Sources: creation, secret rotation with a grace period, and the signing-key directory."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.audit_log.record import Actor, record_change
from shared.core.encryption import SecretBox
from shared.core.errors import Conflict, NotFound
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.events import EventType, SourceSecretRotated, record_event
from shared.models import RejectedBatch, Source
from shared.models.base import utcnow
from shared.schemas.sources import SourceRead

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _source_snapshot(source: Source) -> dict[str, object]:
    """What the audit log keeps of a source: its public view, never a secret."""
    return SourceRead.model_validate(source).model_dump(mode="json")


async def create_source(
    session: AsyncSession, *, name: str, box: SecretBox, actor: Actor | None = None
) -> tuple[Source, str]:
    """Create a source and return it with its secret (encrypted at rest, shown once)."""
    secret = generate_secret()
    source = Source(id=uuid.uuid4(), name=name, secret_encrypted=box.encrypt(secret))
    session.add(source)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a source named '{name}' exists already") from exc
    await record_change(
        session,
        actor=actor,
        action="source.created",
        entity_type="source",
        entity_id=source.id,
        after=_source_snapshot(source),
    )
    return source, secret


async def get_source(session: AsyncSession, *, source_id: uuid.UUID) -> Source:
    source = await session.get(Source, source_id)
    if source is None:
        raise NotFound("source not found")
    return source


SOURCE_ORDER = Keyset(Source.name)
REJECTED_BATCH_ORDER = Keyset(RejectedBatch.created_at, RejectedBatch.id, descending=True)


async def list_sources(session: AsyncSession, *, page: PageRequest) -> KeysetPage[Source]:
    """A page of sources, by name."""
    sources = list(await session.scalars(SOURCE_ORDER.apply(select(Source), page)))
    return SOURCE_ORDER.page(sources, page)


async def list_rejected_batches(
    session: AsyncSession,
    *,
    source_id: uuid.UUID,
    page: PageRequest,
) -> KeysetPage[RejectedBatch]:
    """A page of a source's refused requests, newest first."""
    await get_source(session, source_id=source_id)
    query = select(RejectedBatch).where(RejectedBatch.source_id == source_id)
    rows = list(await session.scalars(REJECTED_BATCH_ORDER.apply(query, page)))
    return REJECTED_BATCH_ORDER.page(rows, page)


async def rotate_secret(
    session: AsyncSession,
    *,
    source_id: uuid.UUID,
    grace: timedelta,
    box: SecretBox,
    actor: Actor | None = None,
) -> tuple[Source, str]:
    """Give the source a new secret; the current one stays valid for ``grace``."""
    source = await session.get(Source, source_id, with_for_update=True)
    if source is None:
        raise NotFound("source not found")
    before = _source_snapshot(source)
    secret = generate_secret()
    now = utcnow()
    if grace > timedelta(0):
        source.previous_secret_encrypted = source.secret_encrypted
        source.previous_secret_expires_at = now + grace
    else:
        source.previous_secret_encrypted = None
        source.previous_secret_expires_at = None
    source.secret_encrypted = box.encrypt(secret)
    source.rotated_at = now
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="source.secret_rotated",
        entity_type="source",
        entity_id=source.id,
        before=before,
        after=_source_snapshot(source),
    )
    await record_event(
        session,
        type=EventType.SOURCE_SECRET_ROTATED,
        data=SourceSecretRotated(
            id=source.id,
            source=source.name,
            previous_secret_expires_at=source.previous_secret_expires_at,
        ),
    )
    return source, secret


@dataclass(frozen=True, slots=True)
class SigningSource:
    """What intake needs to know of a source: its id and the secrets valid right now."""

    id: uuid.UUID
    name: str
    secret: str
    previous_secret: str | None
    previous_expires_at: datetime | None
    loaded_at: float

    def secrets_valid_at(self, now: datetime) -> list[str]:
        valid = [self.secret]
        if (
            self.previous_secret is not None
            and self.previous_expires_at is not None
            and now < self.previous_expires_at
        ):
            valid.append(self.previous_secret)
        return valid


class SourceDirectory:
    """Sources by name, decrypted, cached for a few seconds per API process.

    Every webhook needs its source's secrets; reading and decrypting them per request would
    cost a query and a Fernet decryption each time. A signature that fails against a cached
    entry is checked again against a fresh read, so a rotation elsewhere takes effect at once.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        ttl_seconds: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._box = box
        self._ttl = ttl_seconds
        self._entries: dict[str, SigningSource] = {}
        # One read per name at a time when an entry expires: without it, every webhook in
        # flight at that moment read and decrypted the source itself.
        self._refreshing: dict[str, asyncio.Future[SigningSource | None]] = {}

    async def get(self, name: str, *, fresh: bool = False) -> SigningSource | None:
        """The source ``name`` (``None`` when there is none): cached, or read afresh when the
        entry has expired or ``fresh`` is asked for (a signature that failed against the
        cache). Callers that find the entry expired while it is being read wait for that
        read; a ``fresh`` caller always reads anew, since a read already under way may have
        begun before the rotation that made its signature fail."""
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None and not fresh and now - entry.loaded_at < self._ttl:
            return entry
        if not fresh and (pending := self._refreshing.get(name)) is not None:
            return await asyncio.shield(pending)
        read = asyncio.ensure_future(self._read(name))
        read.add_done_callback(self._read_done)
        if not fresh:
            self._refreshing[name] = read
        # Shielded: one caller's cancellation (a client gone) does not fail the others'.
        return await asyncio.shield(read)

    def _read_done(self, read: asyncio.Future[SigningSource | None]) -> None:
        for name, pending in list(self._refreshing.items()):
            if pending is read:
                del self._refreshing[name]
        if not read.cancelled():
            # Retrieved here too, so a read whose callers were all cancelled logs nothing.
            read.exception()

    async def _read(self, name: str) -> SigningSource | None:
        now = time.monotonic()
        async with self._sessionmaker() as session:
            source = await session.scalar(select(Source).where(Source.name == name))
        if source is None:
            self._entries.pop(name, None)
            return None
        entry = SigningSource(
            id=source.id,
            name=source.name,
            secret=self._box.decrypt(source.secret_encrypted),
            previous_secret=(
                self._box.decrypt(source.previous_secret_encrypted)
                if source.previous_secret_encrypted is not None
                else None
            ),
            previous_expires_at=source.previous_secret_expires_at,
            loaded_at=now,
        )
        self._entries[name] = entry
        return entry

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)
