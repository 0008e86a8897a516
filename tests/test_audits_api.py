"""The auditor work queue and verdicts: claims, leases, blindness, verdicts, visibility, roles.

Audits are created here directly (ORM rows for decisions posted through the signed webhook),
independently of the sampling job.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, select, update

from shared.audits import service as audits_service
from shared.audits.service import claim_next_audit
from shared.core.auth import Principal, Role
from shared.models import (
    Audit,
    AuditLogEntry,
    Disagreement,
    DisagreementChange,
    Event,
    OutboxJob,
    Policy,
    Reviewer,
    Source,
    Verdict,
)
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.audits import Sessions, auditor, claim, drain, make_audits, set_profile, verdict
from tests.support.db import count_rows
from tests.support.problems import assert_problem

# ---------------------------------------------------------------------------- helpers


async def audit_row(sessionmaker: Sessions, audit_id: object) -> Audit:
    async with sessionmaker() as session:
        audit = await session.get(Audit, audit_id)
    assert audit is not None
    return audit


def assert_blind(body: dict[str, Any]) -> None:
    assert "moderator_id" not in body
    assert "moderator_id" not in body["decision"]
    assert "mod-" not in str(body)


# ---------------------------------------------------------------------------- claims


async def test_claim_hands_out_a_blind_leased_audit(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    event = decision_event(1, metadata={"url": "https://example.test/vid-1"})
    [audit_id] = await make_audits(sender, sessionmaker, [event])
    key = await auditor(sessionmaker)

    before = datetime.now(UTC)
    response = await claim(client, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(audit_id)
    assert body["status"] == "claimed"
    assert body["auditor_id"] == "aud-1"
    decision = body["decision"]
    assert decision["event_id"] == "evt-1"
    assert decision["content_id"] == "vid-1"
    assert decision["action"] == "remove"
    assert decision["policy_labels"] == ["hate_speech"]
    assert decision["metadata"] == {"url": "https://example.test/vid-1"}
    assert body["verdict"] is None
    assert body["error_type"] is None
    assert body["disagreement_id"] is None
    assert_blind(body)
    lease = datetime.fromisoformat(body["lease_expires_at"]) - datetime.fromisoformat(
        body["claimed_at"]
    )
    assert lease == timedelta(minutes=30)
    assert datetime.fromisoformat(body["claimed_at"]) >= before - timedelta(seconds=1)

    stored = await audit_row(sessionmaker, audit_id)
    assert (stored.status, stored.auditor_id) == ("claimed", "aud-1")
    async with sessionmaker() as session:
        entry = await session.scalar(
            select(AuditLogEntry).where(AuditLogEntry.action == "audit.claim")
        )
    assert entry is not None
    assert entry.entity_id == str(audit_id)
    assert entry.actor_reviewer_id == "aud-1"
    assert entry.before is not None
    assert entry.before["status"] == "pending"
    assert entry.after is not None
    assert entry.after["status"] == "claimed"

    # The auditor's own view stays blind until the verdict.
    seen = await client.get(f"/v1/audits/{audit_id}", headers=auth(key))
    assert seen.status_code == 200
    assert_blind(seen.json())
    # The claim's answer (built from the claim statement's row) is that same view.
    assert seen.json() == body
    listed = await client.get("/v1/audits", headers=auth(key))
    assert [item["id"] for item in listed.json()["items"]] == [str(audit_id)]
    assert_blind(listed.json()["items"][0])


async def test_claiming_again_returns_the_claim_held(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    first_id, second_id = await make_audits(
        sender, sessionmaker, [decision_event(1), decision_event(2)]
    )
    key = await auditor(sessionmaker)
    first = (await claim(client, key)).json()
    again = (await claim(client, key)).json()
    assert first["id"] == again["id"] == str(first_id)
    assert again["lease_expires_at"] == first["lease_expires_at"]
    assert (await audit_row(sessionmaker, second_id)).status == "pending"
    assert await count_rows(sessionmaker, AuditLogEntry, AuditLogEntry.action == "audit.claim") == 1
    # Once judged, the next claim is the next audit.
    assert (await verdict(client, key, first_id)).status_code == 200
    assert (await claim(client, key)).json()["id"] == str(second_id)


async def test_claims_follow_priority_markets_and_languages(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    events = [
        decision_event(1, market="DE", language="de"),
        decision_event(2, market="AT", language="de"),
        decision_event(3, market="DE", language="en"),
        decision_event(4, market="FR", language="fr"),
        decision_event(5, market="DE", language="de-AT"),
        decision_event(6, market="DE", language="de"),
    ]
    ids = await make_audits(sender, sessionmaker, events)
    key = await auditor(sessionmaker)  # DE, de
    handed = await drain(client, key)
    assert [item["id"] for item in handed] == [str(ids[0]), str(ids[5])]
    # The others are untouched.
    for index in (1, 2, 3, 4):
        assert (await audit_row(sessionmaker, ids[index])).status == "pending"

    # Language tags compare exactly: de-AT work goes to a profile that lists de-AT.
    regional = await auditor(sessionmaker, "aud-4", ["DE"], ["de-AT"])
    assert [item["id"] for item in await drain(client, regional)] == [str(ids[4])]
    # An auditor who reads English in DE and AT gets exactly the DE/en item; one whose key is
    # scoped to AT gets only AT work even though the profile has DE too.
    english = await auditor(sessionmaker, "aud-2", ["DE", "AT"], ["en"])
    assert [item["id"] for item in await drain(client, english)] == [str(ids[2])]
    scoped = await auditor(
        sessionmaker, "aud-3", ["DE", "AT", "FR"], ["de", "fr"], key_markets=["AT"]
    )
    assert [item["id"] for item in await drain(client, scoped)] == [str(ids[1])]


async def test_an_auditor_never_gets_a_decision_of_their_own(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    own, other = await make_audits(
        sender,
        sessionmaker,
        [decision_event(1, moderator_id="aud-1"), decision_event(2, moderator_id="mod-7")],
    )
    key = await auditor(sessionmaker, "aud-1")
    assert [item["id"] for item in await drain(client, key)] == [str(other)]
    assert (await audit_row(sessionmaker, own)).status == "pending"
    # Someone else may audit it.
    colleague = await auditor(sessionmaker, "aud-2")
    assert (await claim(client, colleague)).json()["id"] == str(own)


async def test_nothing_to_hand_out_is_204(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    key = await auditor(sessionmaker)
    empty = await claim(client, key)
    assert empty.status_code == 204
    assert empty.content == b""

    await make_audits(sender, sessionmaker, [decision_event(1)])
    unbound = await make_key(sessionmaker, "qa_auditor")
    assert (await claim(client, unbound)).status_code == 204
    no_profile = await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-new")
    assert (await claim(client, no_profile)).status_code == 204
    no_languages = await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-mute")
    await set_profile(sessionmaker, "aud-mute", ["DE"], [])
    assert (await claim(client, no_languages)).status_code == 204
    # Nothing was claimed by any of them; a proper profile gets the audit.
    assert await count_rows(sessionmaker, Audit, Audit.status == "pending") == 1
    assert (await claim(client, key)).status_code == 200


@pytest.mark.parametrize("candidates", [64, 1])
async def test_twenty_concurrent_claims_get_twenty_different_audits(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    monkeypatch: pytest.MonkeyPatch,
    candidates: int,
) -> None:
    # With one candidate per (market, language), most claims find their fast-path candidate
    # locked by another claim and fall back to the exhaustive query: both paths must hold.
    monkeypatch.setattr(audits_service, "CANDIDATES_PER_PAIR", candidates)
    ids = await make_audits(sender, sessionmaker, [decision_event(n) for n in range(25)])
    keys = [await auditor(sessionmaker, f"aud-{n}") for n in range(20)]
    responses = await asyncio.gather(*(claim(client, key) for key in keys))
    assert [response.status_code for response in responses] == [200] * 20
    claimed = [response.json()["id"] for response in responses]
    assert len(set(claimed)) == 20
    assert set(claimed) <= {str(audit_id) for audit_id in ids}
    async with sessionmaker() as session:
        holders = (
            await session.execute(
                select(Audit.id, Audit.auditor_id).where(Audit.status == "claimed")
            )
        ).all()
    assert len(holders) == 20
    assert len({holder for _, holder in holders}) == 20
    # The same auditor claiming concurrently still holds a single audit.
    again = await asyncio.gather(*(claim(client, keys[0]) for _ in range(5)))
    assert {response.json()["id"] for response in again} == {claimed[0]}


async def test_a_claim_that_waited_for_the_auditors_lock_returns_the_claim_made_meanwhile(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    # A claim reads the auditor's state in the statement that waits for their lock: a claim
    # of theirs committed meanwhile is not in that state. It must still hand out that one.
    await make_audits(sender, sessionmaker, [decision_event(n) for n in range(10)])
    key = await auditor(sessionmaker, "aud-1")
    async with sessionmaker() as session, session.begin():
        await session.execute(select(Reviewer.id).where(Reviewer.id == "aud-1").with_for_update())
        waiting = [asyncio.create_task(claim(client, key)) for _ in range(3)]
        await asyncio.sleep(1.0)  # the three are blocked on the lock by now
        first = await claim_next_audit(
            session,
            principal=Principal(
                key_id="test", role=Role.QA_AUDITOR, reviewer_id="aud-1", markets=None
            ),
            lease_minutes=30,
            golden_rate=0.0,
            golden_key=b"test",
        )
        assert first is not None
    responses = await asyncio.gather(*waiting)
    assert [response.status_code for response in responses] == [200] * 3
    assert {response.json()["id"] for response in responses} == {str(first.id)}
    assert await count_rows(sessionmaker, Audit, Audit.status == "claimed") == 1


async def test_an_expired_lease_returns_the_audit_to_the_queue(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    first = await auditor(sessionmaker, "aud-1")
    second = await auditor(sessionmaker, "aud-2")
    assert (await claim(client, first)).status_code == 200
    assert (await claim(client, second)).status_code == 204

    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Audit)
            .where(Audit.id == audit_id)
            .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    taken = await claim(client, second)
    assert taken.status_code == 200
    assert taken.json()["id"] == str(audit_id)
    assert taken.json()["auditor_id"] == "aud-2"

    # The first auditor lost it: no verdict, no view, and nothing else to claim.
    late = await verdict(client, first, audit_id, outcome="correct")
    assert_problem(late, 409)
    assert (await client.get(f"/v1/audits/{audit_id}", headers=auth(first))).status_code == 404
    assert (await claim(client, first)).status_code == 204
    assert await count_rows(sessionmaker, Verdict) == 0
    assert (await verdict(client, second, audit_id)).status_code == 200


async def test_an_expired_lease_nobody_took_still_accepts_the_holders_verdict(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    key = await auditor(sessionmaker)
    await claim(client, key)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Audit)
            .where(Audit.id == audit_id)
            .values(lease_expires_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    response = await verdict(client, key, audit_id)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"


# ---------------------------------------------------------------------------- verdicts


async def test_correct_verdict_completes_and_reveals_the_moderator(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Policy).where(Policy.code == "hate_speech").values(version=3))
    key = await auditor(sessionmaker)
    await claim(client, key)
    response = await verdict(client, key, audit_id, outcome="correct", comment="clear case")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["moderator_id"] == "mod-42"
    assert body["decision"]["moderator_id"] == "mod-42"
    assert body["verdict"]["outcome"] == "correct"
    assert body["verdict"]["effective_outcome"] == "correct"
    assert body["verdict"]["comment"] == "clear case"
    assert body["verdict"]["policy_versions"] == {"hate_speech": 3}
    assert body["verdict"]["expected_action"] is None
    assert body["error_type"] is None
    assert body["disagreement_id"] is None
    assert body["completed_at"] is not None
    assert body["lease_expires_at"] is None

    async with sessionmaker() as session:
        stored = await session.scalar(select(Verdict).where(Verdict.audit_id == audit_id))
    assert stored is not None
    assert (stored.auditor_id, stored.moderator_id, stored.market) == ("aud-1", "mod-42", "DE")
    assert await count_rows(sessionmaker, Disagreement) == 0
    assert await count_rows(sessionmaker, Event) == 0
    assert (
        await count_rows(sessionmaker, AuditLogEntry, AuditLogEntry.action == "audit.verdict") == 1
    )
    # The auditor's own view is no longer blind.
    seen = (await client.get(f"/v1/audits/{audit_id}", headers=auth(key))).json()
    assert seen["moderator_id"] == "mod-42"
    assert seen["verdict"]["id"] == body["verdict"]["id"]


async def test_incorrect_verdict_opens_a_disagreement_and_a_correction(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    key = await auditor(sessionmaker)
    await claim(client, key)
    before = datetime.now(UTC)
    response = await verdict(
        client,
        key,
        audit_id,
        outcome="incorrect",
        expected_action="approve",
        severity="major",
        comment="satire, not hate speech",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error_type"] == "over_enforcement"
    assert body["verdict"]["error_type"] == "over_enforcement"
    assert body["verdict"]["expected_labels"] == []
    assert body["verdict"]["severity"] == "major"
    disagreement_id = uuid.UUID(body["disagreement_id"])

    async with sessionmaker() as session:
        disagreement = await session.get(Disagreement, disagreement_id)
        changes = list(await session.scalars(select(DisagreementChange)))
        events = {event.type: event for event in await session.scalars(select(Event))}
        source_id = await session.scalar(select(Source.id).where(Source.name == "acme"))
        jobs = list(await session.scalars(select(OutboxJob.function)))
    assert disagreement is not None
    assert disagreement.status == "open"
    assert (disagreement.moderator_id, disagreement.auditor_id) == ("mod-42", "aud-1")
    assert str(disagreement.audit_id) == body["id"]
    assert str(disagreement.verdict_id) == body["verdict"]["id"]
    window = disagreement.dispute_deadline - before
    assert timedelta(hours=72) - timedelta(seconds=5) < window <= timedelta(hours=72, seconds=5)
    assert [(c.from_status, c.to_status, c.actor) for c in changes] == [(None, "open", "aud-1")]

    opened = events["disagreement.opened"]
    assert opened.market == "DE"
    assert opened.source_id is None
    assert opened.data["id"] == str(disagreement_id)
    assert opened.data["moderator_id"] == "mod-42"
    corrected = events["decision.corrected"]
    assert corrected.source_id == source_id  # only the source's own channel gets it
    assert corrected.data["event_id"] == "evt-1"
    assert corrected.data["content_id"] == "vid-1"
    assert corrected.data["original_action"] == "remove"
    assert corrected.data["corrected_action"] == "approve"
    assert corrected.data["error_type"] == "over_enforcement"
    assert corrected.data["verdict_id"] == body["verdict"]["id"]
    assert jobs.count("fan_out_event") == 2
    assert (
        await count_rows(sessionmaker, AuditLogEntry, AuditLogEntry.action == "disagreement.open")
        == 1
    )


@pytest.mark.parametrize(
    "judgment",
    [
        {"outcome": "correct", "comment": "clear case"},
        {"outcome": "incorrect", "expected_action": "approve", "severity": "major"},
    ],
)
async def test_a_verdicts_answer_is_the_audit_as_read_back(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    judgment: dict[str, Any],
) -> None:
    # The verdict's answer is built from the row it locked, not read back: it must say what
    # reading the judged audit says (status, lease, moderator, verdict, disagreement).
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    key = await auditor(sessionmaker)
    await claim(client, key)
    response = await verdict(client, key, audit_id, **judgment)
    assert response.status_code == 200, response.text
    seen = await client.get(f"/v1/audits/{audit_id}", headers=auth(key))
    assert seen.status_code == 200
    assert response.json() == seen.json()
    assert (response.json()["disagreement_id"] is None) == (judgment["outcome"] == "correct")


async def test_driver_statements_commit_and_roll_back_with_the_session(
    sessionmaker: Sessions,
) -> None:
    # The claim and verdict statements run on the asyncpg connection, past SQLAlchemy
    # (``_DriverStatement``): they must still be part of the request's transaction, whether
    # they come first in it (SQLAlchemy runs them, beginning it) or after another statement.
    async with sessionmaker() as session, session.begin():
        session.add(Policy(code="driver_probe", version=1))
    renumber = audits_service._DriverStatement(
        update(Policy)
        .where(Policy.code == "driver_probe")
        .values(version=bindparam("version"))
        .returning(Policy.version)
    )
    stored = select(Policy.version).where(Policy.code == "driver_probe")
    for first in (True, False):
        async with sessionmaker() as session:
            if not first:
                await session.execute(select(1))
            row = await renumber.fetchrow(session, {"version": 5})
            assert row is not None
            assert row["version"] == 5
            await session.rollback()
        async with sessionmaker() as session:
            assert await session.scalar(stored) == 1
            if not first:
                await session.execute(select(1))
            await renumber.execute(session, {"version": 7})
            await session.commit()
        async with sessionmaker() as session, session.begin():
            assert await session.scalar(stored) == 7
            await session.execute(
                update(Policy).where(Policy.code == "driver_probe").values(version=1)
            )


async def test_a_verdict_queues_its_jobs_with_its_rows(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    # A verdict writes its rows and queues its jobs in a few statements (the rollup job and
    # the disagreement's events and fan-out jobs within them): each job is there once, for
    # the rows it is about, under the request's id.
    ids = await make_audits(sender, sessionmaker, [decision_event(1), decision_event(2)])
    key = await auditor(sessionmaker)
    judged = []
    for outcome in ("correct", "incorrect"):
        audit_id = (await claim(client, key)).json()["id"]
        body = {"outcome": outcome}
        if outcome == "incorrect":
            body |= {"expected_action": "approve", "severity": "minor"}
        response = await client.post(
            f"/v1/audits/{audit_id}/verdict",
            json=body,
            headers={**auth(key), "X-Request-ID": f"req-{outcome}"},
        )
        assert response.status_code == 200, response.text
        judged.append(response.json())
    assert {item["id"] for item in judged} == {str(audit_id) for audit_id in ids}

    async with sessionmaker() as session:
        jobs = (await session.execute(select(OutboxJob))).scalars().all()
        events = (await session.execute(select(Event))).scalars().all()
        entry = await session.scalar(
            select(AuditLogEntry).where(AuditLogEntry.action == "disagreement.open")
        )
    rollups = [job for job in jobs if job.function == "apply_quality_rollups"]
    assert sorted(job.request_id or "" for job in rollups) == ["req-correct", "req-incorrect"]
    fan_outs = [job for job in jobs if job.function == "fan_out_event"]
    assert sorted(job.payload["event_id"] for job in fan_outs) == sorted(
        str(event.id) for event in events
    )
    assert {job.request_id for job in fan_outs} == {"req-incorrect"}
    assert {event.request_id for event in events} == {"req-incorrect"}
    assert entry is not None
    assert entry.request_id == "req-incorrect"
    assert entry.entity_id == judged[1]["disagreement_id"]
    assert entry.before is None
    assert entry.after is not None
    assert entry.after["status"] == "open"
    assert entry.after["verdict_id"] == judged[1]["verdict"]["id"]
    assert (entry.actor_role, entry.actor_reviewer_id) == ("qa_auditor", "aud-1")


async def test_error_types_are_derived_through_the_api(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    cases: list[tuple[tuple[str, list[str]], dict[str, Any], str, list[str]]] = [
        # (moderator action, labels), verdict body, expected error type and labels
        (("approve", []), {"expected_action": "remove", "expected_labels": ["hate_speech"]},
         "missed_violation", ["hate_speech"]),
        (("remove", ["hate_speech"]), {"expected_action": "approve"}, "over_enforcement", []),
        (("remove", ["hate_speech"]), {"expected_action": "restrict"}, "wrong_action",
         ["hate_speech"]),
        (("remove", ["hate_speech"]),
         {"expected_action": "remove", "expected_labels": ["harassment", "harassment"]},
         "wrong_policy", ["harassment"]),
        (("approve", []), {"expected_action": "escalate"}, "wrong_action", []),
    ]  # fmt: skip
    events = [
        decision_event(n, action=action, policy_labels=labels)
        for n, ((action, labels), *_) in enumerate(cases)
    ]
    ids = await make_audits(sender, sessionmaker, events)
    key = await auditor(sessionmaker)
    for audit_id, (_, body, error_type, labels) in zip(ids, cases, strict=True):
        claimed = await claim(client, key)
        assert claimed.json()["id"] == str(audit_id)
        response = await verdict(
            client, key, audit_id, outcome="incorrect", severity="minor", **body
        )
        assert response.status_code == 200, response.text
        assert response.json()["error_type"] == error_type
        assert response.json()["verdict"]["expected_labels"] == labels
    async with sessionmaker() as session:
        versions = await session.scalar(
            select(Verdict.policy_versions).where(Verdict.audit_id == ids[3])
        )
        registered = await session.get(Policy, "harassment")
    assert versions == {"hate_speech": 1, "harassment": 1}
    assert registered is not None  # first reference registers the expected policy
    assert await count_rows(sessionmaker, Disagreement) == len(cases)


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "incorrect", "severity": "major"},  # no expected action
        {"outcome": "incorrect", "expected_action": "approve"},  # no severity
        {"outcome": "incorrect", "expected_action": "approve", "severity": "huge"},
        {"outcome": "incorrect", "expected_action": "delete", "severity": "minor"},
        {"outcome": "correct", "expected_action": "approve"},
        {"outcome": "correct", "expected_labels": []},
        {"outcome": "correct", "severity": "minor"},
        {"outcome": "fine"},
        {},
        {"outcome": "correct", "colour": "blue"},
        {"outcome": "incorrect", "expected_action": "remove", "expected_labels": ["Bad Code"],
         "severity": "minor"},
        # The moderator's own decision (remove, hate_speech) is not an error.
        {"outcome": "incorrect", "expected_action": "remove", "severity": "minor"},
        {"outcome": "incorrect", "expected_action": "remove", "expected_labels": ["hate_speech"],
         "severity": "minor"},
    ],
)  # fmt: skip
async def test_bad_verdicts_are_422_and_change_nothing(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, body: dict[str, Any]
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    key = await auditor(sessionmaker)
    await claim(client, key)
    response = await client.post(f"/v1/audits/{audit_id}/verdict", json=body, headers=auth(key))
    problem = assert_problem(response, 422)
    assert problem["errors"]
    assert (await audit_row(sessionmaker, audit_id)).status == "claimed"
    assert await count_rows(sessionmaker, Verdict) == 0
    assert (
        await count_rows(sessionmaker, AuditLogEntry, AuditLogEntry.action == "audit.verdict") == 0
    )


async def test_verdicts_only_by_the_holder_and_only_once(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    held, unclaimed = await make_audits(
        sender, sessionmaker, [decision_event(1), decision_event(2)]
    )
    key = await auditor(sessionmaker, "aud-1")
    other = await auditor(sessionmaker, "aud-2")
    await claim(client, key)
    incorrect = {"outcome": "incorrect", "expected_action": "approve", "severity": "minor"}

    assert_problem(await verdict(client, other, held, **incorrect), 409)
    assert_problem(await verdict(client, key, unclaimed), 409)
    assert_problem(await verdict(client, key, uuid.uuid4()), 404)
    unbound = await make_key(sessionmaker, "qa_auditor")
    assert_problem(await verdict(client, unbound, held), 409)
    assert await count_rows(sessionmaker, Verdict) == 0
    assert (await audit_row(sessionmaker, unclaimed)).status == "pending"

    assert (await verdict(client, key, held, **incorrect)).status_code == 200
    again = await verdict(client, key, held)
    assert "already" in str(assert_problem(again, 409)["detail"])
    assert await count_rows(sessionmaker, Verdict) == 1
    assert await count_rows(sessionmaker, Disagreement) == 1
    async with sessionmaker() as session:
        outcome = await session.scalar(select(Verdict.outcome))
    assert outcome == "incorrect"


async def test_golden_items_open_no_disagreement(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)], is_golden=True)
    key = await auditor(sessionmaker)
    await claim(client, key)
    response = await verdict(
        client, key, audit_id, outcome="incorrect", expected_action="approve", severity="minor"
    )
    assert response.status_code == 200, response.text
    assert response.json()["error_type"] == "over_enforcement"
    assert response.json()["disagreement_id"] is None
    assert await count_rows(sessionmaker, Disagreement) == 0
    assert await count_rows(sessionmaker, Event) == 0


# ---------------------------------------------------------------------------- reading


async def _judged_and_pending(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> list[uuid.UUID]:
    """mod-1's audit judged by aud-1, mod-1's audit held by aud-1, mod-2's AT audit pending."""
    ids = await make_audits(
        sender,
        sessionmaker,
        [
            decision_event(1, moderator_id="mod-1", decided_at="2026-11-20T10:00:00Z"),
            decision_event(2, moderator_id="mod-1", decided_at="2026-11-22T10:00:00Z"),
            decision_event(3, moderator_id="mod-2", market="AT", queue="at-video"),
        ],
    )
    key = await auditor(sessionmaker, "aud-1")
    await claim(client, key)
    await verdict(client, key, ids[0])
    await claim(client, key)
    return ids


