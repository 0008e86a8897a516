"""Policy updates: drafts, publishing once, per-market events, acknowledgements by key and by
signed link, version history and the version a verdict records, reminders, attached quizzes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.policy_updates import run_remind_pending_policy_readers
from shared.core.errors import Forbidden
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.core.workers import WorkerState
from shared.models import AuditLogEntry, Event, PolicyUpdate, Quiz, Verdict
from shared.policy_updates.acknowledgement_links import (
    acknowledgement_token,
    acknowledgement_url,
    verify_acknowledgement_token,
)
from shared.policy_updates.reminders import remind_pending_readers
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.audits import claim, make_audits, set_profile, verdict
from tests.support.quizzes import create_quiz

Sessions = async_sessionmaker[AsyncSession]


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def update_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Hate speech: coded slurs",
        "summary": "Coded slurs count as hate speech.",
        "body": "From the effective date, coded slurs are removed under hate_speech.",
        "policy_codes": ["hate_speech"],
        "markets": ["DE"],
        "effective_at": in_hours(72),
    }
    body.update(overrides)
    return body


async def create_update(client: httpx.AsyncClient, key: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/policy-updates", json=update_body(**overrides), headers=auth(key)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def publish(client: httpx.AsyncClient, key: str, update_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/policy-updates/{update_id}/publish", headers=auth(key))
    assert response.status_code == 200, response.text
    published: dict[str, Any] = response.json()
    return published


async def events_of(sessionmaker: Sessions, type_: str) -> list[Event]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.type == type_).order_by(Event.market.nulls_first())
            )
        )


async def audit_actions(sessionmaker: Sessions, entity_type: str) -> list[str]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_type == entity_type)
                .order_by(AuditLogEntry.id)
            )
        )


@pytest.fixture
async def poc_key(sessionmaker: Sessions) -> str:
    return await make_key(sessionmaker, "policy_poc", reviewer_id="poc-1")


async def reader(
    sessionmaker: Sessions, reviewer_id: str, markets: list[str], role: str = "moderator"
) -> str:
    """A key of ``role`` bound to a reviewer whose profile lists ``markets``."""
    await set_profile(sessionmaker, reviewer_id, markets, ["de"])
    return await make_key(sessionmaker, role, reviewer_id=reviewer_id)


# --------------------------------------------------------------------- write and publish


async def test_create_publish_list_and_read(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions
) -> None:
    de_reader = await reader(sessionmaker, "mod-de", ["DE"])
    fr_reader = await reader(sessionmaker, "mod-fr", ["FR"])
    created = await create_update(
        client,
        poc_key,
        markets=["de"],
        translations={"de": {"title": "Hassrede", "summary": "Kurz", "body": "Lang"}},
    )
    assert created["status"] == "draft"
    assert created["markets"] == ["DE"]
    assert created["language"] == "en"
    assert created["translations"] == {
        "de": {"title": "Hassrede", "summary": "Kurz", "body": "Lang"}
    }
    assert created["versions"] == {}
    update_id = created["id"]

    # A draft is the authors' (and managers'): readers neither list nor read it.
    listed = (await client.get("/v1/policy-updates", headers=auth(poc_key))).json()
    assert [u["id"] for u in listed["items"]] == [update_id]
    assert (await client.get("/v1/policy-updates", headers=auth(de_reader))).json()["items"] == []
    hidden = await client.get(f"/v1/policy-updates/{update_id}", headers=auth(de_reader))
    assert hidden.status_code == 404

    published = await publish(client, poc_key, update_id)
    assert published["status"] == "published"
    assert published["published_by"] == "poc-1"
    assert published["versions"] == {"hate_speech": 2}

    seen = await client.get(f"/v1/policy-updates/{update_id}", headers=auth(de_reader))
    assert seen.status_code == 200
    assert seen.json()["title"] == "Hate speech: coded slurs"
    # Another market's reviewer sees nothing of it.
    assert (await client.get("/v1/policy-updates", headers=auth(fr_reader))).json()["items"] == []
    other = await client.get(f"/v1/policy-updates/{update_id}", headers=auth(fr_reader))
    assert other.status_code == 404

    # Filters and keyset paging (newest first).
    second = await create_update(client, poc_key, policy_codes=["violent_graphic"])

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/policy-updates", params=params, headers=auth(poc_key))
        assert response.status_code == 200, response.text
        return [u["id"] for u in response.json()["items"]]

    assert await ids(status="published") == [update_id]
    assert await ids(status="draft") == [second["id"]]
    assert await ids(policy_code="violent_graphic") == [second["id"]]
    assert await ids(market="FR") == []
    first_page = (
        await client.get("/v1/policy-updates", params={"limit": 1}, headers=auth(poc_key))
    ).json()
    assert [u["id"] for u in first_page["items"]] == [second["id"]]
    rest = await client.get(
        "/v1/policy-updates",
        params={"limit": 1, "cursor": first_page["next_cursor"]},
        headers=auth(poc_key),
    )
    assert [u["id"] for u in rest.json()["items"]] == [update_id]
    assert rest.json()["next_cursor"] is None

    assert await audit_actions(sessionmaker, "policy_update") == [
        "policy_update.created",
        "policy_update.published",
        "policy_update.created",
    ]
    assert await audit_actions(sessionmaker, "policy") == ["policy.version_published"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"markets": []}, "markets"),
        ({"markets": ["XX"]}, "markets"),
        ({"policy_codes": []}, "policy_codes"),
        ({"effective_at": "2026-12-01T10:00:00"}, "effective_at"),  # naive
        ({"effective_at": "0001-01-01T00:00:00Z"}, "effective_at"),
        ({"effective_at": "9999-12-31T23:59:59Z"}, "effective_at"),
        ({"language": "fr"}, "language"),
        ({"translations": {"fr": {"title": "t", "summary": "s", "body": "b"}}}, "translations"),
        ({"translations": {"en": {"title": "t", "summary": "s", "body": "b"}}}, None),
        ({"title": ""}, "title"),
        ({"quiz_id": str(uuid.uuid4())}, "quiz_id"),
    ],
)
async def test_bad_updates_are_refused_with_422(
    client: httpx.AsyncClient, poc_key: str, change: dict[str, Any], where: str | None
) -> None:
    body = update_body(**change)
    response = await client.post("/v1/policy-updates", json=body, headers=auth(poc_key))
    assert response.status_code == 422, response.text
    problem = response.json()
    if where is not None:
        assert any(where in error["loc"] for error in problem["errors"]), problem
    missing = {k: v for k, v in update_body().items() if k != "markets"}
    response = await client.post("/v1/policy-updates", json=missing, headers=auth(poc_key))
    assert response.status_code == 422


async def test_market_scoped_authors_write_for_their_markets_only(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    de_poc = await make_key(sessionmaker, "policy_poc", markets=["DE"])
    refused = await client.post(
        "/v1/policy-updates", json=update_body(markets=["DE", "FR"]), headers=auth(de_poc)
    )
    assert refused.status_code == 403
    own = await create_update(client, de_poc)
    moved = await client.patch(
        f"/v1/policy-updates/{own['id']}", json={"markets": ["FR"]}, headers=auth(de_poc)
    )
    assert moved.status_code == 403
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-1")
    forbidden = await client.post("/v1/policy-updates", json=update_body(), headers=auth(moderator))
    assert forbidden.status_code == 403


async def test_publish_once_and_no_change_after_publishing(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions
) -> None:
    created = await create_update(client, poc_key)
    update_id = created["id"]
    changed = await client.patch(
        f"/v1/policy-updates/{update_id}",
        json={"title": "Coded slurs", "markets": ["DE", "AT"], "language": "de"},
        headers=auth(poc_key),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Coded slurs"
    assert changed.json()["markets"] == ["DE", "AT"]
    assert changed.json()["language"] == "de"
    nulls = await client.patch(
        f"/v1/policy-updates/{update_id}", json={"markets": None}, headers=auth(poc_key)
    )
    assert nulls.status_code == 422
    empty = await client.patch(f"/v1/policy-updates/{update_id}", json={}, headers=auth(poc_key))
    assert empty.status_code == 422

    await publish(client, poc_key, update_id)
    again = await client.post(f"/v1/policy-updates/{update_id}/publish", headers=auth(poc_key))
    assert again.status_code == 409
    late = await client.patch(
        f"/v1/policy-updates/{update_id}", json={"title": "Too late"}, headers=auth(poc_key)
    )
    assert late.status_code == 409
    missing = await client.post(f"/v1/policy-updates/{uuid.uuid4()}/publish", headers=auth(poc_key))
    assert missing.status_code == 404

    # One new version per publication, not two; the change and the publication are logged.
    versions = await client.get("/v1/policies/hate_speech/versions", headers=auth(poc_key))
    assert [v["version"] for v in versions.json()["versions"]] == [2]
    assert await audit_actions(sessionmaker, "policy_update") == [
        "policy_update.created",
        "policy_update.changed",
        "policy_update.published",
    ]
    async with sessionmaker() as session:
        entry = await session.scalar(
            select(AuditLogEntry).where(AuditLogEntry.action == "policy_update.changed")
        )
    assert entry is not None
    assert entry.before is not None
    assert entry.after is not None
    assert entry.before["title"] != entry.after["title"]


async def test_publishing_records_one_event_per_market_each_reader_once(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions
) -> None:
    await set_profile(sessionmaker, "rev-de", ["DE"], ["de"])
    await set_profile(sessionmaker, "rev-at-de", ["AT", "DE"], ["de"])
    await set_profile(sessionmaker, "rev-at", ["AT"], ["de"])
    await set_profile(sessionmaker, "rev-fr", ["FR"], ["fr"])
    created = await create_update(
        client,
        poc_key,
        markets=["DE", "AT"],
        policy_codes=["hate_speech", "violent_graphic"],
        translations={"de": {"title": "Titel", "summary": "Kurz", "body": "Lang"}},
    )
    await publish(client, poc_key, created["id"])

    events = await events_of(sessionmaker, "policy_update.published")
    assert [(e.market, e.recipients) for e in events] == [
        ("AT", ["rev-at"]),
        ("DE", ["rev-at-de", "rev-de"]),
    ]
    data = events[0].data
    assert events[1].data == data
    assert data["id"] == created["id"]
    assert data["markets"] == ["DE", "AT"]
    assert data["versions"] == {"hate_speech": 2, "violent_graphic": 2}
    assert data["language"] == "en"
    assert set(data["texts"]) == {"en", "de"}
    assert data["published_by"] == "poc-1"


# ------------------------------------------------------------------------ acknowledging


async def test_acknowledging_with_own_key_and_who_is_pending(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions, admin_key: str
) -> None:
    first = await reader(sessionmaker, "rev-1", ["DE"])
    await set_profile(sessionmaker, "rev-2", ["DE"], ["de"])
    await set_profile(sessionmaker, "rev-3", ["AT", "DE"], ["de"])
    elsewhere = await reader(sessionmaker, "rev-fr", ["FR"], role="qa_auditor")
    created = await create_update(client, poc_key, markets=["DE", "AT"])
    update_id = created["id"]
    url = f"/v1/policy-updates/{update_id}/acknowledge"
    # A draft cannot be acknowledged (a reader cannot even see it).
    assert (await client.post(url, headers=auth(first))).status_code == 404
    await publish(client, poc_key, update_id)

    done = await client.post(url, headers=auth(first))
    assert done.status_code == 200, done.text
    assert done.json()["reviewer_id"] == "rev-1"
    assert done.json()["via"] == "api"
    repeated = await client.post(url, headers=auth(first))
    assert repeated.status_code == 200
    assert repeated.json()["acknowledged_at"] == done.json()["acknowledged_at"]

    # Another market's reviewer may not; nor may a key bound to no reviewer.
    assert (await client.post(url, headers=auth(elsewhere))).status_code == 403
    assert (await client.post(url, headers=auth(admin_key))).status_code == 403
    assert (await client.post(url)).status_code == 401
    # An admin key bound to a reviewer of another market sees the update, yet is no reader.
    fr_admin = await make_key(sessionmaker, "admin", reviewer_id="rev-fr")
    assert (await client.post(url, headers=auth(fr_admin))).status_code == 403
    # An author who is a reader of a draft is told it is a draft.
    de_admin = await make_key(sessionmaker, "admin", reviewer_id="rev-2")
    draft = await create_update(client, poc_key)
    draft_url = f"/v1/policy-updates/{draft['id']}/acknowledge"
    assert (await client.post(draft_url, headers=auth(de_admin))).status_code == 409
    assert (await client.post(draft_url, headers=auth(first))).status_code == 404

    listing = await client.get(f"/v1/policy-updates/{update_id}/acknowledgements",
                               headers=auth(poc_key))  # fmt: skip
    assert listing.status_code == 200
    assert listing.json() == {
        "acknowledged": [{"reviewer_id": "rev-1", "at": done.json()["acknowledged_at"]}],
        "pending": ["rev-2", "rev-3"],
    }
    scoped = await make_key(sessionmaker, "manager", markets=["AT"])
    at_only = await client.get(f"/v1/policy-updates/{update_id}/acknowledgements",
                               headers=auth(scoped))  # fmt: skip
    assert at_only.json() == {"acknowledged": [], "pending": ["rev-3"]}
    assert await audit_actions(sessionmaker, "policy_update") == [
        "policy_update.created",
        "policy_update.published",
        "policy_update.acknowledged",
        "policy_update.created",
    ]


async def test_signed_link_acknowledges_without_a_key(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions, settings: Settings
) -> None:
    await set_profile(sessionmaker, "rev-1", ["DE"], ["de"])
    await set_profile(sessionmaker, "rev-2", ["DE"], ["de"])
    created = await create_update(client, poc_key, title="<script>alert(1)</script> & more")
    other = await create_update(client, poc_key)
    draft = await create_update(client, poc_key)
    await publish(client, poc_key, created["id"])
    await publish(client, poc_key, other["id"])
    update_id = uuid.UUID(created["id"])
    now = datetime.now(UTC)
    link = acknowledgement_url(settings, policy_update_id=update_id, reviewer_id="rev-1", now=now)
    assert link.startswith(f"{settings.public_url}/v1/policy-updates/{update_id}/acknowledge?")
    token = parse_qs(urlsplit(link).query)["token"][0]
    path = f"/v1/policy-updates/{update_id}/acknowledge"

    # Opening the link (what a mail scanner does) shows a page and acknowledges nothing.
    page = await client.get(path, params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page.text
    assert '<form method="post"' in page.text
    # In the reviewer's language (the profile's: de); the text is the original, the only one.
    assert '<html lang="de">' in page.text
    assert "Ich habe diese Richtlinienänderung gelesen" in page.text
    assert "no-referrer" in page.headers["referrer-policy"]
    pending = await client.get(f"{path}ments", headers=auth(poc_key))
    assert pending.json()["acknowledged"] == []

    # The form posts back with the token, no key: acknowledged as rev-1, via the link.
    done = await client.post(path, params={"token": token})
    assert done.status_code == 200, done.text
    assert done.json()["reviewer_id"] == "rev-1"
    assert done.json()["via"] == "link"
    again = await client.post(path, params={"token": token}, headers={"Accept": "text/html"})
    assert again.status_code == 200
    assert again.headers["content-type"].startswith("text/html")
    listing = (await client.get(f"{path}ments", headers=auth(poc_key))).json()
    assert listing["acknowledged"] == [
        {"reviewer_id": "rev-1", "at": done.json()["acknowledged_at"]}
    ]
    assert listing["pending"] == ["rev-2"]

    # Forged, expired, another update's, a draft's, garbage: refused, nothing stored.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    expired = acknowledgement_token(
        settings, policy_update_id=update_id, reviewer_id="rev-2", expires_at=now - timedelta(1)
    )
    elsewhere = acknowledgement_token(
        settings,
        policy_update_id=uuid.UUID(other["id"]),
        reviewer_id="rev-2",
        expires_at=now + timedelta(days=1),
    )
    for bad in (forged, expired, elsewhere, "not-a-token", "%%%"):
        for method in ("GET", "POST"):
            response = await client.request(method, path, params={"token": bad})
            assert response.status_code == 403, (bad, method, response.text)
    draft_token = acknowledgement_token(
        settings,
        policy_update_id=uuid.UUID(draft["id"]),
        reviewer_id="rev-2",
        expires_at=now + timedelta(days=1),
    )
    draft_ack = await client.post(
        f"/v1/policy-updates/{draft['id']}/acknowledge", params={"token": draft_token}
    )
    assert draft_ack.status_code == 409
    gone = uuid.uuid4()
    gone_token = acknowledgement_token(
        settings, policy_update_id=gone, reviewer_id="rev-2", expires_at=now + timedelta(days=1)
    )
    missing = await client.post(
        f"/v1/policy-updates/{gone}/acknowledge", params={"token": gone_token}
    )
    assert missing.status_code == 404
    # A link for a reviewer outside the update's markets acknowledges nothing either.
    await set_profile(sessionmaker, "rev-fr", ["FR"], ["fr"])
    foreign = acknowledgement_token(
        settings, policy_update_id=update_id, reviewer_id="rev-fr", expires_at=now + timedelta(1)
    )
    assert (await client.post(path, params={"token": foreign})).status_code == 403
    assert (await client.get(path)).status_code == 422
    listing = (await client.get(f"{path}ments", headers=auth(poc_key))).json()
    assert [a["reviewer_id"] for a in listing["acknowledged"]] == ["rev-1"]


def test_tokens_expire_and_bind_update_and_reviewer(settings: Settings) -> None:
    update_id = uuid.uuid4()
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    link = acknowledgement_url(settings, policy_update_id=update_id, reviewer_id="r 1/ü", now=now)
    token = parse_qs(urlsplit(link).query)["token"][0]
    # No secret inside: the token is readable (and signed), the reviewer id round-trips.
    assert (
        verify_acknowledgement_token(settings, policy_update_id=update_id, token=token, now=now)
        == "r 1/ü"
    )
    ttl = timedelta(hours=settings.acknowledgement_link_ttl_hours)
    still = now + ttl - timedelta(seconds=1)
    assert (
        verify_acknowledgement_token(settings, policy_update_id=update_id, token=token, now=still)
        == "r 1/ü"
    )
    with pytest.raises(Forbidden, match="expired"):
        verify_acknowledgement_token(
            settings, policy_update_id=update_id, token=token, now=now + ttl
        )
    with pytest.raises(Forbidden, match="another policy update"):
        verify_acknowledgement_token(settings, policy_update_id=uuid.uuid4(), token=token, now=now)
    # Signed under another encryption key (another deployment): not valid here.
    elsewhere = settings.model_copy(
        update={"encryption_key": SecretStr(Fernet.generate_key().decode())}
    )
    with pytest.raises(Forbidden, match="not valid"):
        verify_acknowledgement_token(elsewhere, policy_update_id=update_id, token=token, now=now)


# ----------------------------------------------------------------------------- versions


async def judged_version(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    auditor_key: str,
    *,
    n: int,
    code: str,
    decided_at: datetime,
) -> int:
    """Post a decision labelled ``code`` made at ``decided_at``, audit it, judge it: the
    version of ``code`` its verdict records."""
    event = decision_event(n, policy_labels=[code], decided_at=decided_at.isoformat())
    [audit_id] = await make_audits(sender, sessionmaker, [event])
    claimed = await claim(client, auditor_key)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == str(audit_id)
    judged = await verdict(client, auditor_key, audit_id)
    assert judged.status_code == 200, judged.text
    async with sessionmaker() as session:
        recorded = await session.scalar(
            select(Verdict.policy_versions).where(Verdict.audit_id == audit_id)
        )
    assert recorded is not None
    version: int = recorded[code]
    return version


async def test_versions_and_the_version_a_verdict_records(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions, sender: SignedSender
) -> None:
    now = datetime.now(UTC)
    tomorrow = await create_update(
        client, poc_key, policy_codes=["hate_speech"], effective_at=(now + timedelta(1)).isoformat()
    )
    await publish(client, poc_key, tomorrow["id"])
    earlier = await create_update(
        client,
        poc_key,
        policy_codes=["violent_graphic"],
        effective_at=(now - timedelta(hours=2)).isoformat(),
    )
    await publish(client, poc_key, earlier["id"])

    history = await client.get("/v1/policies/hate_speech/versions", headers=auth(poc_key))
    assert history.status_code == 200
    assert history.json()["version"] == 2
    [entry] = history.json()["versions"]
    assert entry["version"] == 2
    assert entry["policy_update_id"] == tomorrow["id"]
    assert datetime.fromisoformat(entry["effective_at"]) == datetime.fromisoformat(
        tomorrow["effective_at"]
    )
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-x")
    assert (
        await client.get("/v1/policies/hate_speech/versions", headers=auth(moderator))
    ).status_code == 200
    unknown = await client.get("/v1/policies/never_seen/versions", headers=auth(poc_key))
    assert unknown.status_code == 404

    auditor_key = await reader(sessionmaker, "aud-1", ["DE"], role="qa_auditor")

    async def version_of(n: int, code: str, hours_ago: float) -> int:
        return await judged_version(
            client,
            sender,
            sessionmaker,
            auditor_key,
            n=n,
            code=code,
            decided_at=now - timedelta(hours=hours_ago),
        )

    # v2 of hate_speech takes effect tomorrow: today's decision was made under v1.
    assert await version_of(1, "hate_speech", 1) == 1
    # v2 of violent_graphic took effect two hours ago: before it v1, after it v2.
    assert await version_of(2, "violent_graphic", 3) == 1
    assert await version_of(3, "violent_graphic", 1) == 2
    # A policy no update touched: its own version.
    assert await version_of(4, "spam", 1) == 1

    # A third version of violent_graphic, effective in a week: decisions now still get v2.
    later = await create_update(
        client, poc_key, policy_codes=["violent_graphic"], effective_at=in_hours(24 * 7)
    )
    assert (await publish(client, poc_key, later["id"]))["versions"] == {"violent_graphic": 3}
    assert await version_of(5, "violent_graphic", 0.5) == 2


# ---------------------------------------------------------------------------- reminders


async def test_reminder_goes_once_to_the_pending_readers(
    client: httpx.AsyncClient,
    poc_key: str,
    sessionmaker: Sessions,
    settings: Settings,
    engine: Any,
    queue: ArqRedis,
) -> None:
    first = await reader(sessionmaker, "rev-1", ["DE"])
    await set_profile(sessionmaker, "rev-2", ["DE"], ["de"])
    await set_profile(sessionmaker, "rev-3", ["AT"], ["de"])
    soon = await create_update(client, poc_key, markets=["DE", "AT"], effective_at=in_hours(12))
    far = await create_update(client, poc_key, effective_at=in_hours(24 * 5))
    everyone_read = await create_update(client, poc_key, markets=["AT"], effective_at=in_hours(6))
    draft = await create_update(client, poc_key, effective_at=in_hours(6))
    assert draft["status"] == "draft"
    for update in (soon, far, everyone_read):
        await publish(client, poc_key, update["id"])
    ack = await client.post(f"/v1/policy-updates/{soon['id']}/acknowledge", headers=auth(first))
    assert ack.status_code == 200
    rev3 = await make_key(sessionmaker, "moderator", reviewer_id="rev-3")
    ack = await client.post(
        f"/v1/policy-updates/{everyone_read['id']}/acknowledge", headers=auth(rev3)
    )
    assert ack.status_code == 200

    # Two runs at once: one reminds, the other finds nothing left to do.
    now = datetime.now(UTC)

    async def run() -> int:
        async with sessionmaker() as session, session.begin():
            return await remind_pending_readers(
                session, now=now, lead_hours=settings.policy_update_reminder_hours
            )

    assert sorted(await asyncio.gather(run(), run())) == [0, 1]
    assert await run() == 0
    state = WorkerState(settings=settings, engine=engine, sessionmaker=sessionmaker, redis=queue)
    assert await run_remind_pending_policy_readers(state) == 0

    reminders = await events_of(sessionmaker, "policy_update.reminder")
    assert [(e.market, e.recipients) for e in reminders] == [("AT", ["rev-3"]), ("DE", ["rev-2"])]
    assert reminders[0].data["id"] == soon["id"]
    assert reminders[0].data["pending"] == 2
    assert reminders[0].data["acknowledged"] == 1
    async with sessionmaker() as session:
        marked = {
            update_id: sent_at
            for update_id, sent_at in await session.execute(
                select(PolicyUpdate.id, PolicyUpdate.reminder_sent_at)
            )
        }
    assert marked[uuid.UUID(soon["id"])] is not None
    assert marked[uuid.UUID(far["id"])] is None
    assert marked[uuid.UUID(everyone_read["id"])] is None
    assert "policy_update.reminder_sent" in await audit_actions(sessionmaker, "policy_update")

    # Within the lead time of the far one, the job reminds it (once).
    later = now + timedelta(days=4, hours=12)
    async with sessionmaker() as session, session.begin():
        assert await remind_pending_readers(session, now=later, lead_hours=24) == 1


# ------------------------------------------------------------------------------ quizzes


async def test_attached_quiz_is_assigned_when_the_update_is_published(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions
) -> None:
    await set_profile(sessionmaker, "rev-de", ["DE"], ["de"])
    await set_profile(sessionmaker, "rev-at", ["AT"], ["de"])
    quiz = await create_quiz(client, poc_key, assignee_reviewer_ids=["rev-x"])
    # Created for reviewers by id only: one event without a market, to them.
    [created_event] = await events_of(sessionmaker, "quiz.assigned")
    assert created_event.market is None
    assert created_event.recipients == ["rev-x"]
    assert created_event.data["assignees"] == 1

    update = await create_update(client, poc_key, markets=["DE", "AT"], quiz_id=quiz["id"])
    assert update["quiz_id"] == quiz["id"]
    assert len(await events_of(sessionmaker, "quiz.assigned")) == 1  # a draft assigns nothing
    published = await publish(client, poc_key, update["id"])
    assert published["quiz_id"] == quiz["id"]

    async with sessionmaker() as session:
        stored = await session.get(Quiz, uuid.UUID(quiz["id"]))
    assert stored is not None
    assert stored.assignee_markets == ["AT", "DE"]
    assert stored.policy_update_id == update["id"]
    assigned = [e for e in await events_of(sessionmaker, "quiz.assigned") if e.market]
    assert [(e.market, e.recipients) for e in assigned] == [("AT", ["rev-at"]), ("DE", ["rev-de"])]
    assert assigned[0].data["policy_update_id"] == update["id"]
    assert assigned[0].data["markets"] == ["DE", "AT"]
    assert assigned[0].data["assignees"] == 3
    [published_event, _] = await events_of(sessionmaker, "policy_update.published")
    assert published_event.data["quiz_id"] == quiz["id"]
    assert await audit_actions(sessionmaker, "quiz") == ["quiz.created", "quiz.assigned"]

    # The assigned reviewers can now see the quiz.
    de_key = await make_key(sessionmaker, "moderator", reviewer_id="rev-de")
    assert (await client.get(f"/v1/quizzes/{quiz['id']}", headers=auth(de_key))).status_code == 200


async def test_a_quiz_assigned_to_markets_announces_itself_per_market(
    client: httpx.AsyncClient, poc_key: str, sessionmaker: Sessions
) -> None:
    await set_profile(sessionmaker, "rev-de", ["DE"], ["de"])
    await set_profile(sessionmaker, "rev-both", ["AT", "DE"], ["de"])
    await create_quiz(
        client,
        poc_key,
        assignee_reviewer_ids=["rev-solo"],
        assignee_markets=["DE", "AT"],
    )
    events = await events_of(sessionmaker, "quiz.assigned")
    # One event per market; a reviewer of both under the first (AT, the quiz's markets are
    # kept sorted); one assigned by id only is told with the first market's event.
    assert [(e.market, e.recipients) for e in events] == [
        ("AT", ["rev-both", "rev-solo"]),
        ("DE", ["rev-de"]),
    ]
    assert events[0].data["markets"] == ["AT", "DE"]
    assert events[0].data["assignees"] == 3
