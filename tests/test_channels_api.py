"""The channel and delivery API: validation, secrets never echoed, roles, paging, redrive."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from services.notifier.deliveries import fan_out_event
from shared.channels.credentials import ChannelCredentials, decode_credentials
from shared.channels.service import DELIVERABLE_KINDS
from shared.core.encryption import secret_box
from shared.core.settings import Settings
from shared.events import EventType, SourceSecretRotated, record_event
from shared.models import Channel, Delivery, Market
from shared.models.base import utcnow
from tests.conftest import auth, make_key
from tests.support.problems import assert_problem

TARGET = "https://hooks.example.com/services/team-7/Zx81sEcretPath?token=abc"
SECRET = "whsec_supplied-secret-0123456789"


def channel(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "ops webhook",
        "kind": "webhook",
        "target": TARGET,
        "language": "de",
        "events": ["source.rejected_batch"],
    }
    payload.update(overrides)
    return payload


async def test_create_channel_never_echoes_target_or_secret(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.post(
        "/v1/channels",
        json=channel(secret=SECRET, markets=["de", "AT"]),
        headers=auth(admin_key),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["target_hint"] == "https://hooks.example.com/…"
    assert created["has_secret"] is True
    assert created["secret"] is None
    assert created["markets"] == ["AT", "DE"]
    assert (created["kind"], created["language"], created["enabled"]) == ("webhook", "de", True)
    assert created["events"] == ["source.rejected_batch"]

    fetched = await client.get(f"/v1/channels/{created['id']}", headers=auth(admin_key))
    listed = await client.get("/v1/channels", headers=auth(admin_key))
    assert fetched.json()["target_hint"] == "https://hooks.example.com/…"
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    for text in (response.text, fetched.text, listed.text):
        assert "Zx81sEcretPath" not in text
        assert "token=abc" not in text
        assert SECRET not in text

    # Stored encrypted, and recoverable by the notifier.
    box = secret_box(settings)
    async with sessionmaker() as session:
        stored = await session.get(Channel, uuid.UUID(created["id"]))
        markets = set(await session.scalars(select(Market.code)))
    assert stored is not None
    assert TARGET.encode() not in stored.target_encrypted
    assert box.decrypt(stored.target_encrypted) == TARGET
    assert stored.secret_encrypted is not None
    assert box.decrypt(stored.secret_encrypted) == SECRET
    assert markets == {"AT", "DE"}


async def test_webhook_without_secret_gets_one_shown_once(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.post("/v1/channels", json=channel(), headers=auth(admin_key))
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    fetched = await client.get(f"/v1/channels/{response.json()['id']}", headers=auth(admin_key))
    assert "secret" not in fetched.json()
    assert secret not in fetched.text
    async with sessionmaker() as session:
        stored = await session.get(Channel, uuid.UUID(response.json()["id"]))
    assert stored is not None
    assert stored.secret_encrypted is not None
    assert secret_box(settings).decrypt(stored.secret_encrypted) == secret


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"target": "http://hooks.example.com/x"}, ["target"]),
        ({"target": "ftp://hooks.example.com/x"}, ["target"]),
        ({"target": "not a url"}, ["target"]),
        ({"target": "https:///no-host"}, ["target"]),
        ({"kind": "pager"}, ["kind"]),
        ({"language": "fr"}, ["language"]),
        ({"events": ["no.such_event"]}, ["events", 0]),
        ({"events": []}, ["events"]),
        ({"markets": ["Germany"]}, ["markets", 0]),
        ({"secret": "short"}, ["secret"]),
        ({"name": "  "}, ["name"]),
        ({"unexpected": 1}, ["unexpected"]),
    ],
)
async def test_invalid_channels_are_422(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    overrides: dict[str, Any],
    loc: list[Any],
) -> None:
    response = await client.post("/v1/channels", json=channel(**overrides), headers=auth(admin_key))
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == loc
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Channel)) == 0


@pytest.mark.parametrize(
    ("overrides", "hint"),
    [
        (
            {"kind": "slack", "target": "https://hooks.slack.com/services/T0/B0/x"},
            "https://hooks.slack.com/…",
        ),
        (
            {"kind": "teams", "target": "https://example.webhook.office.com/workflows/x"},
            "https://example.webhook.office.com/…",
        ),
        (
            {
                "kind": "lark",
                "target": "https://open.larksuite.com/open-apis/bot/v2/hook/x",
                "secret": "lark-signing-secret-0123",
            },
            "https://open.larksuite.com/…",
        ),
        ({"kind": "email", "target": "QA-Leads@Example.com"}, "…@example.com"),
    ],
)
async def test_every_kind_is_created(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    overrides: dict[str, Any],
    hint: str,
) -> None:
    response = await client.post("/v1/channels", json=channel(**overrides), headers=auth(admin_key))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["kind"] == overrides["kind"]
    target = overrides["target"]
    assert created["target_hint"] == hint
    assert created["secret"] is None
    assert created["has_secret"] is ("secret" in overrides)
    assert target not in response.text
    if "secret" in overrides:
        assert overrides["secret"] not in response.text
    async with sessionmaker() as session:
        stored = await session.get(Channel, uuid.UUID(created["id"]))
    assert stored is not None
    assert secret_box(settings).decrypt(stored.target_encrypted) == target


OAUTH = {
    "token_url": "https://login.example.com/tenant/oauth2/v2.0/token",
    "client_id": "plumbline-app",
    "client_secret": "oauth-client-secret-value",
    "scope": "https://service.flow.microsoft.com//.default",
}


async def test_teams_oauth_and_standard_webhooks_are_stored_encrypted(
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    teams = await client.post(
        "/v1/channels",
        json=channel(
            name="teams",
            kind="teams",
            target="https://example.webhook.office.com/workflows/x",
            oauth=OAUTH,
        ),
        headers=auth(admin_key),
    )
    assert teams.status_code == 201, teams.text
    assert teams.json()["has_secret"] is True
    assert OAUTH["client_secret"] not in teams.text
    standard = await client.post(
        "/v1/channels",
        json=channel(name="standard", standard_webhooks=True),
        headers=auth(admin_key),
    )
    assert standard.status_code == 201, standard.text
    generated = standard.json()["secret"]
    # The generated secret is in the Standard Webhooks form: whsec_ and base64 of 32 bytes.
    assert generated.startswith("whsec_")
    assert len(base64.b64decode(generated.removeprefix("whsec_"), validate=True)) == 32

    box = secret_box(settings)
    async with sessionmaker() as session:
        stored_teams = await session.get(Channel, uuid.UUID(teams.json()["id"]))
        stored_standard = await session.get(Channel, uuid.UUID(standard.json()["id"]))
    assert stored_teams is not None
    assert stored_teams.secret_encrypted is not None
    assert stored_standard is not None
    assert stored_standard.secret_encrypted is not None
    assert b"oauth-client-secret" not in stored_teams.secret_encrypted
    teams_credentials = decode_credentials(box.decrypt(stored_teams.secret_encrypted))
    assert teams_credentials.oauth is not None
    assert teams_credentials.oauth.client_secret == OAUTH["client_secret"]
    assert teams_credentials.oauth.scope == OAUTH["scope"]
    assert teams_credentials.secret is None
    standard_credentials = decode_credentials(box.decrypt(stored_standard.secret_encrypted))
    assert standard_credentials == ChannelCredentials(secret=generated, standard_webhooks=True)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"kind": "slack", "target": "https://hooks.slack.com/x", "secret": SECRET}, ["secret"]),
        ({"kind": "email", "target": "qa@example.com", "secret": SECRET}, ["secret"]),
        ({"kind": "lark", "target": "https://open.larksuite.com/x"}, ["secret"]),
        ({"kind": "slack", "target": "http://hooks.slack.com/x"}, ["target"]),
        ({"kind": "teams", "target": "qa@example.com"}, ["target"]),
        ({"kind": "email", "target": "not an address"}, ["target"]),
        ({"kind": "email", "target": "https://example.com/x"}, ["target"]),
        ({"kind": "slack", "target": "https://h.example.com/x", "standard_webhooks": True},
         ["standard_webhooks"]),
        ({"oauth": OAUTH}, ["oauth"]),
        ({"kind": "teams", "target": "https://t.example.com/x",
          "oauth": {**OAUTH, "token_url": "http://login.example.com/token"}},
         ["oauth", "token_url"]),
        ({"kind": "teams", "target": "https://t.example.com/x",
          "oauth": {**OAUTH, "client_secret": ""}}, ["oauth", "client_secret"]),
        ({"secret": "plumbline-channel-credentials:v1:{}"}, ["secret"]),
    ],
)  # fmt: skip
async def test_settings_that_do_not_fit_the_kind_are_422(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    overrides: dict[str, Any],
    loc: list[Any],
) -> None:
    response = await client.post("/v1/channels", json=channel(**overrides), headers=auth(admin_key))
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == loc
    for value in (OAUTH["client_secret"], SECRET):
        assert value not in response.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Channel)) == 0


def test_deliverable_kinds_are_the_notifiers_adapters() -> None:
    # The API refuses what the notifier cannot send; the two lists must not drift.
    assert set(SUPPORTED_KINDS) == DELIVERABLE_KINDS


async def test_plain_http_only_to_insecure_hosts(client: httpx.AsyncClient, admin_key: str) -> None:
    # The test settings list 127.0.0.1 and localhost in PLUMBLINE_INSECURE_TARGET_HOSTS.
    local = await client.post(
        "/v1/channels",
        json=channel(name="local", target="http://127.0.0.1:8123/hook"),
        headers=auth(admin_key),
    )
    assert local.status_code == 201, local.text
    assert local.json()["target_hint"] == "http://127.0.0.1:8123/…"


async def test_duplicate_name_is_409(client: httpx.AsyncClient, admin_key: str) -> None:
    first = await client.post("/v1/channels", json=channel(), headers=auth(admin_key))
    assert first.status_code == 201
    assert_problem(await client.post("/v1/channels", json=channel(), headers=auth(admin_key)), 409)


async def test_roles(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    manager = await make_key(sessionmaker, "manager")
    auditor = await make_key(sessionmaker, "qa_auditor")
    created = await client.post("/v1/channels", json=channel(), headers=auth(admin_key))
    channel_id = created.json()["id"]
    some_id = uuid.uuid4()

    assert_problem(await client.post("/v1/channels", json=channel(name="x")), 401)
    assert_problem(await client.get("/v1/channels"), 401)
    assert_problem(await client.get("/v1/deliveries"), 401)
    bad_key = {"Authorization": "Bearer plk_not-a-key"}
    assert_problem(await client.get("/v1/channels", headers=bad_key), 401)
    for key in (manager, auditor):
        headers = auth(key)
        assert_problem(
            await client.post("/v1/channels", json=channel(name="x"), headers=headers), 403
        )
        assert_problem(await client.get("/v1/channels", headers=headers), 403)
        assert_problem(await client.get(f"/v1/channels/{channel_id}", headers=headers), 403)
        assert_problem(await client.delete(f"/v1/channels/{channel_id}", headers=headers), 403)
        assert_problem(await client.post(f"/v1/deliveries/{some_id}/redrive", headers=headers), 403)
    assert (await client.get("/v1/deliveries", headers=auth(manager))).status_code == 200
    assert_problem(await client.get("/v1/deliveries", headers=auth(auditor)), 403)
    assert_problem(await client.get(f"/v1/deliveries/{some_id}", headers=auth(manager)), 404)


async def make_deliveries(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    events: int,
    event_type: EventType = EventType.SOURCE_REJECTED_BATCH,
) -> tuple[str, list[uuid.UUID]]:
    """A webhook channel with one pending delivery per event (fanned out, not yet sent)."""
    created = await client.post(
        "/v1/channels",
        json=channel(
            name=f"c-{uuid.uuid4().hex[:6]}",
            target="http://127.0.0.1:9/x",
            events=[event_type.value],
        ),
        headers=auth(admin_key),
    )
    delivery_ids: list[uuid.UUID] = []
    for _ in range(events):
        async with sessionmaker() as session, session.begin():
            data = SourceSecretRotated(
                id=uuid.uuid4(), source="acme", previous_secret_expires_at=None
            )
            event = await record_event(session, type=event_type, data=data)
            delivery_ids += await fan_out_event(
                session, event_id=event.id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
            )
    return created.json()["id"], delivery_ids


async def test_deliveries_page_and_filter(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel_id, delivery_ids = await make_deliveries(client, admin_key, sessionmaker, events=5)
    other_channel, _ = await make_deliveries(
        client, admin_key, sessionmaker, events=1, event_type=EventType.SOURCE_SECRET_ROTATED
    )
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids[:2]))
            .values(status="dead", dead_at=utcnow(), last_error="HTTP 500")
        )

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"channel_id": channel_id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/v1/deliveries", params=params, headers=auth(admin_key))
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # Newest first, every delivery of the channel exactly once.
    assert seen == [str(d) for d in reversed(delivery_ids)]

    dead = await client.get("/v1/deliveries", params={"status": "dead"}, headers=auth(admin_key))
    items = dead.json()["items"]
    assert {item["id"] for item in items} == {str(d) for d in delivery_ids[:2]}
    assert all(item["next_attempt_at"] is None and item["dead_at"] for item in items)
    everything = await client.get("/v1/deliveries", headers=auth(admin_key))
    assert len(everything.json()["items"]) == 6
    assert other_channel in {item["channel_id"] for item in everything.json()["items"]}

    pending = await client.get(f"/v1/deliveries/{delivery_ids[4]}", headers=auth(admin_key))
    assert pending.json()["status"] == "pending"
    assert pending.json()["attempts"] == []
    assert pending.json()["next_attempt_at"] is not None

    assert_problem(
        await client.get("/v1/deliveries", params={"cursor": "nope"}, headers=auth(admin_key)),
        400,
    )
    assert_problem(
        await client.get("/v1/deliveries", params={"limit": 1001}, headers=auth(admin_key)), 422
    )
    assert_problem(
        await client.get("/v1/deliveries", params={"status": "lost"}, headers=auth(admin_key)),
        422,
    )


async def test_redrive_only_dead_deliveries(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, [delivery_id] = await make_deliveries(client, admin_key, sessionmaker, events=1)
    assert_problem(
        await client.post(f"/v1/deliveries/{delivery_id}/redrive", headers=auth(admin_key)), 409
    )
    assert_problem(
        await client.post(f"/v1/deliveries/{uuid.uuid4()}/redrive", headers=auth(admin_key)), 404
    )


async def test_delete_channel_removes_its_deliveries(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel_id, delivery_ids = await make_deliveries(client, admin_key, sessionmaker, events=2)
    deleted = await client.delete(f"/v1/channels/{channel_id}", headers=auth(admin_key))
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/v1/channels/{channel_id}", headers=auth(admin_key)), 404)
    assert_problem(await client.delete(f"/v1/channels/{channel_id}", headers=auth(admin_key)), 404)
    async with sessionmaker() as session:
        remaining = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.id.in_(delivery_ids))
        )
    assert remaining == 0


async def test_a_market_scoped_key_sees_and_changes_only_its_markets_channels(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Found after the scoping fixes: a DE-scoped admin key listed, read and deleted channels
    # of every market (and created all-market ones).
    async def create(key: str, name: str, markets: list[str] | None) -> httpx.Response:
        body = channel(name=name, **({"markets": markets} if markets is not None else {}))
        return await client.post("/v1/channels", json=body, headers=auth(key))

    ids = {}
    for name, markets in [("de", ["DE"]), ("de-at", ["DE", "AT"]), ("all", None)]:
        created = await create(admin_key, name, markets)
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
    de_admin = await make_key(sessionmaker, "admin", markets=["DE"])

    listed = await client.get("/v1/channels", headers=auth(de_admin))
    assert [c["name"] for c in listed.json()["items"]] == ["de"]
    everything = await client.get("/v1/channels", headers=auth(admin_key))
    assert [c["name"] for c in everything.json()["items"]] == ["all", "de", "de-at"]
    assert (await client.get(f"/v1/channels/{ids['de']}", headers=auth(de_admin))).is_success
    for name in ("de-at", "all"):
        assert_problem(await client.get(f"/v1/channels/{ids[name]}", headers=auth(de_admin)), 404)
        assert_problem(
            await client.delete(f"/v1/channels/{ids[name]}", headers=auth(de_admin)), 404
        )
    assert (await client.get(f"/v1/channels/{ids['de-at']}", headers=auth(admin_key))).is_success

    assert (await create(de_admin, "mine", ["DE"])).status_code == 201
    assert_problem(await create(de_admin, "every market", None), 403)
    assert_problem(await create(de_admin, "with france", ["DE", "FR"]), 403)
    async with sessionmaker() as session:
        names = set(await session.scalars(select(Channel.name)))
    assert names == {"de", "de-at", "all", "mine"}
