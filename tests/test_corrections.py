"""Corrections back to the source platform: each source's correction target, and the
``decision.corrected`` webhook reaching that source only, signed, through the notifier."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.channels import SUPPORTED_KINDS
from services.notifier.deliveries import fan_out_event
from shared.core.encryption import secret_box
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.core.signing import verify_signature
from shared.deliveries.lifecycle import events_missing_deliveries
from shared.events import DecisionCorrected, EventType, record_event
from shared.models import AuditLogEntry, Channel, Decision, Delivery, Event
from shared.models.base import utcnow
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.problems import assert_problem
from tests.support.webhooks import WebhookReceiver, create_channel, notify

Sessionmaker = async_sessionmaker[AsyncSession]
ACME_SECRET = "whsec_acme-corrections-secret-0001"
GLOBEX_SECRET = "whsec_globex-corrections-secret-02"


def target_url(source_id: str) -> str:
    return f"/v1/sources/{source_id}/correction-target"


async def source_id_of(client: httpx.AsyncClient, admin_key: str, name: str) -> str:
    listed = await client.get("/v1/sources", headers=auth(admin_key))
    [source] = [item for item in listed.json()["items"] if item["name"] == name]
    found: str = source["id"]
    return found


async def new_source(client: httpx.AsyncClient, admin_key: str, name: str) -> str:
    response = await client.post("/v1/sources", json={"name": name}, headers=auth(admin_key))
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


async def stored_channel(sessionmaker: Sessionmaker, channel_id: str) -> Channel:
    async with sessionmaker() as session:
        channel = await session.get(Channel, uuid.UUID(channel_id))
    assert channel is not None
    return channel


async def test_admin_sets_a_correction_target_and_sees_a_generated_secret_once(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessionmaker,
) -> None:
    source_id = await source_id_of(client, admin_key, "acme")
    created = await client.put(
        target_url(source_id),
        json={"url": "https://hooks.acme.example/qa/corrections?token=s3cr3t"},
        headers=auth(admin_key),
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "source-acme-corrections"
    assert (body["kind"], body["events"], body["markets"]) == (
        "webhook",
        ["decision.corrected"],
        None,
    )
    assert body["source_id"] == source_id
    assert body["target_hint"] == "https://hooks.acme.example/…"
    assert body["has_secret"] is True
    generated = body["secret"]
    assert generated.startswith("whsec_")
    assert "s3cr3t" not in created.text
    box = secret_box(settings)
    channel = await stored_channel(sessionmaker, body["id"])
    assert channel.source_id == uuid.UUID(source_id)
    assert channel.secret_encrypted is not None
    assert box.decrypt(channel.secret_encrypted) == generated

    fetched = await client.get(target_url(source_id), headers=auth(admin_key))
    assert fetched.status_code == 200
    assert "secret" not in fetched.json()
    assert generated not in fetched.text
    assert fetched.json()["id"] == body["id"]

    # A new URL, no secret: the same channel, the platform's secret kept, none shown.
    moved = await client.put(
        target_url(source_id),
        json={"url": "https://corrections.acme.example/v2"},
        headers=auth(admin_key),
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["id"], moved.json()["secret"]) == (body["id"], None)
    assert moved.json()["target_hint"] == "https://corrections.acme.example/…"
    channel = await stored_channel(sessionmaker, body["id"])
    assert channel.secret_encrypted is not None
    assert box.decrypt(channel.secret_encrypted) == generated
    assert box.decrypt(channel.target_encrypted) == "https://corrections.acme.example/v2"

    # A supplied secret replaces it (and is not echoed).
    rotated = await client.put(
        target_url(source_id),
        json={"url": "https://corrections.acme.example/v2", "secret": ACME_SECRET},
        headers=auth(admin_key),
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"] is None
    assert ACME_SECRET not in rotated.text
    channel = await stored_channel(sessionmaker, body["id"])
    assert channel.secret_encrypted is not None
    assert box.decrypt(channel.secret_encrypted) == ACME_SECRET

    async with sessionmaker() as session:
        entries = list(
            await session.scalars(
                select(AuditLogEntry)
                .where(AuditLogEntry.entity_id == body["id"])
                .order_by(AuditLogEntry.id)
            )
        )
    assert [entry.action for entry in entries] == [
        "source.correction_target.created",
        "source.correction_target.updated",
        "source.correction_target.updated",
    ]
    assert entries[0].actor_role == "admin"
    assert entries[1].before is not None
    assert entries[1].before["target_hint"] == "https://hooks.acme.example/…"
    assert entries[2].after is not None
    assert entries[2].after["secret_changed"] is True
    for entry in entries:
        assert generated not in orjson.dumps([entry.before, entry.after]).decode()
        assert ACME_SECRET not in orjson.dumps([entry.before, entry.after]).decode()


async def test_only_admins_manage_correction_targets(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    source_id = await source_id_of(client, admin_key, "acme")
    payload = {"url": "https://hooks.acme.example/corrections"}
    for role in ("manager", "policy_poc", "qa_auditor", "moderator"):
        key = auth(await make_key(sessionmaker, role, reviewer_id="someone"))
        assert_problem(await client.put(target_url(source_id), json=payload, headers=key), 403)
        assert_problem(await client.get(target_url(source_id), headers=key), 403)
    assert_problem(await client.put(target_url(source_id), json=payload), 401)
    assert_problem(await client.get(target_url(source_id)), 401)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Channel)) == 0


async def test_bad_correction_targets_are_refused_and_change_nothing(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    source_id = await source_id_of(client, admin_key, "acme")
    admin = auth(admin_key)
    for payload, loc in (
        ({"url": "http://hooks.acme.example/corrections"}, ["url"]),
        ({"url": "ftp://hooks.acme.example/corrections"}, ["url"]),
        ({"url": "https:///no-host"}, ["url"]),
        ({"url": "https://hooks.acme.example/c", "secret": "short"}, ["secret"]),
        ({"url": "https://hooks.acme.example/c", "events": ["x"]}, ["events"]),
        ({}, ["url"]),
    ):
        body = assert_problem(
            await client.put(target_url(source_id), json=payload, headers=admin), 422
        )
        assert body["errors"][0]["loc"] == loc, body
    https_only = await client.put(
        target_url(source_id), json={"url": "http://hooks.acme.example/c"}, headers=admin
    )
    assert "https://" in https_only.json()["detail"]
    unknown = await client.put(
        target_url(str(uuid.uuid4())), json={"url": "https://hooks.acme.example/c"}, headers=admin
    )
    assert_problem(unknown, 404)
    assert_problem(await client.get(target_url(source_id), headers=admin), 404)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Channel)) == 0

    # The name is taken by a general channel: a clear conflict, not a hijack of that channel.
    taken = await client.post(
        "/v1/channels",
        json={
            "name": "source-acme-corrections",
            "kind": "webhook",
            "target": "https://ops.example/hook",
            "language": "en",
            "events": ["source.rejected_batch"],
        },
        headers=admin,
    )
    assert taken.status_code == 201
    conflict = await client.put(
        target_url(source_id), json={"url": "https://hooks.acme.example/c"}, headers=admin
    )
    assert_problem(conflict, 409)
    general = await stored_channel(sessionmaker, taken.json()["id"])
    assert (general.source_id, general.events) == (None, ["source.rejected_batch"])


async def correction_event(
    sessionmaker: Sessionmaker, decision: Decision, *, source_id: uuid.UUID | None
) -> Event:
    """What the verdict endpoint records for an incorrect verdict on a source's decision."""
    async with sessionmaker() as session, session.begin():
        return await record_event(
            session,
            type=EventType.DECISION_CORRECTED,
            data=DecisionCorrected(
                decision_id=decision.id,
                event_id=decision.event_id,
                content_id=decision.content_id,
                original_action=decision.action,
                corrected_action="approve",
                corrected_labels=[],
                severity="major",
                error_type="over_enforcement",
                verdict_id=uuid.uuid4(),
                corrected_at=utcnow(),
            ),
            market=decision.market,
            source_id=source_id,
        )


