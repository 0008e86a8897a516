"""Builders for the audit work queue: reviewer profiles, auditor keys, pending audits, and
claiming and judging them over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Audit, Decision, Reviewer
from tests.conftest import SignedSender, auth, make_key

Sessions = async_sessionmaker[AsyncSession]


async def make_audits(
    sender: SignedSender, sessionmaker: Sessions, events: list[dict[str, Any]], **fields: Any
) -> list[uuid.UUID]:
    """Post the events, then create one pending audit per decision, priority in list order."""
    response = await sender.post({"events": events})
    assert response.status_code == 202, response.text
    event_ids = [event["event_id"] for event in events]
    async with sessionmaker() as session, session.begin():
        decisions = {
            decision.event_id: decision
            for decision in await session.scalars(
                select(Decision).where(Decision.event_id.in_(event_ids))
            )
        }
        audits = []
        for index, event_id in enumerate(event_ids):
            decision = decisions[event_id]
            audit = Audit(
                id=uuid.uuid4(),
                decision_id=decision.id,
                reason="base_rate",
                market=decision.market,
                queue=decision.queue,
                language=decision.language,
                moderator_id=decision.moderator_id,
                policy_labels=decision.policy_labels,
                day=decision.decided_at.date(),
                priority=float(index),
            )
            for name, value in fields.items():
                setattr(audit, name, value)
            audits.append(audit)
        session.add_all(audits)
    return [audit.id for audit in audits]


async def set_profile(
    sessionmaker: Sessions, reviewer_id: str, markets: list[str], languages: list[str]
) -> None:
    """A reviewer profile (what ``PUT /v1/reviewers/{id}`` stores)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            insert(Reviewer)
            .values(id=reviewer_id, markets=markets, languages=languages)
            .on_conflict_do_update(
                index_elements=[Reviewer.id], set_={"markets": markets, "languages": languages}
            )
        )


async def auditor(
    sessionmaker: Sessions,
    reviewer_id: str = "aud-1",
    work_markets: list[str] | None = None,
    languages: list[str] | None = None,
    key_markets: list[str] | None = None,
) -> str:
    """A QA auditor key bound to a reviewer who works in DE / de unless told otherwise."""
    key = await make_key(sessionmaker, "qa_auditor", reviewer_id=reviewer_id, markets=key_markets)
    await set_profile(sessionmaker, reviewer_id, work_markets or ["DE"], languages or ["de"])
    return key


async def claim(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """``POST /v1/audits/claim`` with ``key``."""
    return await client.post("/v1/audits/claim", headers=auth(key))


async def verdict(
    client: httpx.AsyncClient, key: str, audit_id: object, **body: Any
) -> httpx.Response:
    """A verdict on ``audit_id`` (``correct`` unless ``body`` says otherwise)."""
    return await client.post(
        f"/v1/audits/{audit_id}/verdict", json=body or {"outcome": "correct"}, headers=auth(key)
    )


async def drain(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    """Claim and judge (correct) until 204; the audits handed out, in order."""
    handed: list[dict[str, Any]] = []
    for _ in range(50):
        response = await claim(client, key)
        if response.status_code == 204:
            return handed
        assert response.status_code == 200, response.text
        handed.append(response.json())
        judged = await verdict(client, key, response.json()["id"])
        assert judged.status_code == 200, judged.text
    raise AssertionError("the queue did not run dry")
