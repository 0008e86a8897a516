"""Calibration sessions: ``/v1/calibrations`` end to end, with hand-checked numbers."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.calibrations.service import compute_results, consensus
from shared.models import (
    AuditLogEntry,
    CalibrationLabel,
    CalibrationSession,
    Event,
    OutboxJob,
    Policy,
    Reviewer,
)
from shared.stats.agreement import encode_labels, krippendorff_alpha, percent_agreement, unit_counts
from tests.conftest import SignedSender, auth, decision_event, make_key

HATE, HARASS, NONE = "hate_speech", "harassment", "no_violation"
CATEGORIES = [HATE, HARASS, NONE]

# The worked example: 3 participants x 4 items.
#            v1 (gold hate)  v2 (gold none)  v3 (gold harass)  v4 (no gold)
#   A        hate            none            hate              harass
#   B        hate            harass          hate              none
#   C        hate            none            harass            -
LABELS: dict[str, dict[str, str]] = {
    "A": {"v1": HATE, "v2": NONE, "v3": HATE, "v4": HARASS},
    "B": {"v1": HATE, "v2": HARASS, "v3": HATE, "v4": NONE},
    "C": {"v1": HATE, "v2": NONE, "v3": HARASS},
}
ITEMS = [
    {"content_id": "v1", "golden": HATE},
    {"content_id": "v2", "golden": NONE},
    {"content_id": "v3", "golden": HARASS},
    {"content_id": "v4"},
]


def session_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Hate speech, week 48",
        "market": "DE",
        "categories": CATEGORIES,
        "items": ITEMS,
        "participants": ["A", "B", "C"],
    }
    body.update(overrides)
    return body


class Keys:
    """The creator (a QA lead), the three participants (of different roles), others."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    def __getitem__(self, name: str) -> dict[str, str]:
        return auth(self.keys[name])


@pytest.fixture
async def keys(sessionmaker: async_sessionmaker[AsyncSession], admin_key: str) -> Keys:
    return Keys(
        {
            "admin": admin_key,
            "lead": await make_key(sessionmaker, "qa_auditor", reviewer_id="lead"),
            "A": await make_key(sessionmaker, "qa_auditor", reviewer_id="A"),
            "B": await make_key(sessionmaker, "moderator", reviewer_id="B"),
            "C": await make_key(sessionmaker, "policy_poc", reviewer_id="C"),
            "outsider": await make_key(sessionmaker, "qa_auditor", reviewer_id="Z"),
            "manager": await make_key(sessionmaker, "manager"),
            "manager_at": await make_key(sessionmaker, "manager", markets=["AT"]),
            "poc": await make_key(sessionmaker, "policy_poc"),
        }
    )


