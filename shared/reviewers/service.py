"""Reviewer profiles: where and in which languages a person works.

Market-scoped keys (``visible_reviewers``): a key limited to some markets sees the reviewers
working in one of them, and those with no market yet (they belong to none, so nothing of
another market shows); any other reviewer is unknown to it (404, like one that does not
exist). Writing, such a key changes only what lies inside its markets: it adds or removes
its own markets on a profile and the reviewer's other markets stay as they are.

A reviewer's e-mail address is shown only to admins, managers and the reviewer themself
(``reviewer_read``); everyone else who may see the profile gets it as null.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    any_,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal, Role
from shared.core.errors import Forbidden, NotFound
from shared.core.pagination import Keyset, KeysetPage, PageRequest
from shared.models import Reviewer
from shared.reference import register_markets, register_reviewers
from shared.schemas.reviewers import ReviewerRead, ReviewerUpsert


def visible_reviewers(principal: Principal) -> ColumnElement[bool]:
    """The reviewers ``principal`` may see and change (the module docstring), as SQL."""
    if principal.markets is None:
        return true()
    return or_(
        Reviewer.markets.overlap(list(principal.markets)),
        func.cardinality(Reviewer.markets) == 0,
    )


async def visible_reviewer_ids(
    session: AsyncSession, *, viewer: Principal, reviewer_ids: Iterable[str]
) -> set[str]:
    """Those of ``reviewer_ids`` that ``visible_reviewers`` lets ``viewer`` see (all of them
    for a key of every market), for code that holds ids rather than a query."""
    wanted = set(reviewer_ids)
    if viewer.markets is None or not wanted:
        return wanted
    return set(
        await session.scalars(
            select(Reviewer.id).where(Reviewer.id.in_(sorted(wanted)), visible_reviewers(viewer))
        )
    )


def counted_reviewers(
    reviewer_id: SQLColumnExpression[str], *, viewer: Principal, market: str | None
) -> ColumnElement[bool]:
    """Whether the reviewer in ``reviewer_id`` counts in a summary ``viewer`` asked for (the
    briefing's quiz and training sections): a moderator key counts only its own reviewer,
    any other key the reviewers ``visible_reviewers`` lets it see; with ``market``, only
    those whose profile lists that market."""
    if viewer.role == Role.MODERATOR:
        return false() if viewer.reviewer_id is None else reviewer_id == viewer.reviewer_id
    if viewer.markets is None and market is None:
        return true()
    reviewers = select(Reviewer.id).where(visible_reviewers(viewer))
    if market is not None:
        reviewers = reviewers.where(literal(market) == any_(Reviewer.markets))
    return reviewer_id.in_(reviewers)


def scoped_markets(
    principal: Principal, *, current: Sequence[str], requested: Sequence[str]
) -> list[str]:
    """The markets a profile gets when ``principal`` asks for ``requested``.

    A key for every market sets them as asked. A market-scoped key sets its own markets as
    asked and keeps the others as they are (``current``); naming another market the
    reviewer does not have already is a 403: that is not its to give.
    """
    if principal.markets is None:
        return sorted(set(requested))
    own = set(principal.markets)
    foreign = set(requested) - own - set(current)
    if foreign:
        raise Forbidden(
            "this key may not assign markets outside its own: " + ", ".join(sorted(foreign))
        )
    return sorted((set(current) - own) | (set(requested) & own))


# Who reads every reviewer's e-mail address: those who manage the people.
EMAIL_READERS = frozenset({Role.ADMIN, Role.MANAGER})


def may_read_email(viewer: Principal, reviewer_id: str) -> bool:
    """Whether ``viewer`` may read the e-mail address of reviewer ``reviewer_id``: admins
    and managers, and the reviewer themself (a key bound to them)."""
    return viewer.role in EMAIL_READERS or viewer.reviewer_id == reviewer_id


def reviewer_read(reviewer: Reviewer, *, viewer: Principal) -> ReviewerRead:
    """The profile as ``viewer`` sees it: the e-mail address null unless ``may_read_email``."""
    read = ReviewerRead.model_validate(reviewer)
    if read.email is not None and not may_read_email(viewer, reviewer.id):
        read = read.model_copy(update={"email": None})
    return read


async def upsert_reviewer(
    session: AsyncSession, *, reviewer_id: str, profile: ReviewerUpsert, actor: Principal
) -> tuple[Reviewer, bool]:
    """Create or replace a reviewer's profile; returns it and whether it was created.

    A reviewer first named by a decision or a key already exists (with an empty profile):
    that counts as an update. A market-scoped key changes only its own markets of the
    profile (``scoped_markets``); a reviewer it cannot see is a 404.
    """
    row = (
        await session.execute(
            select(Reviewer, visible_reviewers(actor))
            .where(Reviewer.id == reviewer_id)
            .with_for_update(of=Reviewer)
        )
    ).first()
    existing = None if row is None else row[0]
    if row is not None and not row[1]:
        # Outside this key's markets: as unknown to it as a reviewer who does not exist.
        raise NotFound("reviewer not found")
    markets = scoped_markets(
        actor, current=existing.markets if existing is not None else [], requested=profile.markets
    )
    await register_markets(session, markets)
    created = existing is None
    before = (
        None if existing is None else ReviewerRead.model_validate(existing).model_dump(mode="json")
    )
    if existing is None:
        await register_reviewers(session, [reviewer_id])
        existing = await session.get(Reviewer, reviewer_id, with_for_update=True)
        assert existing is not None
    existing.display_name = profile.display_name
    existing.markets = markets
    existing.languages = sorted(set(profile.languages))
    existing.started_on = profile.started_on
    existing.team = profile.team
    existing.email = profile.email
    existing.notification_language = profile.notification_language
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


async def get_reviewer(
    session: AsyncSession, *, reviewer_id: str, principal: Principal
) -> Reviewer:
    """The reviewer's profile; 404 when unknown or not visible to ``principal``."""
    reviewer = await session.scalar(
        select(Reviewer).where(Reviewer.id == reviewer_id, visible_reviewers(principal))
    )
    if reviewer is None:
        raise NotFound("reviewer not found")
    return reviewer


REVIEWER_ORDER = Keyset(Reviewer.id)


async def list_reviewers(
    session: AsyncSession,
    *,
    page: PageRequest,
    market: str | None,
    language: str | None,
    team: str | None,
    principal: Principal,
) -> KeysetPage[Reviewer]:
    """A page of the reviewers ``principal`` may see, by id."""
    query = select(Reviewer).where(visible_reviewers(principal))
    if market is not None:
        query = query.where(literal(market) == any_(Reviewer.markets))
    if language is not None:
        query = query.where(literal(language) == any_(Reviewer.languages))
    if team is not None:
        query = query.where(Reviewer.team == team)
    reviewers = list(await session.scalars(REVIEWER_ORDER.apply(query, page)))
    return REVIEWER_ORDER.page(reviewers, page)
