"""Policy updates: write a draft, publish it once, acknowledge it.

- A draft is written and changed by admins and policy POCs (a market-scoped key: only for
  updates all of whose markets are its own). Its policy codes and markets are registered on
  first reference; an attached quiz must exist and be visible to the author.
- Publishing (once; a second time is 409, and a published update cannot be changed) gives
  each policy code a new version (the last one + 1) in force from the update's
  ``effective_at``, sets the policy's current version, assigns the attached quiz to the
  update's markets, and records ``policy_update.published``: one event per market (channels
  are routed by an event's market), each naming as recipients the reviewers of that market
  (a reviewer of several of the update's markets under the first of them only).
- Acknowledging is for the update's readers (reviewers whose profile lists one of its
  markets): with their own key, or with the signed link of a message
  (``acknowledgement_links``). The first acknowledgement counts; repeating it changes nothing.

Every change goes to the audit log in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit_log.record import record_change
from shared.core.auth import Principal
from shared.core.errors import Conflict, Forbidden, UnprocessableEntity
from shared.core.settings import Settings
from shared.events import EventType, PolicyUpdatePublished, PolicyUpdateText, record_event
from shared.models import Policy, PolicyAcknowledgement, PolicyUpdate, PolicyVersion, Quiz
from shared.models.base import utcnow
from shared.policy_updates.acknowledgement_links import verify_acknowledgement_token
from shared.policy_updates.queries import (
    get_update,
    is_reader,
    read_update,
    readers_by_market,
    visible_policy_updates,
)
from shared.quizzes import service as quizzes
from shared.reference import register_markets, register_policies
from shared.schemas.policy_updates import (
    AcknowledgementRead,
    PolicyUpdateCreate,
    PolicyUpdatePatch,
    PolicyUpdateRead,
    PolicyUpdateTextIn,
    texts_of,
)

ENTITY = "policy_update"


def actor_name(actor: Principal) -> str:
    """How an author or publisher is recorded: the reviewer, or the API key if unbound."""
    return actor.reviewer_id or f"api-key:{actor.key_id}"


def _check_markets_owned(actor: Principal, markets: list[str]) -> None:
    foreign = sorted(market for market in markets if not actor.can_see_market(market))
    if foreign:
        raise Forbidden(
            "this key may not write policy updates for markets outside its own: "
            + ", ".join(foreign)
        )


async def _check_quiz(session: AsyncSession, *, quiz_id: uuid.UUID, actor: Principal) -> None:
    found = await session.scalar(
        select(Quiz.id).where(Quiz.id == quiz_id, quizzes.visible_quizzes(actor))
    )
    if found is None:
        raise UnprocessableEntity(
            f"quiz {quiz_id} does not exist",
            errors=[{"loc": ["body", "quiz_id"], "msg": "no such quiz"}],
        )


def _ordered(values: list[str]) -> list[str]:
    # Kept in the order given, each once: the first market decides where a reviewer of
    # several of them is counted.
    return list(dict.fromkeys(values))


async def create_update(
    session: AsyncSession, *, data: PolicyUpdateCreate, actor: Principal
) -> PolicyUpdateRead:
    """Store a draft update (see the module docstring for who may, and what is checked)."""
    markets = _ordered(data.markets)
    codes = _ordered(data.policy_codes)
    _check_markets_owned(actor, markets)
    if data.quiz_id is not None:
        await _check_quiz(session, quiz_id=data.quiz_id, actor=actor)
    await register_markets(session, markets)
    await register_policies(session, codes)
    original = PolicyUpdateTextIn(title=data.title, summary=data.summary, body=data.body)
    update = PolicyUpdate(
        id=uuid.uuid4(),
        status="draft",
        language=data.language,
        texts=texts_of(language=data.language, original=original, translations=data.translations),
        policy_codes=codes,
        markets=markets,
        effective_at=data.effective_at,
        created_by=actor_name(actor),
        quiz_id=data.quiz_id,
        created_at=utcnow(),
    )
    session.add(update)
    await session.flush()
    read = await read_update(session, update)
    await record_change(
        session,
        actor=actor,
        action="policy_update.created",
        entity_type=ENTITY,
        entity_id=update.id,
        after=read.model_dump(mode="json"),
    )
    return read


async def _draft_for_author(
    session: AsyncSession, *, update_id: uuid.UUID, actor: Principal
) -> PolicyUpdate:
    update = await get_update(session, update_id=update_id, viewer=actor, for_update=True)
    _check_markets_owned(actor, list(update.markets))
    if update.status != "draft":
        raise Conflict("the policy update is published already; a published update is final")
    return update


async def change_update(
    session: AsyncSession, *, update_id: uuid.UUID, data: PolicyUpdatePatch, actor: Principal
) -> PolicyUpdateRead:
    """Change a draft (409 once published); the fields given replace the stored ones."""
    update = await _draft_for_author(session, update_id=update_id, actor=actor)
    before = await read_update(session, update)
    given = data.model_fields_set
    if data.markets is not None:
        markets = _ordered(data.markets)
        _check_markets_owned(actor, markets)
        await register_markets(session, markets)
        update.markets = markets
    if data.policy_codes is not None:
        codes = _ordered(data.policy_codes)
        await register_policies(session, codes)
        update.policy_codes = codes
    if data.effective_at is not None:
        update.effective_at = data.effective_at
    if "quiz_id" in given:
        if data.quiz_id is not None:
            await _check_quiz(session, quiz_id=data.quiz_id, actor=actor)
        update.quiz_id = data.quiz_id
    language = data.language or update.language
    old_original = update.texts[update.language]
    original = PolicyUpdateTextIn(
        title=data.title or old_original["title"],
        summary=data.summary or old_original["summary"],
        body=data.body or old_original["body"],
    )
    if data.translations is not None:
        translations: dict[Any, PolicyUpdateTextIn] = dict(data.translations)
    else:
        translations = {
            lang: PolicyUpdateTextIn(**text)
            for lang, text in update.texts.items()
            if lang not in (update.language, language)
        }
    if language in translations:
        raise UnprocessableEntity(
            f"translations must not repeat the original's language '{language}'",
            errors=[{"loc": ["body", "translations"], "msg": "repeats the original's language"}],
        )
    update.language = language
    update.texts = texts_of(language=language, original=original, translations=translations)
    await session.flush()
    after = await read_update(session, update)
    await record_change(
        session,
        actor=actor,
        action="policy_update.changed",
        entity_type=ENTITY,
        entity_id=update.id,
        before=before.model_dump(mode="json"),
        after=after.model_dump(mode="json"),
    )
    return after


async def _new_versions(
    session: AsyncSession, *, update: PolicyUpdate, actor: Principal
) -> dict[str, int]:
    """A new version of each of the update's policy codes, from its ``effective_at``."""
    codes = sorted(update.policy_codes)
    await register_policies(session, codes)
    # Locked in code order: two updates of the same codes publish one after the other, and
    # cannot deadlock.
    policies = list(
        await session.scalars(
            select(Policy).where(Policy.code.in_(codes)).order_by(Policy.code).with_for_update()
        )
    )
    last: dict[str, int] = {
        code: version
        for code, version in await session.execute(
            select(PolicyVersion.policy_code, func.max(PolicyVersion.version))
            .where(PolicyVersion.policy_code.in_(codes))
            .group_by(PolicyVersion.policy_code)
        )
    }
    versions: dict[str, int] = {}
    for policy in policies:
        version = max(last.get(policy.code, 0), policy.version) + 1
        session.add(
            PolicyVersion(
                id=uuid.uuid4(),
                policy_code=policy.code,
                version=version,
                effective_at=update.effective_at,
                policy_update_id=update.id,
            )
        )
        before = {"version": policy.version}
        policy.version = version
        versions[policy.code] = version
        await record_change(
            session,
            actor=actor,
            action="policy.version_published",
            entity_type="policy",
            entity_id=policy.code,
            before=before,
            after={
                "version": version,
                "effective_at": update.effective_at.isoformat(),
                "policy_update_id": str(update.id),
            },
        )
    await session.flush()
    return versions