async def create(client: httpx.AsyncClient, keys: Keys, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/calibrations", json=session_body(**overrides), headers=keys["lead"]
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def label_all(client: httpx.AsyncClient, keys: Keys, calibration_id: str) -> None:
    for reviewer, labels in LABELS.items():
        response = await client.put(
            f"/v1/calibrations/{calibration_id}/labels",
            json={"labels": [{"content_id": c, "label": v} for c, v in labels.items()]},
            headers=keys[reviewer],
        )
        assert response.status_code == 200, response.text


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with sessionmaker() as session:
        return (await session.scalar(select(func.count()).select_from(model).where(*where))) or 0


# --- pure logic -------------------------------------------------------------------------


def test_consensus_ties_go_to_the_alphabetically_first_label() -> None:
    assert consensus([NONE, HARASS]) == (HARASS, 0.5)
    label, share = consensus([HATE, HATE, NONE])
    assert label == HATE
    assert share == pytest.approx(2 / 3)
    assert consensus([]) == (None, None)


def test_worked_example_by_hand() -> None:
    results = compute_results(
        categories=CATEGORIES,
        participants=["A", "B", "C"],
        items=[(item["content_id"], item.get("golden")) for item in ITEMS],
        labels={(r, c): v for r, labels in LABELS.items() for c, v in labels.items()},
    )
    # Krippendorff (2011) by hand: n = 11 pairable values (hate 5, harass 3, none 3);
    # disagreeing coincidences 6 (v2: 2, v3: 2, v4: 2); alpha = 1 - (n-1) * 6 / (n^2 - 43)
    # = 1 - 60/78 = 3/13.
    assert results.agreement.krippendorff_alpha == pytest.approx(3 / 13, abs=1e-12)
    # P-bar: (1 + 1/3 + 1/3 + 0) / 4.
    assert results.agreement.percent_agreement == pytest.approx(5 / 12, abs=1e-12)
    assert results.agreement.n_units == 4
    assert results.agreement.n_raters == 3
    assert results.agreement.fleiss_kappa is None  # v4 has two ratings, the others three
    # The same numbers straight from shared.stats.agreement.
    rows = [[LABELS[r].get(c) for c in ("v1", "v2", "v3", "v4")] for r in ("A", "B", "C")]
    codes, _ = encode_labels(rows, CATEGORIES)
    assert results.agreement.krippendorff_alpha == pytest.approx(
        krippendorff_alpha(codes), abs=1e-12
    )
    assert results.agreement.percent_agreement == pytest.approx(
        percent_agreement(unit_counts(codes, values=np.arange(3))[0]), abs=1e-12
    )

    items = {item.content_id: item for item in results.items}
    assert (items["v1"].consensus_label, items["v1"].consensus_share, items["v1"].flagged) == (
        HATE,
        1.0,
        False,
    )
    assert items["v2"].consensus_label == NONE
    assert not items["v2"].flagged
    assert items["v2"].consensus_share == pytest.approx(2 / 3)
    assert items["v3"].consensus_label == HATE
    assert items["v3"].flagged  # against golden
    assert (items["v4"].consensus_label, items["v4"].consensus_share) == (HARASS, 0.5)
    assert items["v4"].flagged  # low consensus (tie)

    people = {p.reviewer_id: p for p in results.participants}
    assert (people["A"].labeled, people["B"].labeled, people["C"].labeled) == (4, 4, 3)
    assert people["A"].accuracy_vs_golden == pytest.approx(2 / 3)
    assert people["B"].accuracy_vs_golden == pytest.approx(1 / 3)
    assert people["C"].accuracy_vs_golden == 1.0
    assert people["A"].agreement_with_consensus == 1.0
    assert people["B"].agreement_with_consensus == 0.5
    assert people["C"].agreement_with_consensus == pytest.approx(2 / 3)

    # hate_speech vs the rest: 1s = 5, 0s = 6; disagreeing coincidences 2 (v3);
    # alpha = 1 - 10 * 2 / (2 * 5 * 6) = 2/3.
    per_category = {c.category: c for c in results.per_category}
    assert per_category[HATE].chosen == 5
    assert per_category[HATE].krippendorff_alpha == pytest.approx(2 / 3, abs=1e-12)
    assert [c.category for c in results.per_category] == CATEGORIES


def test_nobody_labeled_gives_nulls_not_a_crash() -> None:
    results = compute_results(
        categories=CATEGORIES, participants=["A", "B"], items=[("v1", HATE)], labels={}
    )
    assert results.agreement.krippendorff_alpha is None
    assert results.agreement.notes
    assert results.items[0].consensus_label is None
    assert not results.items[0].flagged
    assert results.participants[0].accuracy_vs_golden is None


# --- end to end -------------------------------------------------------------------------


async def test_contract_end_to_end(
    client: httpx.AsyncClient, keys: Keys, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await create(client, keys, deadline="2099-01-01T00:00:00Z")
    calibration_id = created["id"]
    assert created["status"] == "open"
    assert [item["golden"] for item in created["items"]] == [HATE, NONE, HARASS, None]
    async with sessionmaker() as session:
        policies = set(await session.scalars(select(Policy.code)))
        reviewers = set(await session.scalars(select(Reviewer.id)))
        opened = (
            await session.scalars(select(Event).where(Event.type == "calibration.opened"))
        ).one()
    assert {HATE, HARASS} <= policies
    assert NONE not in policies
    assert {"A", "B", "C"} <= reviewers
    assert opened.market == "DE"
    assert opened.data == {
        "id": calibration_id,
        "title": "Hate speech, week 48",
        "market": "DE",
        "participants": ["A", "B", "C"],
        "deadline": "2099-01-01T00:00:00Z",
    }
    assert await count(sessionmaker, OutboxJob) >= 1  # the fan-out to channels is queued

    await label_all(client, keys, calibration_id)
    # Before close: results are not available.
    early = await client.get(f"/v1/calibrations/{calibration_id}/results", headers=keys["lead"])
    assert early.status_code == 409

    closed = await client.post(f"/v1/calibrations/{calibration_id}/close", headers=keys["lead"])
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    again = await client.post(f"/v1/calibrations/{calibration_id}/close", headers=keys["admin"])
    assert again.status_code == 409

    results = await client.get(f"/v1/calibrations/{calibration_id}/results", headers=keys["B"])
    assert results.status_code == 200, results.text
    body = results.json()
    # Exactly what the metrics endpoint answers for the same ratings and categories.
    ratings = [[LABELS[r].get(c) for c in ("v1", "v2", "v3", "v4")] for r in ("A", "B", "C")]
    metrics = await client.post(
        "/v1/metrics/agreement",
        json={"level": "nominal", "ratings": ratings, "categories": CATEGORIES},
        headers=keys["admin"],
    )
    assert body["agreement"] == metrics.json()
    assert body["agreement"]["krippendorff_alpha"] == pytest.approx(3 / 13, abs=1e-12)
    assert [p["reviewer_id"] for p in body["participants"]] == ["A", "B", "C"]
    assert body["participants"][1] == {
        "reviewer_id": "B",
        "labeled": 4,
        "accuracy_vs_golden": pytest.approx(1 / 3),
        "agreement_with_consensus": 0.5,
    }
    assert [(i["content_id"], i["consensus_label"], i["flagged"]) for i in body["items"]] == [
        ("v1", HATE, False),
        ("v2", NONE, False),
        ("v3", HATE, True),
        ("v4", HARASS, True),
    ]
    assert {c["category"] for c in body["per_category"]} == set(CATEGORIES)

    async with sessionmaker() as session:
        closed_event = (
            await session.scalars(select(Event).where(Event.type == "calibration.closed"))
        ).one()
        actions = list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_id == calibration_id)
                .order_by(AuditLogEntry.id)
            )
        )
    assert closed_event.market == "DE"
    assert closed_event.data["flagged_items"] == 2
    assert closed_event.data["participants"] == 3
    assert closed_event.data["krippendorff_alpha"] == pytest.approx(3 / 13, abs=1e-12)
    assert closed_event.data["percent_agreement"] == pytest.approx(5 / 12, abs=1e-12)
    assert actions == [
        "calibration.created",
        "calibration.labels_saved",
        "calibration.labels_saved",
        "calibration.labels_saved",
        "calibration.closed",
    ]

    # Notes: written by the creator (also after close), shown in the results.
    note = await client.put(
        f"/v1/calibrations/{calibration_id}/items/v3/note",
        json={"note": "Clarify slurs quoted in news reports"},
        headers=keys["lead"],
    )
    assert note.status_code == 200, note.text
    assert note.json()["note"] == "Clarify slurs quoted in news reports"
    refused = await client.put(
        f"/v1/calibrations/{calibration_id}/items/v3/note", json={"note": "x"}, headers=keys["A"]
    )
    assert refused.status_code == 403
    missing = await client.put(
        f"/v1/calibrations/{calibration_id}/items/nope/note",
        json={"note": "x"},
        headers=keys["lead"],
    )
    assert missing.status_code == 404
    results = await client.get(f"/v1/calibrations/{calibration_id}/results", headers=keys["lead"])
    notes = {item["content_id"]: item["note"] for item in results.json()["items"]}
    assert notes == {
        "v1": None,
        "v2": None,
        "v3": "Clarify slurs quoted in news reports",
        "v4": None,
    }
    assert (
        await count(
            sessionmaker, AuditLogEntry, AuditLogEntry.action == "calibration.item_note_set"
        )
        == 1
    )


