"""Golden items: curating and importing, mixing into claims, matching verdicts, the auditor
quality report, the accuracy-drop event, and roles."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from shared.golden.quality import announce_accuracy_drops
from shared.golden.service import expectation_from_golden_label, is_golden_turn
from shared.models import (
    Audit,
    AuditLogEntry,
    CalibrationItem,
    CalibrationSession,
    Decision,
    Disagreement,
    Event,
    GoldenItem,
    GoldenVerdict,
)
from shared.models.base import utcnow
from shared.stats.intervals import wilson_interval
from tests.conftest import LiveServer, SignedSender, auth, decision_event, make_key
from tests.support.audits import Sessions, auditor, claim, make_audits, verdict
from tests.support.problems import assert_problem

GOLDEN = "/v1/golden-items"
QUALITY = "/v1/auditor-quality"


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
async def set_golden_rate(live_server: LiveServer) -> AsyncIterator[Callable[[float], None]]:
    """Set the live app's ``golden_rate``; the original settings come back after the test."""
    original = live_server.app.state.settings

    def set_rate(rate: float) -> None:
        live_server.app.state.settings = original.model_copy(update={"golden_rate": rate})

    yield set_rate
    live_server.app.state.settings = original


async def post_decisions(
    sender: SignedSender, sessionmaker: Sessions, events: list[dict[str, Any]]
) -> list[int]:
    """Post the events (no audits); their decision ids, in order."""
    response = await sender.post({"events": events})
    assert response.status_code == 202, response.text
    async with sessionmaker() as session:
        ids = dict(
            (
                await session.execute(
                    select(Decision.event_id, Decision.id).where(
                        Decision.event_id.in_([e["event_id"] for e in events])
                    )
                )
            ).all()
        )
    return [ids[e["event_id"]] for e in events]


async def curate(
    client: httpx.AsyncClient, key: str, decision_id: int, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        GOLDEN,
        json={"decision_id": decision_id, "expected_outcome": "correct", **body},
        headers=auth(key),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def golden_verdicts(sessionmaker: Sessions) -> list[GoldenVerdict]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(GoldenVerdict)))


# ---------------------------------------------------------------------------- pure parts


def test_golden_turns_come_at_the_configured_rate() -> None:
    key = b"test selection key"
    turns = [is_golden_turn("aud-1", n, 0.3, key=key) for n in range(4000)]
    assert 0.27 < sum(turns) / len(turns) < 0.33
    assert turns == [is_golden_turn("aud-1", n, 0.3, key=key) for n in range(4000)]
    assert not any(is_golden_turn("aud-1", n, 0.0, key=key) for n in range(500))
    assert all(is_golden_turn("aud-1", n, 1.0, key=key) for n in range(500))


def test_calibration_labels_map_to_expectations() -> None:
    assert expectation_from_golden_label("no_violation", action="approve", labels=[]) == (
        "correct",
        None,
        None,
    )
    assert expectation_from_golden_label("no_violation", action="remove", labels=["spam"]) == (
        "incorrect",
        "approve",
        [],
    )
    assert expectation_from_golden_label("spam", action="restrict", labels=["spam"]) == (
        "correct",
        None,
        None,
    )
    assert expectation_from_golden_label("spam", action="approve", labels=[]) == (
        "incorrect",
        "remove",
        ["spam"],
    )
    assert expectation_from_golden_label("spam", action="remove", labels=["hate_speech"]) == (
        "incorrect",
        "remove",
        ["spam"],
    )


# ---------------------------------------------------------------------------- mixing


