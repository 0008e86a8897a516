"""Reviewer profiles: where and in which languages a person works."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import Actor, record_change
from shared.core.errors import NotFound
from shared.models import Reviewer
from shared.reference import register_markets, register_reviewers
from shared.schemas.reviewers import ReviewerRead, ReviewerUpsert


async def upsert_reviewer(
    session: AsyncSession, *, reviewer_id: str, profile: ReviewerUpsert, actor: Actor
) -> tuple[Reviewer, bool]:
    """Create or replace a reviewer's profile; returns it and whether it was created.

    A reviewer first named by a decision or a key already exists (with an empty profile):
    that counts as an update.
    """
    await register_markets(session, profile.markets)
    existing = await session.get(Reviewer, reviewer_id, with_for_update=True)
    created = existing is None
    before = (
        None if existing is None else ReviewerRead.model_validate(existing).model_dump(mode="json")
    )
    if existing is None:
        await register_reviewers(session, [reviewer_id])
        existing = await session.get(Reviewer, reviewer_id, with_for_update=True)
        assert existing is not None
    existing.display_name = profile.display_name
    existing.markets = sorted(set(profile.markets))
    existing.languages = sorted(set(profile.languages))
    existing.started_on = profile.started_on
    existing.team = profile.team
    await session.flush()
    await session.refresh(existing)
    await record_change(
        session,
        actor=actor,
        action="reviewer.created" if created else "reviewer.updated",
        entity_type="reviewer",
        entity_id=reviewer_id,
        before=before,
        after=ReviewerRead.model_validate(existing).model_dump(mode="json"),
    )
    return existing, created


async def get_reviewer(session: AsyncSession, *, reviewer_id: str) -> Reviewer:
    reviewer = await session.get(Reviewer, reviewer_id)
    if reviewer is None:
        raise NotFound("reviewer not found")
    return reviewer


async def list_reviewers(
    session: AsyncSession,
    *,
    limit: int,
    after: str | None,
    market: str | None,
    language: str | None,
    team: str | None,
    only_markets: Sequence[str] | None,
) -> list[Reviewer]:
    """Reviewers by id, ``limit + 1`` of them (the extra one says another page exists)."""
    query = select(Reviewer).order_by(Reviewer.id).limit(limit + 1)
    if after is not None:
        query = query.where(Reviewer.id > after)
    if market is not None:
        query = query.where(Reviewer.markets.any(market))  # type: ignore[arg-type]
    if language is not None:
        query = query.where(Reviewer.languages.any(language))  # type: ignore[arg-type]
    if team is not None:
        query = query.where(Reviewer.team == team)
    if only_markets is not None:
        query = query.where(Reviewer.markets.overlap(list(only_markets)))
    return list(await session.scalars(query))
