"""Reviewer profiles: ``PUT /v1/reviewers/{id}`` creates or updates, audit-logged."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import AuditLogEntry, Market
from tests.conftest import SignedSender, auth, decision_event, make_key


async def test_put_creates_then_updates_and_is_logged(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    profile = {"display_name": "Ana", "markets": ["de", "AT"], "languages": ["de", "en"]}
    created = await client.put("/v1/reviewers/qa-1", json=profile, headers=auth(admin_key))
    assert created.status_code == 201, created.text
    assert created.json()["markets"] == ["AT", "DE"]
    assert created.json()["languages"] == ["de", "en"]

    changed = {**profile, "markets": ["CH"], "started_on": "2026-11-01"}
    updated = await client.put("/v1/reviewers/qa-1", json=changed, headers=auth(admin_key))
    assert updated.status_code == 200
    assert updated.json()["markets"] == ["CH"]
    assert updated.json()["started_on"] == "2026-11-01"

    fetched = await client.get("/v1/reviewers/qa-1", headers=auth(admin_key))
    assert fetched.json() == updated.json()
    async with sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_id == "qa-1")
                .order_by(AuditLogEntry.id)
            )
        )
        markets = set(await session.scalars(select(Market.code)))
    assert actions == ["reviewer.created", "reviewer.updated"]
    assert {"AT", "DE", "CH"} <= markets  # registered on first reference


async def test_moderator_first_seen_in_a_decision_gets_a_profile_as_update(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    await sender.post(decision_event(1, moderator_id="mod-9"))
    response = await client.put(
        "/v1/reviewers/mod-9",
        json={"markets": ["DE"], "languages": ["de"]},
        headers=auth(admin_key),
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"markets": ["Germany"], "languages": ["de"]},
        {"markets": ["DE"], "languages": ["German!"]},
        {"languages": ["de"]},
        {"markets": ["DE"], "languages": ["de"], "colour": "blue"},
        {"markets": ["DE"], "languages": ["de"], "team": "trust and safety"},
        {"markets": ["DE"], "languages": ["de"], "team": ""},
        {"markets": ["DE"], "languages": ["de"], "team": "t" * 65},
    ],
)
async def test_bad_profiles_are_422(
    client: httpx.AsyncClient, admin_key: str, body: dict[str, object]
) -> None:
    response = await client.put("/v1/reviewers/x", json=body, headers=auth(admin_key))
    assert response.status_code == 422
    assert (await client.get("/v1/reviewers/x", headers=auth(admin_key))).status_code == 404


@pytest.mark.parametrize(
    ("role", "put_allowed", "get_allowed"),
    [
        ("manager", True, True),
        ("policy_poc", False, True),
        ("qa_auditor", False, True),
        ("moderator", False, False),
    ],
)
async def test_roles(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    put_allowed: bool,
    get_allowed: bool,
) -> None:
    extra = {"reviewer_id": "mod-1"} if role == "moderator" else {}
    key = await make_key(sessionmaker, role, **extra)
    body = {"markets": ["DE"], "languages": ["de"]}
    put = await client.put("/v1/reviewers/r-1", json=body, headers=auth(key))
    assert (put.status_code in (200, 201)) is put_allowed
    if not put_allowed:
        assert put.status_code == 403
    listed = await client.get("/v1/reviewers", headers=auth(key))
    assert (listed.status_code == 200) is get_allowed
    assert (await client.put("/v1/reviewers/r-1", json=body)).status_code == 401


async def test_market_scoped_manager_assigns_only_its_markets(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    key = await make_key(sessionmaker, "manager", markets=["AT"])
    inside = await client.put(
        "/v1/reviewers/r-2", json={"markets": ["AT"], "languages": ["de"]}, headers=auth(key)
    )
    assert inside.status_code == 201
    outside = await client.put(
        "/v1/reviewers/r-3", json={"markets": ["DE"], "languages": ["de"]}, headers=auth(key)
    )
    assert outside.status_code == 403


async def test_list_filters_and_pages(client: httpx.AsyncClient, admin_key: str) -> None:
    for n in range(5):
        market = "DE" if n % 2 else "AT"
        await client.put(
            f"/v1/reviewers/r-{n}",
            json={"markets": [market], "languages": ["de"]},
            headers=auth(admin_key),
        )
    first = (await client.get("/v1/reviewers?limit=2", headers=auth(admin_key))).json()
    assert [r["id"] for r in first["items"]] == ["r-0", "r-1"]
    rest = await client.get(
        "/v1/reviewers", params={"cursor": first["next_cursor"]}, headers=auth(admin_key)
    )
    assert [r["id"] for r in rest.json()["items"]] == ["r-2", "r-3", "r-4"]
    german = await client.get("/v1/reviewers?market=DE", headers=auth(admin_key))
    assert [r["id"] for r in german.json()["items"]] == ["r-1", "r-3"]


async def test_team_is_set_replaced_cleared_and_filtered(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    base = {"markets": ["DE"], "languages": ["de"]}
    for reviewer_id, team in [("t-1", "de-hate"), ("t-2", "de-spam"), ("t-3", "de-hate")]:
        response = await client.put(
            f"/v1/reviewers/{reviewer_id}", json={**base, "team": team}, headers=auth(admin_key)
        )
        assert response.status_code == 201, response.text
        assert response.json()["team"] == team
    hate = await client.get("/v1/reviewers?team=de-hate", headers=auth(admin_key))
    assert [r["id"] for r in hate.json()["items"]] == ["t-1", "t-3"]

    moved = await client.put(
        "/v1/reviewers/t-3", json={**base, "team": "de-spam"}, headers=auth(admin_key)
    )
    assert moved.json()["team"] == "de-spam"
    spam = await client.get("/v1/reviewers?team=de-spam", headers=auth(admin_key))
    assert [r["id"] for r in spam.json()["items"]] == ["t-2", "t-3"]

    # A PUT replaces the profile: no team given, no team kept.
    cleared = await client.put("/v1/reviewers/t-1", json=base, headers=auth(admin_key))
    assert cleared.json()["team"] is None
    emptied = await client.get("/v1/reviewers?team=de-hate", headers=auth(admin_key))
    assert emptied.json()["items"] == []
    bad = await client.get("/v1/reviewers?team=no%20spaces", headers=auth(admin_key))
    assert bad.status_code == 422


async def test_email_and_notification_language_are_set_cleared_and_logged(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    base = {"markets": ["DE"], "languages": ["de"]}
    body = {**base, "email": "ana@example.de", "notification_language": "de"}
    created = await client.put("/v1/reviewers/e-1", json=body, headers=auth(admin_key))
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "ana@example.de"
    assert created.json()["notification_language"] == "de"
    fetched = await client.get("/v1/reviewers/e-1", headers=auth(admin_key))
    assert fetched.json()["email"] == "ana@example.de"

    # A PUT replaces the profile: no address given, none kept.
    cleared = await client.put("/v1/reviewers/e-1", json=base, headers=auth(admin_key))
    assert cleared.json()["email"] is None
    assert cleared.json()["notification_language"] is None
    async with sessionmaker() as session:
        entries = list(
            await session.scalars(
                select(AuditLogEntry)
                .where(AuditLogEntry.entity_id == "e-1")
                .order_by(AuditLogEntry.id)
            )
        )
    assert [(e.before or {}).get("email") for e in entries] == [None, "ana@example.de"]
    assert [(e.after or {}).get("email") for e in entries] == ["ana@example.de", None]


@pytest.mark.parametrize(
    "extra",
    [
        {"email": "not-an-address"},
        {"email": "two@@example.de"},
        {"email": "spaces in@example.de"},
        {"email": "a@" + "b" * 320 + ".de"},
        {"email": ""},
        {"notification_language": "fr"},
        {"notification_language": "DE"},
    ],
)
async def test_bad_email_or_notification_language_is_422(
    client: httpx.AsyncClient, admin_key: str, extra: dict[str, str]
) -> None:
    body = {"markets": ["DE"], "languages": ["de"], **extra}
    response = await client.put("/v1/reviewers/e-2", json=body, headers=auth(admin_key))
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("role", "bound_to", "sees_email"),
    [
        ("admin", None, True),
        ("manager", None, True),
        ("policy_poc", None, False),
        ("qa_auditor", None, False),
        ("qa_auditor", "e-3", True),
        ("policy_poc", "e-3", True),
    ],
)
async def test_email_is_shown_to_admins_managers_and_the_reviewer_themself(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    bound_to: str | None,
    sees_email: bool,
) -> None:
    body = {"markets": ["DE"], "languages": ["de"], "email": "e3@example.de"}
    assert (
        await client.put("/v1/reviewers/e-3", json=body, headers=auth(admin_key))
    ).status_code == 201
    key = await make_key(sessionmaker, role, reviewer_id=bound_to)
    expected = "e3@example.de" if sees_email else None
    single = await client.get("/v1/reviewers/e-3", headers=auth(key))
    assert single.status_code == 200, single.text
    assert single.json()["email"] == expected
    assert single.json()["notification_language"] is None
    listed = await client.get("/v1/reviewers", headers=auth(key))
    assert [r["email"] for r in listed.json()["items"] if r["id"] == "e-3"] == [expected]