async def test_moderators_see_only_their_own_audits(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    ids = await _judged_and_pending(client, sender, sessionmaker)
    mod1 = await make_key(sessionmaker, "moderator", reviewer_id="mod-1")
    listed = (await client.get("/v1/audits", headers=auth(mod1))).json()["items"]
    assert {item["id"] for item in listed} == {str(ids[0]), str(ids[1])}
    assert {item["moderator_id"] for item in listed} == {"mod-1"}
    own = await client.get("/v1/audits?moderator_id=mod-1", headers=auth(mod1))
    assert len(own.json()["items"]) == 2
    assert_problem(await client.get("/v1/audits?moderator_id=mod-2", headers=auth(mod1)), 403)
    assert (await client.get(f"/v1/audits/{ids[2]}", headers=auth(mod1))).status_code == 404
    judged = (await client.get(f"/v1/audits/{ids[0]}", headers=auth(mod1))).json()
    assert judged["verdict"]["outcome"] == "correct"


async def test_auditors_see_only_their_claims_blind_until_judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions
) -> None:
    ids = await _judged_and_pending(client, sender, sessionmaker)
    key = await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1")
    items = {
        item["id"]: item
        for item in (await client.get("/v1/audits", headers=auth(key))).json()["items"]
    }
    assert set(items) == {str(ids[0]), str(ids[1])}
    assert items[str(ids[0])]["moderator_id"] == "mod-1"
    assert_blind(items[str(ids[1])])
    # A moderator filter matches judged audits only: it must not unmask the blind one.
    filtered = await client.get("/v1/audits?moderator_id=mod-1", headers=auth(key))
    assert [item["id"] for item in filtered.json()["items"]] == [str(ids[0])]
    assert_problem(await client.get("/v1/audits?auditor_id=aud-2", headers=auth(key)), 403)
    stranger = await auditor(sessionmaker, "aud-9")
    assert (await client.get("/v1/audits", headers=auth(stranger))).json()["items"] == []
    assert (await client.get(f"/v1/audits/{ids[0]}", headers=auth(stranger))).status_code == 404


