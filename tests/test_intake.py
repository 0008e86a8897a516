"""Decision intake end to end: signed webhooks over real HTTP into PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Decision, Market, Policy, Queue, Reviewer
from tests.conftest import LiveServer, SignedSender, auth, decision_event


async def count_decisions(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Decision)) or 0)


async def test_single_event_is_accepted_and_listed(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    response = await sender.post(decision_event(1))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}

    listed = await client.get("/v1/decisions", headers=auth(admin_key))
    assert listed.status_code == 200
    body = listed.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    expected = decision_event(1)
    for key, value in expected.items():
        if key != "decided_at":
            assert item[key] == value, key
    assert item["decided_at"].startswith("2026-11-24T10:00:00")
    assert item["source"] == "acme"
    assert isinstance(item["id"], int)
    assert "received_at" in item

    single = await client.get(f"/v1/decisions/{item['id']}", headers=auth(admin_key))
    assert single.status_code == 200
    assert single.json() == item


async def test_batch_and_redelivery_counts_duplicates(
    sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    events = [decision_event(n) for n in range(10)]
    first = await sender.post({"events": events})
    assert first.json() == {"accepted": 10, "duplicates": 0}
    again = await sender.post({"events": [*events[5:], decision_event(10)]})
    assert again.status_code == 202
    assert again.json() == {"accepted": 1, "duplicates": 5}
    assert await count_decisions(sessionmaker) == 11


async def test_concurrent_resends_store_each_event_once(
    sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    payload = {"events": [decision_event(n) for n in range(50)]}
    responses = await asyncio.gather(*(sender.post(payload) for _ in range(8)))
    assert all(r.status_code == 202 for r in responses)
    bodies = [r.json() for r in responses]
    assert sum(b["accepted"] for b in bodies) == 50
    assert sum(b["duplicates"] for b in bodies) == 50 * 7
    assert await count_decisions(sessionmaker) == 50


async def test_first_reference_registers_markets_queues_policies_reviewers(
    sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await sender.post(
        {
            "events": [
                decision_event(1, market="CH", queue="ch-text", policy_labels=["spam", "scam"]),
                decision_event(2, market="at", queue="at-video", moderator_id="mod-7"),
            ]
        }
    )
    async with sessionmaker() as session:
        markets = {m.code: m for m in await session.scalars(select(Market))}
        assert set(markets) == {"CH", "AT"}
        assert markets["CH"].time_zone == "Europe/Zurich"
        assert markets["AT"].default_language == "de"
        queues = {q.name: q.market_code for q in await session.scalars(select(Queue))}
        assert queues == {"ch-text": "CH", "at-video": "AT"}
        policies = set(await session.scalars(select(Policy.code)))
        assert policies == {"spam", "scam", "hate_speech"}
        assert set(await session.scalars(select(Reviewer.id))) == {"mod-42", "mod-7"}


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        ("no-signature", 401),
        ("unknown-source", 401),
        ("wrong-secret", 401),
        ("stale", 401),
        ("future", 401),
        ("tampered", 401),
    ],
)
async def test_bad_signatures_are_401_and_store_nothing(
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    mutate: str,
    status: int,
) -> None:
    body = orjson.dumps(decision_event(1))
    headers = sender.headers(body)
    if mutate == "no-signature":
        del headers["X-Plumbline-Signature"]
    elif mutate == "unknown-source":
        headers["X-Plumbline-Source"] = "nobody"
    elif mutate == "wrong-secret":
        headers = SignedSender(client, "acme", "whsec_wrong").headers(body)
    elif mutate == "stale":
        headers = sender.headers(body, timestamp=int(time.time()) - 301)
    elif mutate == "future":
        headers = sender.headers(body, timestamp=int(time.time()) + 301)
    elif mutate == "tampered":
        body = orjson.dumps(decision_event(2))
    response = await client.post("/v1/webhooks/decisions", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["type"]
    assert await count_decisions(sessionmaker) == 0


def _metadata(size: int) -> dict[str, str]:
    return {"blob": "x" * size}


@pytest.mark.parametrize(
    ("payload", "status", "loc"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 422, []),
        (b'"text"', 422, []),
        ({"events": []}, 422, ["events"]),
        ({"events": [decision_event(n) for n in range(1001)]}, 422, ["events"]),
        ({"events": [decision_event(1), decision_event(2, decided_at="2026-11-24T10:00:00")]},
         422, ["events", 1, "decided_at"]),
        ({"events": [decision_event(1), decision_event(2, action="delete")]},
         422, ["events", 1, "action"]),
        ({"events": [decision_event(1, policy_labels=["Hate Speech"])]},
         422, ["events", 0, "policy_labels", 0]),
        ({"events": [decision_event(1), decision_event(2, metadata=_metadata(17 * 1024))]},
         422, ["events", 1, "metadata"]),
        ({"events": [decision_event(1), decision_event(2), decision_event(1)]},
         422, ["events", 2, "event_id"]),
        (decision_event(1, decided_at=None), 422, ["decided_at"]),
        ({k: v for k, v in decision_event(1).items() if k != "moderator_id"},
         422, ["moderator_id"]),
        ({"events": [decision_event(1)], "extra": 1}, 422, ["extra"]),
    ],
)  # fmt: skip
async def test_invalid_bodies_are_refused_whole(
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
    payload: object,
    status: int,
    loc: list[object] | None,
) -> None:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    response = await sender.post_raw(body)
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == status
    if loc is not None:
        assert problem["errors"][0]["loc"] == loc
        if len(loc) > 1 and loc[0] == "events":
            assert f"event {loc[1]}" in problem["detail"]
    assert await count_decisions(sessionmaker) == 0


async def test_body_over_one_mebibyte_is_413(
    sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    events = [decision_event(n, metadata=_metadata(1500)) for n in range(700)]
    body = orjson.dumps({"events": events})
    assert len(body) > 1024 * 1024
    response = await sender.post_raw(body)
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert await count_decisions(sessionmaker) == 0


async def test_thousand_event_batch_is_stored(
    sender: SignedSender, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await sender.post({"events": [decision_event(n) for n in range(1000)]})
    assert response.json() == {"accepted": 1000, "duplicates": 0}
    assert await count_decisions(sessionmaker) == 1000


async def test_event_fields_round_trip_exactly(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    metadata = {"events": ["not", "a", "batch"], "ünïcode": "ß✓", "nested": {"n": 1.5, "b": None}}
    event = decision_event(
        1,
        event_id="evt/ä 1",
        policy_labels=["hate_speech", "violent_graphic", "spam.v2"],
        handling_time_ms=None,
        decided_at="2026-11-24T10:00:00.123456+05:30",
        metadata=metadata,
    )
    response = await sender.post(event)  # one event, though its metadata names "events"
    assert response.json() == {"accepted": 1, "duplicates": 0}
    [item] = (await client.get("/v1/decisions", headers=auth(admin_key))).json()["items"]
    assert item["event_id"] == "evt/ä 1"
    assert item["metadata"] == metadata
    assert item["policy_labels"] == ["hate_speech", "violent_graphic", "spam.v2"]
    assert item["handling_time_ms"] is None
    assert item["decided_at"].replace("Z", "+00:00") == "2026-11-24T04:30:00.123456+00:00"


async def test_two_sources_may_reuse_an_event_id(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    created = await client.post("/v1/sources", json={"name": "other"}, headers=auth(admin_key))
    other = SignedSender(client, "other", created.json()["secret"])
    results = await asyncio.gather(sender.post(decision_event(1)), other.post(decision_event(1)))
    assert [r.json() for r in results] == [{"accepted": 1, "duplicates": 0}] * 2
    items = (await client.get("/v1/decisions", headers=auth(admin_key))).json()["items"]
    assert sorted(item["source"] for item in items) == ["acme", "other"]


async def test_client_hanging_up_mid_body_is_not_an_error(
    live_server: LiveServer,
    sender: SignedSender,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("services.audit_api.problems")
    handler = Capture()
    logger.addHandler(handler)
    try:
        body = orjson.dumps({"events": [decision_event(n) for n in range(200)]})
        headers = sender.headers(body)
        _reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST /v1/webhooks/decisions HTTP/1.1\r\nHost: x\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
        for _ in range(50):
            if records:
                break
            await asyncio.sleep(0.02)
    finally:
        logger.removeHandler(handler)
    assert [r.levelno for r in records] == [logging.INFO]
    assert await count_decisions(sessionmaker) == 0
