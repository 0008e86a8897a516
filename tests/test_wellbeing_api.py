"""Wellbeing: daily caps on sensitive policy categories, enforced by the claim; exposure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Audit, AuditLogEntry, Policy, SensitiveCategoryCap
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.audits import auditor, claim, drain, make_audits
from tests.support.problems import assert_problem

Sessions = async_sessionmaker[AsyncSession]


async def put_cap(client: httpx.AsyncClient, key: str, code: str, cap: Any) -> httpx.Response:
    return await client.put(
        f"/v1/wellbeing/caps/{code}", json={"daily_cap": cap}, headers=auth(key)
    )


async def test_caps_are_set_changed_listed_and_deleted(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    created = await put_cap(client, admin_key, "violent_graphic", 5)
    assert created.status_code == 200, created.text
    assert created.json()["policy_code"] == "violent_graphic"
    assert created.json()["daily_cap"] == 5
    manager = await make_key(sessionmaker, "manager")
    changed = await put_cap(client, manager, "violent_graphic", 3)
    assert changed.json()["daily_cap"] == 3
    await put_cap(client, manager, "self_harm", 0)

    listed = await client.get("/v1/wellbeing/caps", headers=auth(manager))
    assert [(c["policy_code"], c["daily_cap"]) for c in listed.json()["items"]] == [
        ("self_harm", 0),
        ("violent_graphic", 3),
    ]
    first = (await client.get("/v1/wellbeing/caps?limit=1", headers=auth(manager))).json()
    assert [c["policy_code"] for c in first["items"]] == ["self_harm"]
    second = await client.get(
        "/v1/wellbeing/caps",
        params={"limit": 1, "cursor": first["next_cursor"]},
        headers=auth(manager),
    )
    assert [c["policy_code"] for c in second.json()["items"]] == ["violent_graphic"]
    assert second.json()["next_cursor"] is None

    async with sessionmaker() as session:
        entries = list(
            await session.scalars(
                select(AuditLogEntry)
                .where(AuditLogEntry.entity_type == "wellbeing_cap")
                .order_by(AuditLogEntry.id)
            )
        )
        registered = await session.get(Policy, "self_harm")
    assert registered is not None  # first reference registers the policy code
    assert [(e.action, e.entity_id) for e in entries] == [
        ("wellbeing_cap.set", "violent_graphic"),
        ("wellbeing_cap.set", "violent_graphic"),
        ("wellbeing_cap.set", "self_harm"),
    ]
    assert entries[0].before is None
    assert entries[1].before == {"policy_code": "violent_graphic", "daily_cap": 5}
    assert entries[1].after == {"policy_code": "violent_graphic", "daily_cap": 3}

    deleted = await client.delete("/v1/wellbeing/caps/self_harm", headers=auth(manager))
    assert deleted.status_code == 204
    assert_problem(await client.delete("/v1/wellbeing/caps/self_harm", headers=auth(manager)), 404)
    async with sessionmaker() as session:
        remaining = list(await session.scalars(select(SensitiveCategoryCap.policy_code)))
        deletions = list(
            await session.scalars(
                select(AuditLogEntry.before).where(AuditLogEntry.action == "wellbeing_cap.delete")
            )
        )
    assert remaining == ["violent_graphic"]
    assert deletions == [{"policy_code": "self_harm", "daily_cap": 0}]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/wellbeing/caps/violent_graphic", {"daily_cap": -1}),
        ("/v1/wellbeing/caps/violent_graphic", {"daily_cap": "many"}),
        ("/v1/wellbeing/caps/violent_graphic", {"daily_cap": 100_000}),
        ("/v1/wellbeing/caps/violent_graphic", {}),
        ("/v1/wellbeing/caps/violent_graphic", {"daily_cap": 1, "colour": "blue"}),
        ("/v1/wellbeing/caps/Violent%20Graphic", {"daily_cap": 1}),
    ],
)
async def test_bad_caps_are_422_and_change_nothing(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions, path: str, body: Any
) -> None:
    assert_problem(await client.put(path, json=body, headers=auth(admin_key)), 422)
    async with sessionmaker() as session:
        assert list(await session.scalars(select(SensitiveCategoryCap))) == []
        logged = select(AuditLogEntry).where(AuditLogEntry.entity_type == "wellbeing_cap")
        assert list(await session.scalars(logged)) == []


async def test_a_market_scoped_key_may_not_change_caps(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    await put_cap(client, admin_key, "violent_graphic", 5)
    scoped = await make_key(sessionmaker, "manager", markets=["DE"])
    assert_problem(await put_cap(client, scoped, "violent_graphic", 50), 403)
    assert_problem(
        await client.delete("/v1/wellbeing/caps/violent_graphic", headers=auth(scoped)), 403
    )
    listed = (await client.get("/v1/wellbeing/caps", headers=auth(scoped))).json()["items"]
    assert [cap["daily_cap"] for cap in listed] == [5]


async def test_past_the_cap_the_auditor_gets_other_items(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    events = [
        decision_event(1, policy_labels=["violent_graphic"]),
        decision_event(2, policy_labels=["violent_graphic", "hate_speech"]),
        decision_event(3, policy_labels=["self_harm"]),
        decision_event(4, policy_labels=["hate_speech"]),
        decision_event(5, policy_labels=["violent_graphic"]),
    ]
    ids = [str(audit_id) for audit_id in await make_audits(sender, sessionmaker, events)]
    await put_cap(client, admin_key, "violent_graphic", 1)
    await put_cap(client, admin_key, "self_harm", 0)
    key = await auditor(sessionmaker, "aud-1")

    handed = [item["id"] for item in await drain(client, key)]
    # One violent item, then only items without a capped label; self_harm never.
    assert handed == [ids[0], ids[3]]

    exposure = await client.get("/v1/wellbeing/exposure?auditor_id=aud-1", headers=auth(admin_key))
    assert exposure.status_code == 200, exposure.text
    rows = {row["policy_code"]: row for row in exposure.json()["items"]}
    today = datetime.now(UTC).date().isoformat()
    assert rows["violent_graphic"] == {
        "auditor_id": "aud-1",
        "day": today,
        "policy_code": "violent_graphic",
        "exposure": 1,
        "daily_cap": 1,
        "remaining": 0,
        "capped": True,
    }
    assert rows["self_harm"]["exposure"] == 0
    assert rows["self_harm"]["capped"] is True

    # Another auditor has a budget of their own.
    colleague = await auditor(sessionmaker, "aud-2")
    assert (await claim(client, colleague)).json()["id"] == ids[1]

    # Yesterday's claims do not count today: move aud-1's claims a day back.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Audit)
            .where(Audit.auditor_id == "aud-1")
            .values(claimed_at=Audit.claimed_at - timedelta(days=1))
        )
    assert (await claim(client, key)).json()["id"] == ids[4]


async def test_raising_a_cap_hands_the_skipped_items_out(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    [audit_id] = await make_audits(
        sender, sessionmaker, [decision_event(1, policy_labels=["violent_graphic"])]
    )
    await put_cap(client, admin_key, "violent_graphic", 0)
    key = await auditor(sessionmaker)
    assert (await claim(client, key)).status_code == 204
    await put_cap(client, admin_key, "violent_graphic", 1)
    assert (await claim(client, key)).json()["id"] == str(audit_id)


async def test_exposure_lists_every_auditor_of_the_day(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    await make_audits(
        sender,
        sessionmaker,
        [
            decision_event(1, policy_labels=["violent_graphic"]),
            decision_event(2, policy_labels=["violent_graphic"], market="AT"),
            decision_event(3, policy_labels=["hate_speech"]),
        ],
    )
    await put_cap(client, admin_key, "violent_graphic", 10)
    await put_cap(client, admin_key, "self_harm", 10)
    first = await auditor(sessionmaker, "aud-1")
    second = await auditor(sessionmaker, "aud-2", ["AT"])
    await drain(client, first)
    await drain(client, second)
    await auditor(sessionmaker, "aud-idle")

    manager = await make_key(sessionmaker, "manager")
    response = await client.get("/v1/wellbeing/exposure", headers=auth(manager))
    rows = [
        (row["auditor_id"], row["policy_code"], row["exposure"], row["remaining"])
        for row in response.json()["items"]
    ]
    assert rows == [
        ("aud-1", "self_harm", 0, 10),
        ("aud-1", "violent_graphic", 1, 9),
        ("aud-2", "self_harm", 0, 10),
        ("aud-2", "violent_graphic", 1, 9),
    ]
    paged: list[tuple[str, str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/v1/wellbeing/exposure", params=params, headers=auth(manager))
        ).json()
        paged += [(row["auditor_id"], row["policy_code"]) for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [(auditor_id, code) for auditor_id, code, _, _ in rows]

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    past = await client.get(f"/v1/wellbeing/exposure?day={yesterday}", headers=auth(manager))
    assert past.json()["items"] == []
    # A market-scoped manager sees the auditors who worked in its markets.
    scoped = await make_key(sessionmaker, "manager", markets=["AT"])
    at_only = (await client.get("/v1/wellbeing/exposure", headers=auth(scoped))).json()
    assert {row["auditor_id"] for row in at_only["items"]} == {"aud-2"}
    # An auditor sees their own exposure only.
    own = (await client.get("/v1/wellbeing/exposure", headers=auth(second))).json()
    assert {row["auditor_id"] for row in own["items"]} == {"aud-2"}
    other = await client.get("/v1/wellbeing/exposure?auditor_id=aud-1", headers=auth(second))
    assert_problem(other, 403)
    for bad in ("day=today", "limit=0", "colour=blue", "cursor=nope"):
        response = await client.get(f"/v1/wellbeing/exposure?{bad}", headers=auth(manager))
        assert response.status_code in (400, 422), bad


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/wellbeing/caps/violent_graphic"),
        ("DELETE", "/v1/wellbeing/caps/violent_graphic"),
        ("GET", "/v1/wellbeing/caps"),
        ("GET", "/v1/wellbeing/exposure"),
    ],
)
async def test_wellbeing_endpoints_need_a_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_problem(await client.request(method, path, json={"daily_cap": 1}), 401)


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("admin", "PUT", "/v1/wellbeing/caps/violent_graphic", True),
        ("manager", "PUT", "/v1/wellbeing/caps/violent_graphic", True),
        ("policy_poc", "PUT", "/v1/wellbeing/caps/violent_graphic", False),
        ("qa_auditor", "PUT", "/v1/wellbeing/caps/violent_graphic", False),
        ("moderator", "PUT", "/v1/wellbeing/caps/violent_graphic", False),
        ("policy_poc", "DELETE", "/v1/wellbeing/caps/violent_graphic", False),
        ("qa_auditor", "DELETE", "/v1/wellbeing/caps/violent_graphic", False),
        ("admin", "GET", "/v1/wellbeing/caps", True),
        ("policy_poc", "GET", "/v1/wellbeing/caps", True),
        ("qa_auditor", "GET", "/v1/wellbeing/caps", True),
        ("moderator", "GET", "/v1/wellbeing/caps", False),
        ("admin", "GET", "/v1/wellbeing/exposure", True),
        ("manager", "GET", "/v1/wellbeing/exposure", True),
        ("qa_auditor", "GET", "/v1/wellbeing/exposure", True),
        ("policy_poc", "GET", "/v1/wellbeing/exposure", False),
        ("moderator", "GET", "/v1/wellbeing/exposure", False),
    ],
)
async def test_wellbeing_role_matrix(
    client: httpx.AsyncClient,
    sessionmaker: Sessions,
    role: str,
    method: str,
    path: str,
    allowed: bool,
) -> None:
    key = await make_key(sessionmaker, role, reviewer_id="rev-1")
    response = await client.request(method, path, json={"daily_cap": 2}, headers=auth(key))
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 403)
        async with sessionmaker() as session:
            assert list(await session.scalars(select(SensitiveCategoryCap))) == []