async def test_golden_claims_are_indistinguishable_and_never_count_for_moderators(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    set_golden_rate: Callable[[float], None],
) -> None:
    [golden_decision] = await post_decisions(
        sender, sessionmaker, [decision_event(1, moderator_id="mod-1")]
    )
    [real_audit] = await make_audits(
        sender, sessionmaker, [decision_event(2, moderator_id="mod-1")]
    )
    item = await curate(
        client,
        admin_key,
        golden_decision,
        expected_outcome="incorrect",
        expected_action="approve",
    )
    assert item["expected_labels"] == []
    assert item["source"] == "curated"
    assert item["active"]
    key = await auditor(sessionmaker, "aud-1")
    set_golden_rate(1.0)

    golden_claim = await claim(client, key)
    assert golden_claim.status_code == 200, golden_claim.text
    golden = golden_claim.json()
    assert golden["decision"]["id"] == golden_decision
    assert golden["is_golden"] is False
    assert golden["status"] == "claimed"
    assert "moderator_id" not in golden["decision"]

    judged = await verdict(
        client, key, golden["id"], outcome="incorrect", expected_action="approve", severity="major"
    )
    assert judged.status_code == 200, judged.text
    assert judged.json()["is_golden"] is False
    [result] = await golden_verdicts(sessionmaker)
    assert result.matched
    assert result.auditor_id == "aud-1"

    # Nothing golden is left for this auditor: the same rate falls back to real work.
    real_claim = await claim(client, key)
    assert real_claim.status_code == 200, real_claim.text
    real = real_claim.json()
    assert real["id"] == str(real_audit)
    assert set(real) == set(golden)
    assert set(real["decision"]) == set(golden["decision"])
    assert (await verdict(client, key, real["id"])).status_code == 200
    assert (await claim(client, key)).status_code == 204

    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Disagreement)) == 0
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
    report = await client.get(
        "/v1/reports/accuracy", params={"group_by": "moderator"}, headers=auth(admin_key)
    )
    assert report.status_code == 200, report.text
    [row] = report.json()["rows"]
    assert (row["key"], row["audited"], row["correct"]) == ("mod-1", 1, 1)
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-1")
    listed = await client.get("/v1/audits", headers=auth(moderator))
    assert [a["id"] for a in listed.json()["items"]] == [str(real_audit)]
    # Managers see which audit was golden.
    everything = await client.get("/v1/audits", headers=auth(admin_key))
    flags = {a["decision"]["id"]: a["is_golden"] for a in everything.json()["items"]}
    assert flags[golden_decision] is True


async def test_golden_items_respect_rate_scope_own_decisions_and_deactivation(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    set_golden_rate: Callable[[float], None],
) -> None:
    own, other_market, usable = await post_decisions(
        sender,
        sessionmaker,
        [
            decision_event(1, moderator_id="aud-1"),
            decision_event(2, market="FR", language="fr"),
            decision_event(3),
        ],
    )
    for decision_id in (own, other_market):
        await curate(client, admin_key, decision_id)
    usable_item = await curate(client, admin_key, usable)
    [real_audit] = await make_audits(sender, sessionmaker, [decision_event(4)])
    key = await auditor(sessionmaker, "aud-1")

    set_golden_rate(0.0)
    first = await claim(client, key)
    assert first.json()["id"] == str(real_audit)
    assert (await verdict(client, key, first.json()["id"])).status_code == 200

    set_golden_rate(1.0)
    deactivated = await client.delete(f"{GOLDEN}/{usable_item['id']}", headers=auth(admin_key))
    assert deactivated.status_code == 200
    assert deactivated.json()["active"] is False
    # Own decision, other market, deactivated: nothing golden fits, nothing real is left.
    assert (await claim(client, key)).status_code == 204
    async with sessionmaker() as session:
        logged = set(
            await session.scalars(
                select(AuditLogEntry.action).where(AuditLogEntry.entity_type == "golden_item")
            )
        )
    assert logged == {"golden_item.create", "golden_item.deactivate"}


# ---------------------------------------------------------------------------- quality


async def _judge_golden(
    client: httpx.AsyncClient, key: str, answers: dict[int, dict[str, Any]]
) -> None:
    """Claim golden items until 204 and judge each as ``answers[decision id]`` says."""
    for _ in range(len(answers) + 1):
        response = await claim(client, key)
        if response.status_code == 204:
            return
        handed = response.json()
        judged = await verdict(client, key, handed["id"], **answers[handed["decision"]["id"]])
        assert judged.status_code == 200, judged.text
    raise AssertionError("more claims than golden items")