async def test_managers_see_all_with_filters_paging_and_market_scope(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, admin_key: str
) -> None:
    ids = await _judged_and_pending(client, sender, sessionmaker)
    manager = await make_key(sessionmaker, "manager")

    async def listed(key: str, **params: str) -> list[str]:
        response = await client.get("/v1/audits", params=params, headers=auth(key))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    everything = await listed(manager)
    assert set(everything) == {str(audit_id) for audit_id in ids}
    # Newest audit day first.
    assert everything[-1] == str(ids[0])
    detail = (await client.get(f"/v1/audits/{ids[1]}", headers=auth(manager))).json()
    assert detail["moderator_id"] == "mod-1"  # not blind for managers
    assert await listed(manager, status="completed") == [str(ids[0])]
    assert await listed(manager, status="pending") == [str(ids[2])]
    assert set(await listed(manager, moderator_id="mod-1")) == {str(ids[0]), str(ids[1])}
    assert set(await listed(manager, auditor_id="aud-1")) == {str(ids[0]), str(ids[1])}
    assert await listed(manager, market="AT") == [str(ids[2])]
    assert await listed(manager, queue="at-video") == [str(ids[2])]
    assert await listed(manager, **{"from": "2026-11-21", "to": "2026-11-22"}) == [str(ids[1])]
    assert await listed(manager, to="2026-11-20") == [str(ids[0])]
    assert set(await listed(await make_key(sessionmaker, "policy_poc"))) == set(everything)
    assert set(await listed(admin_key)) == set(everything)

    scoped = await make_key(sessionmaker, "manager", markets=["AT"])
    assert await listed(scoped) == [str(ids[2])]
    assert (await client.get(f"/v1/audits/{ids[0]}", headers=auth(scoped))).status_code == 404

    pages: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/audits", params=params, headers=auth(manager))).json()
        pages += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == everything

    for bad in ("status=done", "from=yesterday", "limit=0", "colour=blue", "cursor=nope"):
        response = await client.get(f"/v1/audits?{bad}", headers=auth(manager))
        assert response.status_code in (400, 422), bad


# ---------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/audits/claim"),
        ("POST", f"/v1/audits/{uuid.UUID(int=1)}/verdict"),
        ("GET", "/v1/audits"),
        ("GET", f"/v1/audits/{uuid.UUID(int=1)}"),
    ],
)
async def test_audit_endpoints_need_a_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_problem(await client.request(method, path, json={"outcome": "correct"}), 401)
    bad = await client.request(method, path, headers=auth("plk_nope"), json={"outcome": "correct"})
    assert_problem(bad, 401)


@pytest.mark.parametrize("role", ["admin", "manager", "policy_poc", "moderator"])
async def test_only_qa_auditors_claim_and_judge(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessions, role: str
) -> None:
    [audit_id] = await make_audits(sender, sessionmaker, [decision_event(1)])
    holder = await auditor(sessionmaker)
    await claim(client, holder)
    key = await make_key(sessionmaker, role, reviewer_id="aud-1")  # even bound to the holder
    assert_problem(await claim(client, key), 403)
    assert_problem(await verdict(client, key, audit_id), 403)
    assert await count_rows(sessionmaker, Verdict) == 0
    # Every role may read (within its visibility).
    assert (await client.get("/v1/audits", headers=auth(key))).status_code == 200
