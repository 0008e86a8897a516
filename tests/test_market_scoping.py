"""Market scoping holds for writes too, and never reveals another market's objects (issue 7,
section 3).

Found on the landed code: a DE-scoped manager could ``PUT /v1/reviewers/{id}`` a reviewer of
AT and FR and strip their other markets; a key created with ``"markets": []`` became an
all-markets key; ``GET /v1/deliveries`` showed every market's deliveries to a scoped key; and
reads by id answered 403 (so: "it exists") for another market's disagreement or calibration.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shared.api_keys.service import create_api_key
from shared.core.errors import UnprocessableEntity
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.events import EventType, SourceRejectedBatch, record_event
from shared.models import Delivery, Reviewer
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.audits import Sessions, make_audits
from tests.support.calibrations import create_calibration
from tests.support.disagreements import new_case
from tests.support.problems import assert_problem
from tests.support.quizzes import create_quiz
from tests.support.webhooks import WebhookReceiver, create_channel, notify

PROFILE = {"display_name": "Ana", "languages": ["de"]}


async def put_profile(
    client: httpx.AsyncClient, key: str, reviewer_id: str, markets: list[str]
) -> httpx.Response:
    return await client.put(
        f"/v1/reviewers/{reviewer_id}", json={**PROFILE, "markets": markets}, headers=auth(key)
    )


async def stored_markets(sessionmaker: Sessions, reviewer_id: str) -> list[str]:
    async with sessionmaker() as session:
        reviewer = await session.get(Reviewer, reviewer_id)
    assert reviewer is not None
    return list(reviewer.markets)


# ---------------------------------------------------------------------------- reviewers


async def test_a_scoped_manager_changes_only_its_own_markets_of_a_profile(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    assert (await put_profile(client, admin_key, "ana", ["AT", "FR", "DE"])).status_code == 201
    german = await make_key(sessionmaker, "manager", markets=["DE"])

    # The landed code stored exactly ["DE"]: AT and FR were stripped.
    kept = await put_profile(client, german, "ana", ["DE"])
    assert kept.status_code == 200, kept.text
    assert kept.json()["markets"] == ["AT", "DE", "FR"]
    removed = await put_profile(client, german, "ana", [])
    assert removed.json()["markets"] == ["AT", "FR"]
    assert await stored_markets(sessionmaker, "ana") == ["AT", "FR"]
    # Echoing the markets it cannot change is fine; giving one the reviewer lacks is not.
    echoed = await put_profile(client, german, "bea", ["DE"])
    assert echoed.status_code == 201
    assert (await put_profile(client, admin_key, "bea", ["AT", "DE"])).status_code == 200
    assert (await put_profile(client, german, "bea", ["AT", "DE"])).json()["markets"] == [
        "AT",
        "DE",
    ]
    assert_problem(await put_profile(client, german, "bea", ["CH", "DE"]), 403)
    assert await stored_markets(sessionmaker, "bea") == ["AT", "DE"]


async def test_a_reviewer_wholly_outside_a_scoped_key_does_not_exist_for_it(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    assert (await put_profile(client, admin_key, "ana", ["AT", "FR"])).status_code == 201
    german = await make_key(sessionmaker, "manager", markets=["DE"])
    assert_problem(await put_profile(client, german, "ana", ["DE"]), 404)
    assert await stored_markets(sessionmaker, "ana") == ["AT", "FR"]
    assert_problem(await client.get("/v1/reviewers/ana", headers=auth(german)), 404)
    assert_problem(await client.get("/v1/reviewers/nobody", headers=auth(german)), 404)
    listed = await client.get("/v1/reviewers", headers=auth(german))
    assert "ana" not in [r["id"] for r in listed.json()["items"]]
    assert (await client.get("/v1/reviewers/ana", headers=auth(admin_key))).status_code == 200
    # A reviewer with no market yet (first named by a key) may be given the key's markets.
    await make_key(sessionmaker, "qa_auditor", reviewer_id="cem")
    created = await put_profile(client, german, "cem", ["DE"])
    assert created.status_code == 200, created.text
    assert created.json()["markets"] == ["DE"]


# ---------------------------------------------------------------------------- api keys


async def test_an_empty_market_list_is_refused_not_read_as_every_market(
    client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessions
) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "k", "role": "manager", "markets": []},
        headers=auth(admin_key),
    )
    problem = assert_problem(response, 422)
    assert any("markets" in error["loc"] for error in problem["errors"])
    async with sessionmaker() as session:
        with pytest.raises(UnprocessableEntity):
            await create_api_key(session, name="k", role="manager", markets=[])
    scoped = await client.post(
        "/v1/api-keys",
        json={"name": "k", "role": "manager", "markets": ["DE"]},
        headers=auth(admin_key),
    )
    assert scoped.status_code == 201, scoped.text
    assert scoped.json()["markets"] == ["DE"]


# ---------------------------------------------------------------------------- deliveries


async def deliveries_by_market(
    client: httpx.AsyncClient,
    admin_key: str,
    receiver: WebhookReceiver,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> dict[str | None, str]:
    """One delivered message per event market (DE, FR and none); their delivery ids."""
    await create_channel(client, admin_key, receiver.url)
    events = {}
    async with sessionmaker() as session, session.begin():
        for market in ("DE", "FR", None):
            data = SourceRejectedBatch(
                id=uuid.uuid4(), source="acme", status=422, reason="r", errors=[], event_count=1
            )
            event = await record_event(
                session, type=EventType.SOURCE_REJECTED_BATCH, data=data, market=market
            )
            events[event.id] = market
    await notify(settings, sessionmaker, queue)
    async with sessionmaker() as session:
        rows = await session.execute(select(Delivery.event_id, Delivery.id))
        return {events[event_id]: str(delivery_id) for event_id, delivery_id in rows}


async def test_deliveries_show_a_scoped_key_only_its_markets(
    client: httpx.AsyncClient,
    admin_key: str,
    receiver: WebhookReceiver,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    ids = await deliveries_by_market(client, admin_key, receiver, settings, sessionmaker, queue)
    assert set(ids) == {"DE", "FR", None}
    german = await make_key(sessionmaker, "manager", markets=["DE"])
    listed = await client.get("/v1/deliveries", headers=auth(german))
    assert [d["id"] for d in listed.json()["items"]] == [ids["DE"]]
    assert (await client.get(f"/v1/deliveries/{ids['DE']}", headers=auth(german))).is_success
    for market in ("FR", None):
        hidden = await client.get(f"/v1/deliveries/{ids[market]}", headers=auth(german))
        assert_problem(hidden, 404)
    everything = await client.get("/v1/deliveries", headers=auth(admin_key))
    assert len(everything.json()["items"]) == 3
    scoped_admin = await make_key(sessionmaker, "admin", markets=["DE"])
    redrive = await client.post(f"/v1/deliveries/{ids['FR']}/redrive", headers=auth(scoped_admin))
    assert_problem(redrive, 404)


# ---------------------------------------------------------------------------- reads by id


async def test_reads_by_id_answer_404_for_another_markets_objects(
    client: httpx.AsyncClient,
    sender: SignedSender,
    admin_key: str,
    receiver: WebhookReceiver,
    settings: Settings,
    sessionmaker: Sessions,
    queue: ArqRedis,
) -> None:
    french = await make_key(sessionmaker, "manager", reviewer_id="lead-fr", markets=["FR"])
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    case = await new_case(sender, sessionmaker, 2)
    calibration = await create_calibration(client, admin_key)
    closed = await client.post(
        f"/v1/calibrations/{calibration['id']}/close", headers=auth(admin_key)
    )
    assert closed.status_code == 200, closed.text
    quiz = await create_quiz(client, admin_key, assignee_markets=["DE"], assignee_reviewer_ids=[])
    ids = await deliveries_by_market(client, admin_key, receiver, settings, sessionmaker, queue)
    urls = [
        f"/v1/audits/{audit_id}",
        f"/v1/disagreements/{case.disagreement_id}",
        f"/v1/calibrations/{calibration['id']}",
        f"/v1/calibrations/{calibration['id']}/results",
        f"/v1/quizzes/{quiz['id']}",
        f"/v1/quizzes/{quiz['id']}/attempts",
        f"/v1/deliveries/{ids['DE']}",
    ]
    for url in urls:
        # Every one of them is DE's: to an FR key it answers as if it did not exist.
        assert_problem(await client.get(url, headers=auth(french)), 404)
        assert (await client.get(url, headers=auth(admin_key))).status_code == 200, url
    german = await make_key(sessionmaker, "manager", reviewer_id="lead-de", markets=["DE"])
    for url in urls:
        response: Any = await client.get(url, headers=auth(german))
        assert response.status_code == 200, (url, response.text)