async def _assign_quiz(
    session: AsyncSession,
    *,
    update: PolicyUpdate,
    readers: dict[str, list[str]],
    actor: Principal,
) -> None:
    """Assign the attached quiz to the update's markets and announce it (``quiz.assigned``)."""
    if update.quiz_id is None:
        return
    quiz = await session.scalar(select(Quiz).where(Quiz.id == update.quiz_id).with_for_update())
    if quiz is None:
        return
    before = {
        "assignee_markets": list(quiz.assignee_markets),
        "policy_update_id": quiz.policy_update_id,
    }
    quiz.assignee_markets = sorted(set(quiz.assignee_markets) | set(update.markets))
    if quiz.policy_update_id is None:
        quiz.policy_update_id = str(update.id)
    await session.flush()
    await record_change(
        session,
        actor=actor,
        action="quiz.assigned",
        entity_type="quiz",
        entity_id=quiz.id,
        before=before,
        after={
            "assignee_markets": list(quiz.assignee_markets),
            "policy_update_id": quiz.policy_update_id,
        },
    )
    assignees = await quizzes.assigned_reviewers(session, quiz=quiz)
    await quizzes.record_quiz_assigned(
        session,
        quiz=quiz,
        markets=list(update.markets),
        reviewer_markets={
            reviewer_id: [market] for market, group in readers.items() for reviewer_id in group
        },
        assignees=len(assignees),
        policy_update_id=update.id,
    )