async def test_labels_are_blind_until_close_and_can_change(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    calibration_id = (await create(client, keys))["id"]
    url = f"/v1/calibrations/{calibration_id}"
    first = await client.put(
        f"{url}/labels", json={"labels": [{"content_id": "v1", "label": NONE}]}, headers=keys["A"]
    )
    assert first.status_code == 200
    changed = await client.put(
        f"{url}/labels",
        json={"labels": [{"content_id": "v1", "label": HATE}, {"content_id": "v2", "label": NONE}]},
        headers=keys["A"],
    )
    assert [(x["content_id"], x["label"]) for x in changed.json()["labels"]] == [
        ("v1", HATE),
        ("v2", NONE),
    ]
    await client.put(
        f"{url}/labels", json={"labels": [{"content_id": "v1", "label": HARASS}]}, headers=keys["B"]
    )

    as_a = (await client.get(url, headers=keys["A"])).json()
    assert {(x["reviewer_id"], x["content_id"]) for x in as_a["labels"]} == {
        ("A", "v1"),
        ("A", "v2"),
    }
    assert all(item["golden"] is None for item in as_a["items"])  # hidden from participants
    assert [item["golden_hidden"] for item in as_a["items"]] == [True, True, True, False]
    assert {p["reviewer_id"]: p["labeled"] for p in as_a["progress"]} == {"A": 2, "B": 1, "C": 0}
    assert as_a["items"][0]["labeled"] == 2
    as_c = (await client.get(url, headers=keys["C"])).json()
    assert as_c["labels"] == []
    for overseer in ("lead", "manager", "admin"):
        seen = (await client.get(url, headers=keys[overseer])).json()
        assert seen["labels"] == []  # nobody sees others' labels before close
        assert seen["items"][0]["golden"] == HATE
    assert (await client.get(url, headers=keys["outsider"])).status_code == 403

    await client.post(f"{url}/close", headers=keys["manager"])
    after = (await client.get(url, headers=keys["C"])).json()
    assert len(after["labels"]) == 3
    assert after["items"][0]["golden"] == HATE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"items": [{"content_id": "v1", "golden": "spam"}]}, "not one of the categories"),
        ({"items": [{"content_id": "v1"}, {"content_id": "v1"}]}, "listed twice"),
        ({"participants": ["A"]}, "at least two participants"),
        ({"participants": ["A", "A"]}, "must not repeat"),
        ({"categories": [HATE, "Not A Code"]}, "categories"),
        ({"categories": [HATE, HATE]}, "must not repeat"),
        ({"items": []}, "items"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "past"),
        ({"deadline": "2099-01-01T00:00:00"}, "deadline"),
        ({"market": "Germany"}, "market"),
        ({"items": [{"content_id": "v1", "decision_id": 999999}]}, "does not exist"),
    ],
)
async def test_bad_sessions_are_422_and_store_nothing(
    client: httpx.AsyncClient,
    keys: Keys,
    sessionmaker: async_sessionmaker[AsyncSession],
    overrides: dict[str, Any],
    message: str,
) -> None:
    response = await client.post(
        "/v1/calibrations", json=session_body(**overrides), headers=keys["lead"]
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert message in response.text
    assert await count(sessionmaker, CalibrationSession) == 0
    assert await count(sessionmaker, Event) == 0


async def test_items_may_reference_decisions(
    client: httpx.AsyncClient, keys: Keys, sender: SignedSender
) -> None:
    accepted = await sender.post(decision_event(1, content_id="vid-1"))
    assert accepted.status_code == 202
    decisions = await client.get("/v1/decisions", headers=keys["admin"])
    decision_id = decisions.json()["items"][0]["id"]
    created = await create(
        client,
        keys,
        items=[{"content_id": "vid-1", "decision_id": decision_id}, {"content_id": "x"}],
    )
    assert created["items"][0]["decision_id"] == decision_id
    mismatch = await client.post(
        "/v1/calibrations",
        json=session_body(items=[{"content_id": "other", "decision_id": decision_id}]),
        headers=keys["lead"],
    )
    assert mismatch.status_code == 422
    assert "vid-1" in mismatch.json()["errors"][0]["msg"]


async def test_bad_labels_are_refused_and_store_nothing(
    client: httpx.AsyncClient, keys: Keys, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    calibration_id = (await create(client, keys))["id"]
    url = f"/v1/calibrations/{calibration_id}/labels"

    async def put(key: str, *labels: tuple[str, str]) -> httpx.Response:
        body = {"labels": [{"content_id": c, "label": v} for c, v in labels]}
        return await client.put(url, json=body, headers=keys[key])

    not_item = await put("A", ("v1", HATE), ("v9", HATE))
    assert not_item.status_code == 422
    assert not_item.json()["errors"][0]["loc"] == ["body", "labels", 1, "content_id"]
    outside = await put("A", ("v1", "spam"))
    assert outside.status_code == 422
    assert "not one of the session's categories" in outside.text
    assert (await put("A", ("v1", HATE), ("v1", NONE))).status_code == 422
    assert (await client.put(url, json={"labels": []}, headers=keys["A"])).status_code == 422
    assert (await put("outsider", ("v1", HATE))).status_code == 403
    assert (await put("manager", ("v1", HATE))).status_code == 403  # not bound to a participant
    unknown = await client.put(
        f"/v1/calibrations/{uuid.uuid4()}/labels",
        json={"labels": [{"content_id": "v1", "label": HATE}]},
        headers=keys["A"],
    )
    assert unknown.status_code == 404
    assert await count(sessionmaker, CalibrationLabel) == 0

    # Past the deadline: 409.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(CalibrationSession).values(deadline=datetime.now(UTC) - timedelta(seconds=1))
        )
    late = await put("A", ("v1", HATE))
    assert late.status_code == 409
    assert "deadline" in late.json()["detail"]

    # After close: 409.
    async with sessionmaker() as session, session.begin():
        await session.execute(update(CalibrationSession).values(deadline=None))
    assert (await put("A", ("v1", HATE))).status_code == 200
    assert (
        await client.post(f"/v1/calibrations/{calibration_id}/close", headers=keys["lead"])
    ).status_code == 200
    closed = await put("A", ("v1", NONE))
    assert closed.status_code == 409
    async with sessionmaker() as session:
        labels = list(await session.scalars(select(CalibrationLabel.label)))
    assert labels == [HATE]


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("qa_auditor", True),
        ("manager", True),
        ("admin", True),
        ("policy_poc", False),
        ("moderator", False),
    ],
)
async def test_who_may_create(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    allowed: bool,
) -> None:
    key = await make_key(sessionmaker, role, reviewer_id="someone")
    response = await client.post("/v1/calibrations", json=session_body(), headers=auth(key))
    assert response.status_code == (201 if allowed else 403), response.text
    assert (await client.post("/v1/calibrations", json=session_body())).status_code == 401