async def test_verdicts_are_matched_and_the_quality_report_counts_them(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    set_golden_rate: Callable[[float], None],
) -> None:
    right_decision, wrong_decision = await post_decisions(
        sender, sessionmaker, [decision_event(1), decision_event(2)]
    )
    await curate(client, admin_key, right_decision)
    await curate(
        client, admin_key, wrong_decision, expected_outcome="incorrect", expected_action="approve"
    )
    set_golden_rate(1.0)
    correct = {"outcome": "correct"}
    approve = {"outcome": "incorrect", "expected_action": "approve", "severity": "minor"}
    restrict = {"outcome": "incorrect", "expected_action": "restrict", "severity": "minor"}
    # aud-1: right, then the right outcome with the wrong action (unmatched).
    await _judge_golden(
        client,
        await auditor(sessionmaker, "aud-1"),
        {right_decision: correct, wrong_decision: restrict},
    )
    await _judge_golden(
        client,
        await auditor(sessionmaker, "aud-2"),
        {right_decision: correct, wrong_decision: approve},
    )
    await _judge_golden(
        client,
        await auditor(sessionmaker, "aud-3"),
        {right_decision: approve, wrong_decision: approve},
    )
    matched = {
        (v.auditor_id, v.decision_id): v.matched for v in await golden_verdicts(sessionmaker)
    }
    assert matched == {
        ("aud-1", right_decision): True,
        ("aud-1", wrong_decision): False,
        ("aud-2", right_decision): True,
        ("aud-2", wrong_decision): True,
        ("aud-3", right_decision): False,
        ("aud-3", wrong_decision): True,
    }

    manager = await make_key(sessionmaker, "manager")
    response = await client.get(QUALITY, headers=auth(manager))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["threshold"] == 0.9
    year, week, _ = utcnow().date().isocalendar()
    rows = {row["auditor_id"]: row for row in body["rows"]}
    assert set(rows) == {"aud-1", "aud-2", "aud-3"}
    low, high = wilson_interval(1, 2)
    assert rows["aud-1"]["week"] == f"{year}-W{week:02d}"
    assert (rows["aud-1"]["golden_judged"], rows["aud-1"]["golden_matched"]) == (2, 1)
    assert rows["aud-1"]["accuracy"] == 0.5
    assert rows["aud-1"]["ci_low"] == pytest.approx(low)
    assert rows["aud-1"]["ci_high"] == pytest.approx(high)
    assert rows["aud-2"]["accuracy"] == 1.0
    assert rows["aud-2"]["ci_high"] == 1.0
    # Outcomes only: on the right decision the others of aud-1 split (tie, not compared), on
    # the wrong one both others said incorrect, as aud-1 did.
    assert (rows["aud-1"]["agreement"], rows["aud-1"]["agreement_compared"]) == (1.0, 1)
    # aud-3 said incorrect on both: the others said correct on one, incorrect on the other.
    assert (rows["aud-3"]["agreement"], rows["aud-3"]["agreement_compared"]) == (0.5, 2)
    assert (rows["aud-2"]["agreement"], rows["aud-2"]["agreement_compared"]) == (1.0, 1)

    # A window without the verdicts is empty; a market-scoped key sees its markets only.
    earlier = await client.get(
        QUALITY, params={"from": "2020-01-01", "to": "2020-01-31"}, headers=auth(manager)
    )
    assert earlier.status_code == 200
    assert earlier.json()["rows"] == []
    french = await make_key(sessionmaker, "manager", markets=["FR"])
    assert (await client.get(QUALITY, headers=auth(french))).json()["rows"] == []
    backwards = await client.get(
        QUALITY, params={"from": "2026-02-01", "to": "2026-01-01"}, headers=auth(manager)
    )
    assert_problem(backwards, 422)


async def test_accuracy_drop_is_announced_once(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    set_golden_rate: Callable[[float], None],
) -> None:
    decisions = await post_decisions(sender, sessionmaker, [decision_event(n) for n in range(5)])
    for decision_id in decisions:
        await curate(client, admin_key, decision_id)
    set_golden_rate(1.0)
    wrong = {"outcome": "incorrect", "expected_action": "approve", "severity": "minor"}
    answers = {decision_id: wrong for decision_id in decisions}
    answers[decisions[0]] = {"outcome": "correct"}
    await _judge_golden(client, await auditor(sessionmaker, "aud-1"), answers)

    next_week = utcnow() + timedelta(weeks=1)
    async with sessionmaker() as session, session.begin():
        # This week is not over: nothing is announced yet.
        assert await announce_accuracy_drops(session, now=utcnow(), threshold=0.9) == 0
        assert await announce_accuracy_drops(session, now=next_week, threshold=0.9) == 1
    async with sessionmaker() as session, session.begin():
        assert await announce_accuracy_drops(session, now=next_week, threshold=0.9) == 0
    async with sessionmaker() as session:
        events = list(await session.scalars(select(Event)))
    assert [event.type for event in events] == ["auditor.accuracy_dropped"]
    year, week, _ = utcnow().date().isocalendar()
    assert events[0].data == {
        "auditor_id": "aud-1",
        "week": f"{year}-W{week:02d}",
        "judged": 5,
        "matched": 1,
        "accuracy": 0.2,
        "threshold": 0.9,
    }
    # The announcement and GET /v1/auditor-quality count with one query: the same numbers.
    shown = await client.get(QUALITY, params={"auditor_id": "aud-1"}, headers=auth(admin_key))
    assert shown.status_code == 200, shown.text
    [row] = shown.json()["rows"]
    assert (row["week"], row["golden_judged"], row["golden_matched"], row["accuracy"]) == (
        f"{year}-W{week:02d}",
        5,
        1,
        0.2,
    )
    # Above the threshold, or fewer than 5 verdicts: never announced.
    async with sessionmaker() as session, session.begin():
        assert await announce_accuracy_drops(session, now=next_week, threshold=0.1) == 0