async def publish_update(
    session: AsyncSession, *, update_id: uuid.UUID, actor: Principal
) -> PolicyUpdateRead:
    """Publish a draft (see the module docstring); 409 when it is published already."""
    update = await _draft_for_author(session, update_id=update_id, actor=actor)
    before = await read_update(session, update)
    versions = await _new_versions(session, update=update, actor=actor)
    update.status = "published"
    update.published_at = utcnow()
    update.published_by = actor_name(actor)
    await session.flush()
    readers = await readers_by_market(session, markets=list(update.markets))
    await _assign_quiz(session, update=update, readers=readers, actor=actor)
    payload = PolicyUpdatePublished(
        id=update.id,
        language=update.language,
        texts={lang: PolicyUpdateText(**text) for lang, text in update.texts.items()},
        policy_codes=list(update.policy_codes),
        versions=versions,
        markets=list(update.markets),
        effective_at=update.effective_at,
        published_by=update.published_by,
        quiz_id=update.quiz_id,
    )
    for market in update.markets:
        await record_event(
            session,
            type=EventType.POLICY_UPDATE_PUBLISHED,
            data=payload,
            market=market,
            recipients=readers[market],
        )
    after = await read_update(session, update)
    await record_change(
        session,
        actor=actor,
        action="policy_update.published",
        entity_type=ENTITY,
        entity_id=update.id,
        before=before.model_dump(mode="json"),
        after=after.model_dump(mode="json"),
    )
    return after


def _check_published(update: PolicyUpdate) -> None:
    if update.status != "published":
        raise Conflict("the policy update is a draft: only a published update is acknowledged")


