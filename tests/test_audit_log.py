"""The audit log: API mutations recorded with actor and before/after, never a secret; the
listing's filters, paging and access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.api_keys.service import create_api_key
from shared.core.auth import token_digest
from shared.models import ApiKey
from tests.conftest import auth, make_key

LOG = "/v1/audit-log"
PROBLEM = "application/problem+json"


async def key_id(sessionmaker: async_sessionmaker[AsyncSession], key: str) -> str:
    async with sessionmaker() as session:
        found = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == token_digest(key)))
    assert found is not None
    return str(found)


async def entries(client: httpx.AsyncClient, key: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(LOG, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["next_cursor"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


async def stored_log_text(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """Every stored before/after, as the database holds them."""
    async with sessionmaker() as session:
        rows = await session.execute(text("SELECT before::text, after::text FROM audit_log"))
        return "\n".join(f"{before} {after}" for before, after in rows.all())


async def test_api_key_creation_and_revocation_are_logged_without_the_key(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await client.post(
        "/v1/api-keys",
        json={"name": "lead", "role": "manager", "markets": ["DE"]},
        headers=auth(admin_key),
    )
    assert created.status_code == 201, created.text
    new = created.json()
    revoked = await client.delete(f"/v1/api-keys/{new['id']}", headers=auth(admin_key))
    assert revoked.status_code == 200
    again = await client.delete(f"/v1/api-keys/{new['id']}", headers=auth(admin_key))
    assert again.status_code == 200

    admin_id = await key_id(sessionmaker, admin_key)
    log = await entries(client, admin_key, entity_type="api_key", entity_id=new["id"])
    # Newest first; revoking a revoked key changes nothing and logs nothing.
    assert [entry["action"] for entry in log] == ["api_key.revoked", "api_key.created"]
    revocation, creation = log
    for entry in log:
        assert entry["actor"] == admin_id
        assert entry["actor_role"] == "admin"
        assert entry["entity_type"] == "api_key"
        assert entry["entity_id"] == new["id"]
    assert creation["before"] is None
    assert creation["after"]["name"] == "lead"
    assert creation["after"]["markets"] == ["DE"]
    assert creation["after"]["revoked_at"] is None
    assert creation["request_id"] == created.headers["x-request-id"]
    assert revocation["before"]["revoked_at"] is None
    assert revocation["after"]["revoked_at"] == revoked.json()["revoked_at"]
    assert revocation["request_id"] == revoked.headers["x-request-id"]

    listed = await client.get(LOG, headers=auth(admin_key))
    stored = await stored_log_text(sessionmaker)
    for secret in (new["key"], token_digest(new["key"]).hex(), admin_key):
        assert secret not in listed.text
        assert secret not in stored


async def test_source_creation_and_rotation_are_logged_without_secrets(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await client.post("/v1/sources", json={"name": "acme"}, headers=auth(admin_key))
    assert created.status_code == 201
    source = created.json()
    rotated = await client.post(
        f"/v1/sources/{source['id']}/rotate-secret",
        json={"grace_period_seconds": 60},
        headers=auth(admin_key),
    )
    assert rotated.status_code == 200

    log = await entries(client, admin_key, entity_type="source")
    assert [entry["action"] for entry in log] == ["source.secret_rotated", "source.created"]
    rotation, creation = log
    assert creation["entity_id"] == source["id"]
    assert creation["after"]["name"] == "acme"
    assert rotation["before"]["rotated_at"] is None
    assert rotation["after"]["rotated_at"] is not None
    assert rotation["after"]["previous_secret_expires_at"] is not None

    listed = await client.get(LOG, headers=auth(admin_key))
    stored = await stored_log_text(sessionmaker)
    for secret in (source["secret"], rotated.json()["secret"]):
        assert secret not in listed.text
        assert secret not in stored
    assert "secret_encrypted" not in stored


async def test_channel_creation_and_deletion_are_logged_without_target_or_secret(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    secret = "whsec_supplied-secret-0123456789"
    created = await client.post(
        "/v1/channels",
        json={
            "name": "ops",
            "kind": "webhook",
            "target": "https://hooks.example.com/team-7/Zx81sEcretPath?token=abc",
            "language": "en",
            "events": ["source.rejected_batch"],
            "secret": secret,
        },
        headers=auth(admin_key),
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    deleted = await client.delete(f"/v1/channels/{channel_id}", headers=auth(admin_key))
    assert deleted.status_code == 204

    log = await entries(client, admin_key, entity_id=channel_id)
    assert [entry["action"] for entry in log] == ["channel.deleted", "channel.created"]
    deletion, creation = log
    assert creation["after"]["target_hint"] == "https://hooks.example.com/…"
    assert creation["after"]["has_secret"] is True
    assert deletion["before"] == creation["after"]
    assert deletion["after"] is None

    stored = await stored_log_text(sessionmaker)
    for leaked in ("Zx81sEcretPath", "token=abc", secret):
        assert leaked not in stored


async def test_filters(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    lead_key = await make_key(sessionmaker, "admin", reviewer_id="lead-1")
    lead_id = await key_id(sessionmaker, lead_key)
    admin_id = await key_id(sessionmaker, admin_key)
    for name in ("one", "two"):
        response = await client.post("/v1/sources", json={"name": name}, headers=auth(admin_key))
        assert response.status_code == 201
    by_lead = await client.post("/v1/sources", json={"name": "three"}, headers=auth(lead_key))
    assert by_lead.status_code == 201

    def actions(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        return [(item["after"]["name"], item["actor"]) for item in items]

    assert actions(await entries(client, admin_key, action="source.created")) == [
        ("three", lead_id),
        ("two", admin_id),
        ("one", admin_id),
    ]
    assert actions(await entries(client, admin_key, actor=admin_id)) == [
        ("two", admin_id),
        ("one", admin_id),
    ]
    assert actions(await entries(client, admin_key, actor_reviewer_id="lead-1")) == [
        ("three", lead_id)
    ]
    assert await entries(client, admin_key, action="source.secret_rotated") == []
    # Keys made outside the API (here by the test harness) are logged with no actor.
    outside = await entries(client, admin_key, entity_type="api_key")
    assert {entry["entity_id"] for entry in outside} == {admin_id, lead_id}
    assert {entry["actor"] for entry in outside} == {None}

    now = datetime.now(UTC)
    assert (
        len(await entries(client, admin_key, **{"from": (now - timedelta(minutes=5)).isoformat()}))
        == 5
    )
    assert (
        await entries(client, admin_key, **{"from": (now + timedelta(minutes=5)).isoformat()}) == []
    )
    assert await entries(client, admin_key, to=(now - timedelta(minutes=5)).isoformat()) == []
    assert len(await entries(client, admin_key, to=(now + timedelta(minutes=5)).isoformat())) == 5


async def test_pages_newest_first_without_gaps_or_repeats(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Three entries in one transaction share their time; two more come later, one each.
    async with sessionmaker() as session, session.begin():
        for n in range(3):
            await create_api_key(session, name=f"batch-{n}", role="qa_auditor")
    for name in ("later-1", "later-2"):
        response = await client.post("/v1/sources", json={"name": name}, headers=auth(admin_key))
        assert response.status_code == 201

    everything = await entries(client, admin_key)
    assert len(everything) == 6  # the admin key, the three, the two sources
    assert [item["after"]["name"] for item in everything[:2]] == ["later-2", "later-1"]
    keys = [(item["created_at"], item["id"]) for item in everything]
    assert keys == sorted(keys, reverse=True)

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(LOG, params=params, headers=auth(admin_key))
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [item["id"] for item in everything]

    bad = await client.get(LOG, params={"cursor": "not-a-cursor"}, headers=auth(admin_key))
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith(PROBLEM)


async def test_audit_log_needs_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get(LOG)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("role", "extra", "status"),
    [
        ("admin", {}, 200),
        ("manager", {}, 200),
        ("policy_poc", {}, 403),
        ("qa_auditor", {}, 403),
        ("moderator", {"reviewer_id": "mod-1"}, 403),
        # Entries belong to no market: a market-scoped key may not read them.
        ("manager", {"markets": ["DE"]}, 403),
    ],
)
async def test_who_may_read_the_audit_log(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    extra: dict[str, Any],
    status: int,
) -> None:
    key = await make_key(sessionmaker, role, **extra)
    response = await client.get(LOG, headers=auth(key))
    assert response.status_code == status, response.text
    if status != 200:
        assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "params",
    [
        {"colour": "blue"},
        {"from": "2026-11-12T00:00:00Z", "to": "2026-11-10T00:00:00Z"},
        {"from": "2026-11-10T00:00:00"},  # no time zone
        {"to": "tomorrow"},
        {"limit": 0},
        {"limit": 1001},
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, admin_key: str, params: dict[str, Any]
) -> None:
    response = await client.get(LOG, params=params, headers=auth(admin_key))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
