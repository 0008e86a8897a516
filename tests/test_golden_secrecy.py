"""Golden audits are indistinguishable from real ones to an auditor (issue 7, section 3).

Found on the landed code: a golden claim's ``reason`` was ``base_rate`` (the sampler says
``base``), its ``created_at`` equalled its ``claimed_at``, which claim was golden followed
from an unkeyed hash of the auditor id and claim count, and a QA auditor could probe
``POST /v1/golden-items`` (409 "already is an active golden item").
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from services.report_worker.sampling import sample_market_day
from shared.golden.service import is_golden_turn
from shared.models import Decision
from shared.sampling.selection import REASONS
from tests.conftest import LiveServer, SignedSender, auth, decision_event, make_key
from tests.support.audits import Sessions, auditor, claim, verdict
from tests.support.problems import assert_problem

GOLDEN = "/v1/golden-items"
DAY = date(2026, 11, 24)


@pytest.fixture
async def golden_settings(live_server: LiveServer) -> AsyncIterator[Callable[..., None]]:
    """Change the live app's golden settings; the original settings come back after the test."""
    original = live_server.app.state.settings

    def change(**values: Any) -> None:
        live_server.app.state.settings = original.model_copy(update=values)

    yield change
    live_server.app.state.settings = original


async def decision_ids(sessionmaker: Sessions, event_ids: list[str]) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Decision.event_id, Decision.id).where(Decision.event_id.in_(event_ids))
        )
        return {event_id: decision_id for event_id, decision_id in rows}


async def sample_day(sessionmaker: Sessions, client: httpx.AsyncClient, admin_key: str) -> None:
    """Real audits, made by the real sampler: every decision of the sampled queue on DAY."""
    plan = await client.post(
        "/v1/sampling-plans",
        json={"queue": "de-video-standard", "rate": 1.0, "min_per_moderator": 0},
        headers=auth(admin_key),
    )
    assert plan.status_code == 201, plan.text
    async with sessionmaker() as session, session.begin():
        await sample_market_day(session, market="DE", day=DAY, seed_base="test")


async def curate(client: httpx.AsyncClient, key: str, decision_id: int) -> httpx.Response:
    return await client.post(
        GOLDEN, json={"decision_id": decision_id, "expected_outcome": "correct"}, headers=auth(key)
    )


async def test_a_golden_claim_reads_like_a_real_one(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    golden_settings: Callable[..., None],
) -> None:
    # The golden decision's queue has no plan: only the other one is really sampled.
    events = [
        decision_event(1, queue="de-golden", moderator_id="mod-1"),
        decision_event(2, moderator_id="mod-2"),
    ]
    assert (await sender.post({"events": events})).status_code == 202
    ids = await decision_ids(sessionmaker, ["evt-1", "evt-2"])
    await sample_day(sessionmaker, client, admin_key)
    manager = await make_key(sessionmaker, "manager")
    assert (await curate(client, manager, ids["evt-1"])).status_code == 201
    key = await auditor(sessionmaker, "aud-1")

    golden_settings(golden_rate=1.0)
    golden = (await claim(client, key)).json()
    assert golden["decision"]["id"] == ids["evt-1"]
    assert (await verdict(client, key, golden["id"])).status_code == 200
    golden_settings(golden_rate=0.0)
    real = (await claim(client, key)).json()
    assert real["decision"]["id"] == ids["evt-2"]

    assert set(golden) == set(real)
    assert set(golden["decision"]) == set(real["decision"])
    assert golden["is_golden"] is real["is_golden"] is False
    # The same reason vocabulary as the sampler's.
    assert real["reason"] in REASONS
    assert golden["reason"] in REASONS
    # Created when the day's real audits were (by the sampler), not at the claim.
    assert golden["created_at"] == real["created_at"]
    for audit in (golden, real):
        created = datetime.fromisoformat(audit["created_at"])
        assert created < datetime.fromisoformat(audit["claimed_at"])
        assert 0 <= audit["priority"] < 1


async def test_a_golden_claim_without_real_audits_that_day_is_not_created_at_the_claim(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    golden_settings: Callable[..., None],
) -> None:
    assert (await sender.post(decision_event(1))).status_code == 202
    ids = await decision_ids(sessionmaker, ["evt-1"])
    assert (await curate(client, admin_key, ids["evt-1"])).status_code == 201
    key = await auditor(sessionmaker, "aud-1")
    golden_settings(golden_rate=1.0)
    golden = (await claim(client, key)).json()
    assert golden["decision"]["id"] == ids["evt-1"]
    assert golden["created_at"] != golden["claimed_at"]
    assert golden["created_at"] < golden["claimed_at"]


async def test_only_managers_and_admins_curate_golden_items(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    assert (await sender.post(decision_event(1))).status_code == 202
    ids = await decision_ids(sessionmaker, ["evt-1"])
    assert (await curate(client, admin_key, ids["evt-1"])).status_code == 201
    key = await auditor(sessionmaker, "aud-1")
    # No probing: the same 403 whether the decision is golden, not golden, or unknown.
    for decision_id in (ids["evt-1"], ids["evt-1"] + 1000):
        assert_problem(await curate(client, key, decision_id), 403)
    manager = await make_key(sessionmaker, "manager")
    assert_problem(await curate(client, manager, ids["evt-1"]), 409)


def _unkeyed(auditor_id: str, claim_number: int, rate: float) -> bool:
    """The landed selection: SHA-256 of "auditor:count", which anyone can compute."""
    digest = hashlib.sha256(f"{auditor_id}:{claim_number}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def test_golden_turns_depend_on_the_secret_key() -> None:
    first, second = b"k" * 32, b"q" * 32
    turns = [is_golden_turn("aud-1", n, 0.5, key=first) for n in range(200)]
    assert turns == [is_golden_turn("aud-1", n, 0.5, key=first) for n in range(200)]
    assert turns != [is_golden_turn("aud-1", n, 0.5, key=second) for n in range(200)]
    assert turns != [_unkeyed("aud-1", n, 0.5) for n in range(200)]
    assert 0.4 < sum(turns) / len(turns) < 0.6
    assert not any(is_golden_turn("aud-1", n, 0.0, key=first) for n in range(200))
    assert all(is_golden_turn("aud-1", n, 1.0, key=first) for n in range(200))


async def test_claims_follow_the_configured_selection_key(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    golden_settings: Callable[..., None],
) -> None:
    claims = 8
    golden_events = [decision_event(n, queue="de-golden") for n in range(claims)]
    real_events = [decision_event(100 + n) for n in range(claims)]
    assert (await sender.post({"events": golden_events + real_events})).status_code == 202
    ids = await decision_ids(sessionmaker, [e["event_id"] for e in golden_events])
    for decision_id in ids.values():
        assert (await curate(client, admin_key, decision_id)).status_code == 201
    await sample_day(sessionmaker, client, admin_key)
    key = await auditor(sessionmaker, "aud-1")
    secret = "a selection key nobody else knows"
    golden_settings(golden_rate=0.5, golden_selection_key=SecretStr(secret))

    handed_golden = []
    for _ in range(claims):
        handed = (await claim(client, key)).json()
        handed_golden.append(handed["decision"]["id"] in ids.values())
        assert (await verdict(client, key, handed["id"])).status_code == 200
    expected = [is_golden_turn("aud-1", n, 0.5, key=secret.encode()) for n in range(claims)]
    assert handed_golden == expected
    other = [is_golden_turn("aud-1", n, 0.5, key=b"another key") for n in range(claims)]
    assert expected != other  # so the assertion above tells the keys apart