# ---------------------------------------------------------------------------- curating


async def test_bad_golden_items_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    [decision_id] = await post_decisions(sender, sessionmaker, [decision_event(1)])
    cases: list[tuple[dict[str, Any], int]] = [
        ({"decision_id": 999_999, "expected_outcome": "correct"}, 422),
        ({"decision_id": decision_id, "expected_outcome": "incorrect"}, 422),
        ({"decision_id": decision_id, "expected_outcome": "maybe"}, 422),
        ({"decision_id": decision_id, "expected_outcome": "correct", "expected_action": "x"}, 422),
        (
            {"decision_id": decision_id, "expected_outcome": "correct", "expected_labels": []},
            422,
        ),
        # The moderator's own decision is not an incorrect expectation.
        (
            {
                "decision_id": decision_id,
                "expected_outcome": "incorrect",
                "expected_action": "remove",
            },
            422,
        ),
    ]
    for body, status in cases:
        assert_problem(await client.post(GOLDEN, json=body, headers=auth(admin_key)), status)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(GoldenItem)) == 0
    await curate(client, admin_key, decision_id)
    duplicate = await client.post(
        GOLDEN,
        json={"decision_id": decision_id, "expected_outcome": "correct"},
        headers=auth(admin_key),
    )
    assert_problem(duplicate, 409)
    assert_problem(await client.delete(f"{GOLDEN}/{uuid.uuid4()}", headers=auth(admin_key)), 404)