async def test_who_may_close_see_results_and_trend(
    client: httpx.AsyncClient, keys: Keys, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    calibration_id = (await create(client, keys))["id"]
    url = f"/v1/calibrations/{calibration_id}"
    for name in ("A", "outsider", "poc"):
        assert (await client.post(f"{url}/close", headers=keys[name])).status_code == 403, name
    # Another market's session is not revealed to exist to a market-scoped key.
    assert (await client.post(f"{url}/close", headers=keys["manager_at"])).status_code == 404
    # Another key of the creator's reviewer counts as the creator.
    second_lead_key = await make_key(sessionmaker, "qa_auditor", reviewer_id="lead")
    assert (await client.post(f"{url}/close", headers=auth(second_lead_key))).status_code == 200
    for name in ("A", "B", "C", "lead", "manager", "admin"):
        assert (await client.get(f"{url}/results", headers=keys[name])).status_code == 200, name
    for name in ("outsider", "poc"):
        assert (await client.get(f"{url}/results", headers=keys[name])).status_code == 403, name
    assert (await client.get(f"{url}/results", headers=keys["manager_at"])).status_code == 404
    assert (await client.get(url, headers=keys["manager_at"])).status_code == 404
    assert (await client.get(f"{url}/results")).status_code == 401

    for name in ("lead", "manager", "admin"):
        trend = await client.get("/v1/calibrations/trend?market=DE", headers=keys[name])
        assert trend.status_code == 200, name
    for name in ("B", "C"):  # moderator and policy_poc
        trend = await client.get("/v1/calibrations/trend?market=DE", headers=keys[name])
        assert trend.status_code == 403, name
    assert (
        await client.get("/v1/calibrations/trend?market=DE", headers=keys["manager_at"])
    ).status_code == 403
    assert (await client.get("/v1/calibrations/trend")).status_code == 401
    assert (await client.get("/v1/calibrations/trend", headers=keys["admin"])).status_code == 422


async def test_trend_orders_closed_sessions_and_pages(
    client: httpx.AsyncClient, keys: Keys, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = []
    for week in range(3):
        calibration_id = (await create(client, keys, title=f"week {week}"))["id"]
        ids.append(calibration_id)
        if week < 2:  # the third stays open
            await label_all(client, keys, calibration_id)
            await client.post(f"/v1/calibrations/{calibration_id}/close", headers=keys["lead"])
    await create(client, keys, market="AT")  # another market
    # Close the first one later than the second: the trend follows closing time.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(CalibrationSession)
            .where(CalibrationSession.id == uuid.UUID(ids[0]))
            .values(closed_at=datetime.now(UTC) + timedelta(days=7))
        )
    first = await client.get("/v1/calibrations/trend?market=DE&limit=1", headers=keys["manager"])
    assert first.status_code == 200
    page = first.json()
    assert [p["title"] for p in page["items"]] == ["week 1"]
    point = page["items"][0]
    assert point["krippendorff_alpha"] == pytest.approx(3 / 13, abs=1e-12)
    assert point["percent_agreement"] == pytest.approx(5 / 12, abs=1e-12)
    assert (point["n_units"], point["n_raters"]) == (4, 3)
    second = await client.get(
        "/v1/calibrations/trend",
        params={"market": "de", "limit": 1, "cursor": page["next_cursor"]},
        headers=keys["manager"],
    )
    assert [p["title"] for p in second.json()["items"]] == ["week 0"]
    assert second.json()["next_cursor"] is None
    assert math.isfinite(second.json()["items"][0]["krippendorff_alpha"])


async def test_list_filters_pages_and_shows_only_ones_own_sessions(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first = (await create(client, keys, title="one"))["id"]
    await create(client, keys, title="two", participants=["B", "C"])
    await create(client, keys, title="three", market="AT", participants=["B", "C"])
    await client.post(f"/v1/calibrations/{first}/close", headers=keys["lead"])

    everything = await client.get("/v1/calibrations?limit=2", headers=keys["manager"])
    assert [x["title"] for x in everything.json()["items"]] == ["three", "two"]
    rest = await client.get(
        "/v1/calibrations",
        params={"limit": 2, "cursor": everything.json()["next_cursor"]},
        headers=keys["manager"],
    )
    assert [x["title"] for x in rest.json()["items"]] == ["one"]
    assert rest.json()["next_cursor"] is None
    assert rest.json()["items"][0]["n_items"] == 4
    assert rest.json()["items"][0]["status"] == "closed"

    closed = await client.get("/v1/calibrations?status=closed", headers=keys["admin"])
    assert [x["title"] for x in closed.json()["items"]] == ["one"]
    german = await client.get("/v1/calibrations?market=DE", headers=keys["admin"])
    assert {x["title"] for x in german.json()["items"]} == {"one", "two"}
    scoped = await client.get("/v1/calibrations", headers=keys["manager_at"])
    assert [x["title"] for x in scoped.json()["items"]] == ["three"]
    as_a = await client.get("/v1/calibrations", headers=keys["A"])
    assert [x["title"] for x in as_a.json()["items"]] == ["one"]
    as_lead = await client.get("/v1/calibrations", headers=keys["lead"])
    assert len(as_lead.json()["items"]) == 3
    assert (await client.get("/v1/calibrations", headers=keys["outsider"])).json()["items"] == []
    assert (
        await client.get("/v1/calibrations?status=done", headers=keys["admin"])
    ).status_code == 422
    assert (await client.get("/v1/calibrations")).status_code == 401


async def test_the_list_shows_exactly_the_sessions_a_key_may_read(
    client: httpx.AsyncClient, keys: Keys, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # One visibility rule for list and read: an AT-scoped manager who takes part in a DE
    # session may read it, so it is in their list too (the list used to apply the manager's
    # markets only, the read also participation).
    participant = await make_key(sessionmaker, "manager", reviewer_id="M", markets=["AT"])
    german = (await create(client, keys, title="de", participants=["M", "A"]))["id"]
    austrian = (await create(client, keys, title="at", market="AT", participants=["A", "B"]))["id"]
    other = (await create(client, keys, title="other de", participants=["A", "B"]))["id"]
    readable = {
        calibration_id
        for calibration_id in (german, austrian, other)
        if (
            await client.get(f"/v1/calibrations/{calibration_id}", headers=auth(participant))
        ).status_code
        == 200
    }
    listed = await client.get("/v1/calibrations", headers=auth(participant))
    assert readable == {german, austrian}
    assert {item["id"] for item in listed.json()["items"]} == readable


async def test_market_scoped_manager_creates_only_in_its_markets(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    inside = await client.post(
        "/v1/calibrations", json=session_body(market="AT"), headers=keys["manager_at"]
    )
    assert inside.status_code == 201
    outside = await client.post("/v1/calibrations", json=session_body(), headers=keys["manager_at"])
    assert outside.status_code == 403
