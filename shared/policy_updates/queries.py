"""Reading policy updates: who sees which, the list, acknowledgements, versions, readers.

Who sees an update (``visible_policy_updates``): admins, managers and policy POCs every
update, drafts too (a market-scoped key: those sharing one of its markets); moderators and QA
auditors the published updates of their markets: those of their key (when it is scoped)
and of their reviewer's profile (when the key is bound to one); a key bound to neither
sees every published update. An update someone may not
see is 404 to them, as if it did not exist.

The readers of an update are the reviewers whose profile lists one of its markets. Each is
counted once, in the first of the update's markets their profile lists (``readers_by_market``):
a reviewer of DE and AT gets one message about an update for both, not two.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, any_, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.channels.languages import DEFAULT_MESSAGE_LANGUAGE, MessageLanguage
from shared.channels.personal import personal_language
from shared.core.auth import Principal, Role
from shared.core.errors import NotFound
from shared.core.pagination import Keyset, KeysetPage
from shared.models import Policy, PolicyAcknowledgement, PolicyUpdate, PolicyVersion, Reviewer
from shared.reviewers.service import visible_reviewers
from shared.schemas.policy_updates import (
    AcknowledgedBy,
    AcknowledgementsRead,
    PolicyUpdateQuery,
    PolicyUpdateRead,
    PolicyUpdateTextOut,
    PolicyVersionRead,
    PolicyVersionsRead,
)

# Roles that write and publish updates (with the managers, they also see drafts).
AUTHORS = (Role.ADMIN, Role.POLICY_POC)
# Roles that see every update of their markets, drafts too, and who has acknowledged them.
OVERSEERS = (Role.ADMIN, Role.MANAGER, Role.POLICY_POC)

UPDATE_ORDER = Keyset(PolicyUpdate.created_at, PolicyUpdate.id, descending=True)


def visible_policy_updates(viewer: Principal) -> ColumnElement[bool]:
    """The updates ``viewer`` may see (the module docstring), as SQL."""
    scoped: ColumnElement[bool] = (
        true() if viewer.markets is None else PolicyUpdate.markets.overlap(list(viewer.markets))
    )
    if viewer.role in OVERSEERS:
        return scoped
    own: ColumnElement[bool] = true()
    if viewer.reviewer_id is not None:
        profile_markets = (
            select(Reviewer.markets).where(Reviewer.id == viewer.reviewer_id).scalar_subquery()
        )
        own = PolicyUpdate.markets.overlap(profile_markets)
    return and_(PolicyUpdate.status == "published", scoped, own)


async def get_update(
    session: AsyncSession,
    *,
    update_id: uuid.UUID,
    viewer: Principal | None = None,
    for_update: bool = False,
) -> PolicyUpdate:
    """The update, or 404 (also when ``viewer`` is given and may not see it)."""
    query = select(PolicyUpdate).where(PolicyUpdate.id == update_id)
    if viewer is not None:
        query = query.where(visible_policy_updates(viewer))
    update = await session.scalar(query.with_for_update() if for_update else query)
    if update is None:
        raise NotFound("policy update not found")
    return update


async def published_versions(
    session: AsyncSession, update_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Per update, the version each of its policy codes got when it was published."""
    ids = list(set(update_ids))
    versions: dict[uuid.UUID, dict[str, int]] = {}
    if not ids:
        return versions
    rows = await session.execute(
        select(PolicyVersion.policy_update_id, PolicyVersion.policy_code, PolicyVersion.version)
        .where(PolicyVersion.policy_update_id.in_(ids))
        .order_by(PolicyVersion.policy_code)
    )
    for update_id, code, version in rows:
        if update_id is not None:
            versions.setdefault(update_id, {})[code] = version
    return versions


def update_read(update: PolicyUpdate, *, versions: dict[str, int]) -> PolicyUpdateRead:
    """The API's picture of an update (``versions``: ``published_versions`` of it)."""
    texts = update.texts
    original = texts[update.language]
    return PolicyUpdateRead(
        id=update.id,
        status="published" if update.status == "published" else "draft",
        language=update.language,
        title=original["title"],
        summary=original["summary"],
        body=original["body"],
        translations={
            language: PolicyUpdateTextOut(**text)
            for language, text in sorted(texts.items())
            if language != update.language
        },
        policy_codes=list(update.policy_codes),
        markets=list(update.markets),
        effective_at=update.effective_at,
        quiz_id=update.quiz_id,
        versions=versions,
        created_by=update.created_by,
        created_at=update.created_at,
        published_at=update.published_at,
        published_by=update.published_by,
        reminder_sent_at=update.reminder_sent_at,
    )


async def read_update(session: AsyncSession, update: PolicyUpdate) -> PolicyUpdateRead:
    """``update_read`` with the update's published versions looked up."""
    versions = await published_versions(session, [update.id])
    return update_read(update, versions=versions.get(update.id, {}))