async def test_golden_items_page_newest_first(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    decisions = await post_decisions(sender, sessionmaker, [decision_event(n) for n in range(3)])
    created = [(await curate(client, admin_key, d))["id"] for d in decisions]
    first = await client.get(GOLDEN, params={"limit": 2}, headers=auth(admin_key))
    assert first.status_code == 200, first.text
    second = await client.get(
        GOLDEN,
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=auth(admin_key),
    )
    assert second.json()["next_cursor"] is None
    listed = [i["id"] for i in first.json()["items"] + second.json()["items"]]
    assert listed == created[::-1]
    inactive = await client.get(GOLDEN, params={"active": "false"}, headers=auth(admin_key))
    assert inactive.json()["items"] == []
    assert_problem(
        await client.get(GOLDEN, params={"cursor": "junk"}, headers=auth(admin_key)), 400
    )


async def test_closed_calibration_items_become_golden_items(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    approved, removed = await post_decisions(
        sender,
        sessionmaker,
        [
            decision_event(1, action="approve", policy_labels=[]),
            decision_event(2, action="approve", policy_labels=[]),
        ],
    )
    calibration_id, open_id = uuid.uuid4(), uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        for session_id, status in ((calibration_id, "closed"), (open_id, "open")):
            session.add(
                CalibrationSession(
                    id=session_id,
                    title="golden import",
                    market="DE",
                    categories=["no_violation", "hate_speech"],
                    participants=["aud-9"],
                    status=status,
                    created_by_key_id="k",
                )
            )
        await session.flush()
        session.add_all(
            [
                CalibrationItem(
                    session_id=calibration_id,
                    content_id="c1",
                    position=0,
                    decision_id=approved,
                    golden="no_violation",
                ),
                CalibrationItem(
                    session_id=calibration_id,
                    content_id="c2",
                    position=1,
                    decision_id=removed,
                    golden="hate_speech",
                ),
                CalibrationItem(
                    session_id=calibration_id, content_id="c3", position=2, decision_id=removed
                ),
                CalibrationItem(
                    session_id=calibration_id, content_id="c4", position=3, golden="hate_speech"
                ),
            ]
        )
    manager = await make_key(sessionmaker, "manager")
    url = f"{GOLDEN}/from-calibration/{calibration_id}"
    response = await client.post(url, headers=auth(manager))
    assert response.status_code == 201, response.text
    body = response.json()
    assert [
        (i["decision_id"], i["expected_outcome"], i["expected_action"], i["expected_labels"])
        for i in body["created"]
    ] == [(approved, "correct", None, None), (removed, "incorrect", "remove", ["hate_speech"])]
    assert all(i["source"] == "calibration" for i in body["created"])
    assert [(s["content_id"], s["reason"]) for s in body["skipped"]] == [
        ("c3", "no golden answer"),
        ("c4", "no decision"),
    ]
    again = (await client.post(url, headers=auth(manager))).json()
    assert again["created"] == []
    assert len(again["skipped"]) == 4
    assert_problem(
        await client.post(f"{GOLDEN}/from-calibration/{open_id}", headers=auth(manager)), 409
    )
    assert_problem(
        await client.post(f"{GOLDEN}/from-calibration/{uuid.uuid4()}", headers=auth(manager)),
        404,
    )


# ---------------------------------------------------------------------------- roles


async def test_roles(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    [decision_id] = await post_decisions(sender, sessionmaker, [decision_event(1)])
    body = {"decision_id": decision_id, "expected_outcome": "correct"}
    some_id = uuid.uuid4()
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", GOLDEN, body),
        ("POST", f"{GOLDEN}/from-calibration/{some_id}", None),
        ("GET", GOLDEN, None),
        ("DELETE", f"{GOLDEN}/{some_id}", None),
        ("GET", QUALITY, None),
    ]
    for method, url, json in requests:
        assert_problem(await client.request(method, url, json=json), 401)
    # Curating is for managers and admins only (an auditor must not probe which is golden).
    allowed: dict[str, set[int]] = {
        "qa_auditor": set(),
        "moderator": set(),
        "policy_poc": set(),
    }
    for role, ok in allowed.items():
        key = await make_key(sessionmaker, role, reviewer_id=f"{role}-1")
        for index, (method, url, json) in enumerate(requests):
            response = await client.request(method, url, json=json, headers=auth(key))
            if index in ok:
                assert response.status_code == 201, response.text
            else:
                assert_problem(response, 403)
    manager = await make_key(sessionmaker, "manager")
    assert (await client.get(GOLDEN, headers=auth(manager))).status_code == 200
    assert (await client.get(QUALITY, headers=auth(manager))).status_code == 200
    assert (await client.get(QUALITY, headers=auth(admin_key))).status_code == 200


async def test_an_expired_golden_claim_goes_back_to_its_auditor_only(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    set_golden_rate: Callable[[float], None],
) -> None:
    [decision_id] = await post_decisions(sender, sessionmaker, [decision_event(1)])
    await curate(client, admin_key, decision_id)
    first, second = await auditor(sessionmaker, "aud-1"), await auditor(sessionmaker, "aud-2")
    set_golden_rate(1.0)
    handed = (await claim(client, first)).json()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Audit)
            .where(Audit.id == uuid.UUID(handed["id"]))
            .values(lease_expires_at=utcnow() - timedelta(minutes=1))
        )
    set_golden_rate(0.0)
    assert (await claim(client, second)).status_code == 204
    set_golden_rate(1.0)
    again = await claim(client, first)
    assert again.json()["id"] == handed["id"]
    assert again.json()["lease_expires_at"] > handed["lease_expires_at"]
    # aud-2 gets its own golden audit of the same decision.
    theirs = await claim(client, second)
    assert theirs.json()["decision"]["id"] == decision_id
    assert theirs.json()["id"] != handed["id"]


async def test_a_golden_turn_skips_items_the_auditor_calibrated_or_curated(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    admin_key: str,
    set_golden_rate: Callable[[float], None],
) -> None:
    """No golden item from a calibration session the auditor took part in, nor one they
    curated themselves: they would know its expectation."""
    calibrated, curated, usable = await post_decisions(
        sender, sessionmaker, [decision_event(1), decision_event(2), decision_event(3)]
    )
    calibration_id = uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        session.add(
            CalibrationSession(
                id=calibration_id,
                title="taken by aud-1",
                market="DE",
                categories=["hate_speech"],
                participants=["aud-7", "aud-1"],
                status="closed",
                created_by_key_id="k",
            )
        )
        await session.flush()
        for decision_id, calibration, reviewer in (
            (calibrated, calibration_id, None),
            (curated, None, "aud-1"),
            (usable, None, "aud-2"),
        ):
            session.add(
                GoldenItem(
                    decision_id=decision_id,
                    market="DE",
                    expected_outcome="correct",
                    source="calibration" if calibration else "curated",
                    calibration_id=calibration,
                    created_by="k",
                    created_by_reviewer_id=reviewer,
                )
            )
    key = await auditor(sessionmaker, "aud-1")
    set_golden_rate(1.0)
    handed = await claim(client, key)
    assert handed.status_code == 200, handed.text
    assert handed.json()["decision"]["id"] == usable
    assert (await verdict(client, key, handed.json()["id"])).status_code == 200
    assert (await claim(client, key)).status_code == 204