async def test_corrections_reach_their_own_source_only_signed_with_its_secret(
    receiver: WebhookReceiver,
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    acme_id = await source_id_of(client, admin_key, "acme")
    globex_id = await new_source(client, admin_key, "globex")
    for source_id, path, secret in (
        (acme_id, "/acme", ACME_SECRET),
        (globex_id, "/globex", GLOBEX_SECRET),
    ):
        response = await client.put(
            target_url(source_id),
            json={"url": base + path, "secret": secret},
            headers=auth(admin_key),
        )
        assert response.status_code == 201, response.text
    # A general channel subscribed to corrections (by mistake or for monitoring).
    await create_channel(
        client, admin_key, f"{base}/general", name="ops", events=("decision.corrected",)
    )
    assert (await sender.post(decision_event(1))).status_code == 202
    async with sessionmaker() as session:
        decision = await session.scalar(select(Decision).where(Decision.event_id == "evt-1"))
    assert decision is not None

    acme_event = await correction_event(sessionmaker, decision, source_id=uuid.UUID(acme_id))
    await notify(settings, sessionmaker, queue)

    [request] = receiver.requests
    assert request.path == "/acme"
    assert verify_signature(
        [ACME_SECRET], request.headers["x-plumbline-signature"], request.body, int(time.time()), 300
    )
    # Not with the secret the platform signs its own decisions with, nor another source's.
    for other in (sender.secret, GLOBEX_SECRET):
        assert not verify_signature(
            [other], request.headers["x-plumbline-signature"], request.body, int(time.time()), 300
        )
    body = orjson.loads(request.body)
    assert list(body) == ["id", "type", "occurred_at", "data"]
    assert (body["id"], body["type"]) == (str(acme_event.id), "decision.corrected")
    assert body["data"]["event_id"] == "evt-1"
    assert body["data"]["content_id"] == "vid-1"
    assert (body["data"]["original_action"], body["data"]["corrected_action"]) == (
        "remove",
        "approve",
    )
    async with sessionmaker() as session:
        deliveries = list(
            await session.scalars(select(Delivery).where(Delivery.event_id == acme_event.id))
        )
    assert [d.status for d in deliveries] == ["delivered"]

    # An event about no source goes to general channels only, never to a source's channel.
    general_event = await correction_event(sessionmaker, decision, source_id=None)
    await notify(settings, sessionmaker, queue)
    assert [r.path for r in receiver.requests] == ["/acme", "/general"]
    assert orjson.loads(receiver.requests[1].body)["id"] == str(general_event.id)


async def test_the_lost_fan_out_sweep_follows_the_same_source_rule(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    acme_id = await source_id_of(client, admin_key, "acme")
    globex_id = await new_source(client, admin_key, "globex")
    for source_id in (acme_id, globex_id):
        response = await client.put(
            target_url(source_id),
            json={"url": f"https://{source_id}.example/c"},
            headers=auth(admin_key),
        )
        assert response.status_code == 201
    await create_channel(
        client, admin_key, "https://ops.example/hook", name="ops", events=("decision.corrected",)
    )
    assert (await sender.post(decision_event(1))).status_code == 202
    async with sessionmaker() as session:
        decision = await session.scalar(select(Decision).where(Decision.event_id == "evt-1"))
    assert decision is not None
    event = await correction_event(sessionmaker, decision, source_id=uuid.UUID(acme_id))

    async def missing() -> list[uuid.UUID]:
        now = utcnow()
        async with sessionmaker() as session:
            return await events_missing_deliveries(
                session,
                since=now - timedelta(hours=1),
                until=now + timedelta(seconds=1),
                supported_kinds=SUPPORTED_KINDS,
                limit=10,
            )

    assert await missing() == [event.id]
    async with sessionmaker() as session, session.begin():
        created = await fan_out_event(
            session, event_id=event.id, now=utcnow(), supported_kinds=SUPPORTED_KINDS
        )
    assert len(created) == 1
    # One delivery (acme's) is all this event should have: the sweep agrees.
    assert await missing() == []