async def list_updates(
    session: AsyncSession, *, filters: PolicyUpdateQuery, viewer: Principal
) -> KeysetPage[PolicyUpdateRead]:
    """A page of the updates ``viewer`` may see, newest first."""
    query = select(PolicyUpdate).where(visible_policy_updates(viewer))
    if filters.status is not None:
        query = query.where(PolicyUpdate.status == filters.status)
    if filters.market is not None:
        query = query.where(literal(filters.market) == any_(PolicyUpdate.markets))
    if filters.policy_code is not None:
        query = query.where(literal(filters.policy_code) == any_(PolicyUpdate.policy_codes))
    rows = list(await session.scalars(UPDATE_ORDER.apply(query, filters)))
    page = UPDATE_ORDER.page(rows, filters)
    versions = await published_versions(session, [update.id for update in page.items])
    return KeysetPage(
        items=[update_read(u, versions=versions.get(u.id, {})) for u in page.items],
        next_cursor=page.next_cursor,
    )


async def readers_by_market(
    session: AsyncSession, *, markets: Sequence[str], viewer: Principal | None = None
) -> dict[str, list[str]]:
    """The reviewers of ``markets``, each under the first of ``markets`` their profile lists
    (every market present, maybe with nobody); only those ``viewer`` may see, if given."""
    by_market: dict[str, list[str]] = {market: [] for market in markets}
    if not markets:
        return by_market
    query = (
        select(Reviewer.id, Reviewer.markets)
        .where(Reviewer.markets.overlap(list(markets)))
        .order_by(Reviewer.id)
    )
    if viewer is not None:
        query = query.where(visible_reviewers(viewer))
    for reviewer_id, profile_markets in await session.execute(query):
        listed = set(profile_markets or ())
        first = next(market for market in markets if market in listed)
        by_market[first].append(reviewer_id)
    return by_market


async def is_reader(session: AsyncSession, *, update: PolicyUpdate, reviewer_id: str) -> bool:
    """Whether the reviewer's profile lists one of the update's markets."""
    found = await session.scalar(
        select(literal(True)).where(
            Reviewer.id == reviewer_id, Reviewer.markets.overlap(list(update.markets))
        )
    )
    return bool(found)


async def acknowledged_at(
    session: AsyncSession, *, update_id: uuid.UUID
) -> dict[str, AcknowledgedBy]:
    """Who has acknowledged the update, and when (the first time)."""
    rows = await session.execute(
        select(PolicyAcknowledgement.reviewer_id, PolicyAcknowledgement.acknowledged_at)
        .where(PolicyAcknowledgement.policy_update_id == update_id)
        .order_by(PolicyAcknowledgement.acknowledged_at, PolicyAcknowledgement.reviewer_id)
    )
    return {reviewer_id: AcknowledgedBy(reviewer_id=reviewer_id, at=at) for reviewer_id, at in rows}


async def acknowledged_by(
    session: AsyncSession, *, reviewer_id: str, update_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When one reviewer first acknowledged each of ``update_ids`` (those they have)."""
    ids = list(set(update_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(PolicyAcknowledgement.policy_update_id, PolicyAcknowledgement.acknowledged_at).where(
            PolicyAcknowledgement.reviewer_id == reviewer_id,
            PolicyAcknowledgement.policy_update_id.in_(ids),
        )
    )
    return {update_id: at for update_id, at in rows}


async def acknowledgements(
    session: AsyncSession, *, update_id: uuid.UUID, viewer: Principal
) -> AcknowledgementsRead:
    """Over the reviewers of the update's markets (of ``viewer``'s markets, for a scoped key),
    who has acknowledged it (first acknowledgement, oldest first) and who has not (by id).

    An acknowledgement by a reviewer who has since left the update's markets still counts
    as acknowledged: the record of who read what is kept.
    """
    update = await get_update(session, update_id=update_id, viewer=viewer)
    markets = [market for market in update.markets if viewer.can_see_market(market)]
    readers = {
        reviewer_id
        for group in (await readers_by_market(session, markets=markets, viewer=viewer)).values()
        for reviewer_id in group
    }
    done = await acknowledged_at(session, update_id=update.id)
    if viewer.markets is not None:
        shown = set(
            await session.scalars(
                select(Reviewer.id).where(Reviewer.id.in_(list(done)), visible_reviewers(viewer))
            )
        )
        done = {reviewer_id: ack for reviewer_id, ack in done.items() if reviewer_id in shown}
    return AcknowledgementsRead(
        acknowledged=list(done.values()),
        pending=sorted(readers - set(done)),
    )


async def policy_versions(session: AsyncSession, *, policy_code: str) -> PolicyVersionsRead:
    """The version history of a policy code, oldest first; 404 for a code never seen."""
    current = await session.scalar(select(Policy.version).where(Policy.code == policy_code))
    if current is None:
        raise NotFound(f"policy '{policy_code}' not found")
    rows = await session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.policy_code == policy_code)
        .order_by(PolicyVersion.version)
    )
    return PolicyVersionsRead(
        policy_code=policy_code,
        version=current,
        versions=[PolicyVersionRead.model_validate(row) for row in rows],
    )


async def reader_language(session: AsyncSession, *, reviewer_id: str) -> MessageLanguage:
    """The language a reviewer reads their personal messages in (``personal_language``)."""
    reviewer = await session.get(Reviewer, reviewer_id)
    return DEFAULT_MESSAGE_LANGUAGE if reviewer is None else personal_language(reviewer)