async def _record_acknowledgement(
    session: AsyncSession,
    *,
    update: PolicyUpdate,
    reviewer_id: str,
    via: str,
    actor: Principal | None,
    now: datetime,
) -> AcknowledgementRead:
    inserted = await session.scalar(
        insert(PolicyAcknowledgement)
        .values(policy_update_id=update.id, reviewer_id=reviewer_id, acknowledged_at=now, via=via)
        .on_conflict_do_nothing()
        .returning(PolicyAcknowledgement.acknowledged_at)
    )
    row = (
        await session.execute(
            select(PolicyAcknowledgement.acknowledged_at, PolicyAcknowledgement.via).where(
                PolicyAcknowledgement.policy_update_id == update.id,
                PolicyAcknowledgement.reviewer_id == reviewer_id,
            )
        )
    ).one()
    read = AcknowledgementRead(
        policy_update_id=update.id,
        reviewer_id=reviewer_id,
        acknowledged_at=row.acknowledged_at,
        via="link" if row.via == "link" else "api",
    )
    if inserted is not None:
        # Through a link there is no key: the reviewer the signed link names is in ``after``.
        await record_change(
            session,
            actor=actor,
            action="policy_update.acknowledged",
            entity_type=ENTITY,
            entity_id=update.id,
            after=read.model_dump(mode="json"),
        )
    return read


async def acknowledge_with_key(
    session: AsyncSession, *, update_id: uuid.UUID, actor: Principal, now: datetime
) -> AcknowledgementRead:
    """The caller's reviewer acknowledges the update (200 again when done already).

    403 for a key bound to no reviewer, or to one whose profile (or whose key's markets)
    lists none of the update's markets; 404 for an update that does not exist and for a
    draft the caller may not see; 409 for a draft it may see.
    """
    if actor.reviewer_id is None:
        raise Forbidden("only a reviewer's own key (or the link of a message) acknowledges")
    update = await get_update(session, update_id=update_id)
    if update.status != "published":
        # A draft stays unknown to whoever may not see it.
        await get_update(session, update_id=update_id, viewer=actor)
    _check_published(update)
    if not any(actor.can_see_market(market) for market in update.markets) or not await is_reader(
        session, update=update, reviewer_id=actor.reviewer_id
    ):
        raise Forbidden("this policy update is not for the markets of your profile")
    return await _record_acknowledgement(
        session, update=update, reviewer_id=actor.reviewer_id, via="api", actor=actor, now=now
    )


async def check_link(
    session: AsyncSession,
    *,
    settings: Settings,
    update_id: uuid.UUID,
    token: str,
    now: datetime,
) -> tuple[PolicyUpdate, str]:
    """The update and the reviewer a signed link acknowledges it for, checked without
    acknowledging: 403 for a forged, expired or other update's token and for a reviewer no
    longer of the update's markets, 404 for an update that does not exist, 409 for a draft."""
    reviewer_id = verify_acknowledgement_token(
        settings, policy_update_id=update_id, token=token, now=now
    )
    update = await get_update(session, update_id=update_id)
    _check_published(update)
    if not await is_reader(session, update=update, reviewer_id=reviewer_id):
        raise Forbidden("this policy update is not for the markets of your profile")
    return update, reviewer_id


async def acknowledge_with_link(
    session: AsyncSession,
    *,
    settings: Settings,
    update_id: uuid.UUID,
    token: str,
    now: datetime,
) -> AcknowledgementRead:
    """The reviewer a signed link names acknowledges the update (``check_link`` first)."""
    update, reviewer_id = await check_link(
        session, settings=settings, update_id=update_id, token=token, now=now
    )
    return await _record_acknowledgement(
        session, update=update, reviewer_id=reviewer_id, via="link", actor=None, now=now
    )


async def get_update_for(
    session: AsyncSession, *, update_id: uuid.UUID, viewer: Principal
) -> PolicyUpdateRead:
    """The update as ``viewer`` may see it (``visible_policy_updates``), else 404."""
    return await read_update(session, await get_update(session, update_id=update_id, viewer=viewer))


__all__ = [
    "acknowledge_with_key",
    "acknowledge_with_link",
    "change_update",
    "check_link",
    "create_update",
    "get_update_for",
    "publish_update",
    "visible_policy_updates",
]
