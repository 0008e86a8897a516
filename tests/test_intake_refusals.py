"""Intake refuses what it cannot store, before writing, and one sender's bad data fails no one
else's request (issue 7, sections 1 and 2)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.decisions.service import DecidedAtWindow, parse_decision_events
from services.audit_api.decisions.writer import DecisionWriter
from shared.core.errors import UnprocessableEntity
from shared.core.settings import Settings
from shared.models import Decision, RejectedBatch, Source
from shared.schemas.decisions import DecisionEvent, IntakeResult
from tests.conftest import SignedSender, auth, decision_event
from tests.support.db import count_rows

Sessionmaker = async_sessionmaker[AsyncSession]


async def stored_event_ids(sessionmaker: Sessionmaker) -> list[tuple[str, str]]:
    """(source name, event id) of every stored decision, sorted (repeats would show)."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Source.name, Decision.event_id).join(Source, Source.id == Decision.source_id)
        )
        return sorted((name, event_id) for name, event_id in rows)


async def new_sender(client: httpx.AsyncClient, admin_key: str, name: str) -> SignedSender:
    created = await client.post("/v1/sources", json={"name": name}, headers=auth(admin_key))
    assert created.status_code == 201, created.text
    return SignedSender(client, name, created.json()["secret"])


def assert_event_problem(response: httpx.Response, loc: list[Any]) -> None:
    """A 422 whose first error is at ``loc`` and whose detail names the event's index."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["errors"][0]["loc"] == loc
    if loc[0] == "events":
        assert f"event {loc[1]} is invalid" in problem["detail"]


# ---------------------------------------------------------------------------------------------
# NUL characters: PostgreSQL text and jsonb cannot hold them.

NUL_EVENTS: list[tuple[dict[str, Any], list[Any]]] = [
    ({"event_id": "evt-\u0000"}, ["event_id"]),
    ({"content_id": "vid\u00001"}, ["content_id"]),
    ({"content_type": "\u0000"}, ["content_type"]),
    ({"moderator_id": "mod\u0000x"}, ["moderator_id"]),
    ({"metadata": {"note": "a\u0000b"}}, ["metadata", "note"]),
    # The key is named with its NUL written out (the loc is stored with the rejection).
    ({"metadata": {"k\u0000": 1}}, ["metadata", "k\\u0000"]),
    ({"metadata": {"deep": [1, {"x": ["ok", "\u0000"]}]}}, ["metadata", "deep", 1, "x", 1]),
]


@pytest.mark.parametrize(("overrides", "path"), NUL_EVENTS)
async def test_nul_in_an_event_is_422_naming_the_event(
    sender: SignedSender, sessionmaker: Sessionmaker, overrides: dict[str, Any], path: list[Any]
) -> None:
    batch = {"events": [decision_event(1), decision_event(2, **overrides)]}
    assert_event_problem(await sender.post(batch), ["events", 1, *path])
    assert_event_problem(await sender.post(decision_event(3, **overrides)), path)
    assert await stored_event_ids(sessionmaker) == []
    async with sessionmaker() as session:
        rejected = list(await session.scalars(select(RejectedBatch.status)))
    assert rejected == [422, 422]


async def test_a_nul_in_an_unknown_key_is_422_and_recorded(
    sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    response = await sender.post({"events": [{**decision_event(1), "x\u0000": 1}]})
    assert_event_problem(response, ["events", 0, "x\u0000"])
    async with sessionmaker() as session:
        [rejected] = await session.scalars(select(RejectedBatch))
    assert rejected.errors[0]["loc"] == ["events", 0, "x\\u0000"]


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    # The raw bytes hold "\\u0000": a backslash followed by "u0000", which PostgreSQL stores.
    response = await sender.post(decision_event(1, content_id="path\\u0000", metadata={"r": "\\"}))
    assert response.status_code == 202, response.text
    [item] = (await client.get("/v1/decisions", headers=auth(admin_key))).json()["items"]
    assert item["content_id"] == "path\\u0000"


async def test_poison_requests_fail_alone_among_concurrent_valid_ones(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    senders = [await new_sender(client, admin_key, f"platform-{n}") for n in range(3)]
    valid: list[tuple[SignedSender, dict[str, Any]]] = []
    poison: list[tuple[SignedSender, dict[str, Any]]] = []
    for s, sender in enumerate(senders):
        for r in range(24):
            events = [decision_event(100 * r + e, moderator_id=f"mod-{s}") for e in range(5)]
            if r % 4 == 3:
                # Poison: a NUL in one event, and event ids that valid requests also send.
                events[2] = decision_event(100 * r + 2, metadata={"note": "\u0000"})
                events[0] = decision_event(100 * (r - 1))
                poison.append((sender, {"events": events}))
            else:
                valid.append((sender, {"events": events}))
    everything = [*valid, *poison]
    responses = await asyncio.gather(*(sender.post(body) for sender, body in everything))

    for response in responses[: len(valid)]:
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 5, "duplicates": 0}
    for response in responses[len(valid) :]:
        assert_event_problem(response, ["events", 2, "metadata", "note"])
    expected = sorted(
        (sender.name, event["event_id"]) for sender, body in valid for event in body["events"]
    )
    assert await stored_event_ids(sessionmaker) == expected


async def test_the_writer_isolates_a_request_the_database_refuses(
    settings: Settings,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
) -> None:
    """Should bad data still reach a grouped write, only its own request fails, with a 422.

    The writer is given every request before it starts, so that all of them are grouped into
    one flush; the poison events are built without validation (which would refuse them).
    """
    for name in ("alpha", "beta"):
        await new_sender(client, admin_key, name)
    async with sessionmaker() as session:
        source_ids = dict((await session.execute(select(Source.name, Source.id))).all())

    def events(first: int, count: int, **overrides: Any) -> list[DecisionEvent]:
        return [
            DecisionEvent.model_validate(decision_event(first + n, **overrides))
            for n in range(count)
        ]

    def poisoned(first: int) -> list[DecisionEvent]:
        batch = events(first, 3)
        batch[1] = batch[1].model_copy(update={"content_id": "nul\u0000"})
        return batch

    requests: list[tuple[str, list[DecisionEvent]]] = []
    for r in range(12):
        source = "alpha" if r % 2 else "beta"
        requests.append((source, poisoned(100 * r) if r in (3, 4, 9) else events(100 * r, 3)))
    assert settings.database_url is not None
    writer = DecisionWriter(settings.database_url.replace("+asyncpg", ""), flushers=1)
    writes = [
        asyncio.ensure_future(writer.write(source_id=source_ids[source], events=batch))
        for source, batch in requests
    ]
    await asyncio.sleep(0)  # every request is waiting before the writer takes the first
    await writer.start()
    try:
        results = await asyncio.gather(*writes, return_exceptions=True)
    finally:
        await writer.stop()

    for r, result in enumerate(results):
        if r in (3, 4, 9):
            assert isinstance(result, UnprocessableEntity), result
        else:
            assert result == IntakeResult(accepted=3, duplicates=0)
    expected = sorted(
        (source, event.event_id)
        for r, (source, batch) in enumerate(requests)
        if r not in (3, 4, 9)
        for event in batch
    )
    assert await stored_event_ids(sessionmaker) == expected


# ---------------------------------------------------------------------------------------------
# decided_at: inside a window that every market's calendar can represent.


def _in(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    "decided_at",
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:00:00+00:01",
        "future",
    ],
)
async def test_decided_at_outside_the_window_is_422_and_reads_keep_working(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    decided_at: str,
) -> None:
    if decided_at == "future":
        decided_at = _in(6)
    batch = {"events": [decision_event(1), decision_event(2, decided_at=decided_at)]}
    assert_event_problem(await sender.post(batch), ["events", 1, "decided_at"])
    single = await sender.post(decision_event(3, decided_at=decided_at))
    assert_event_problem(single, ["decided_at"])
    assert await stored_event_ids(sessionmaker) == []
    # Stored, such a decision made both reads a 500 for every caller.
    for path in ("/v1/decisions", "/v1/intake-rollups"):
        assert (await client.get(path, headers=auth(admin_key))).status_code == 200


async def test_decided_at_at_the_window_edges_is_accepted(
    sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    events = [
        decision_event(1, decided_at="2000-01-01T00:00:00Z"),
        decision_event(2, decided_at="2000-01-01T01:00:00+01:00"),
        decision_event(3, decided_at=_in(4)),
    ]
    response = await sender.post({"events": events})
    assert response.status_code == 202, response.text
    assert len(await stored_event_ids(sessionmaker)) == 3


def test_the_earliest_date_is_a_setting() -> None:
    body = orjson.dumps(decision_event(1, decided_at="2015-06-01T00:00:00Z"))
    now = datetime.now(UTC)
    later = DecidedAtWindow.around(
        now, earliest_date=date(2020, 1, 1), future_tolerance=timedelta(minutes=5)
    )
    with pytest.raises(UnprocessableEntity) as refused:
        parse_decision_events(body, max_events=1000, window=later)
    assert [error["loc"] for error in refused.value.errors or []] == [["decided_at"]]
    assert "2020-01-01T00:00:00+00:00" in refused.value.detail
    default = Settings().earliest_date
    assert default == date(2000, 1, 1)
    window = DecidedAtWindow.around(
        now, earliest_date=default, future_tolerance=timedelta(minutes=5)
    )
    [event] = parse_decision_events(body, max_events=1000, window=window)
    assert event.decided_at.year == 2015


# ---------------------------------------------------------------------------------------------
# Other values that used to fail at write or read time.


async def test_metadata_integer_beyond_64_bits_is_422(
    sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    batch = {"events": [decision_event(1), decision_event(2, metadata={"n": 2**70})]}
    body = json.dumps(batch).encode()  # orjson, like the API, refuses the number
    assert_event_problem(await sender.post_raw(body), ["events", 1, "metadata"])
    assert await stored_event_ids(sessionmaker) == []


@pytest.mark.parametrize("market", ["XX", "zz", "EU", "UK", "AA"])
async def test_a_market_that_is_no_iso_country_is_422(
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: Sessionmaker,
    market: str,
) -> None:
    batch = {"events": [decision_event(1), decision_event(2, market=market)]}
    response = await sender.post(batch)
    assert_event_problem(response, ["events", 1, "market"])
    assert "ISO 3166-1" in response.json()["detail"]
    # Everywhere a market code is taken: filters, profiles, keys.
    listed = await client.get("/v1/decisions", params={"market": market}, headers=auth(admin_key))
    assert listed.status_code == 422
    profile = await client.put(
        "/v1/reviewers/rev-1", json={"markets": [market], "languages": ["de"]},
        headers=auth(admin_key),
    )  # fmt: skip
    assert profile.status_code == 422
    assert await count_rows(sessionmaker, Decision) == 0
