"""Disagreements over real HTTP: disputes by the moderator, arbitration, history, scoping.

The verdict endpoint (which opens disagreements) is built elsewhere; these tests create the
rows it would (a decision posted through the signed webhook, then its Audit, Verdict,
Disagreement and first DisagreementChange) with the factories below.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from shared.models import (
    AuditLogEntry,
)
from shared.models.base import utcnow
from tests.conftest import SignedSender, auth, make_key
from tests.support.disagreements import (
    Case,
    Sessionmaker,
    new_case,
    set_status,
    state_of,
)
from tests.support.problems import assert_problem

# --- factories: the rows the verdict endpoint creates -------------------------------------


async def audit_log(sessionmaker: Sessionmaker) -> list[AuditLogEntry]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(AuditLogEntry)
                .where(AuditLogEntry.entity_type.in_(["disagreement", "verdict"]))
                .order_by(AuditLogEntry.id)
            )
        )


def dispute_url(case: Case) -> str:
    return f"/v1/disagreements/{case.disagreement_id}/dispute"


def resolve_url(case: Case) -> str:
    return f"/v1/disagreements/{case.disagreement_id}/resolve"


# --- disputes -------------------------------------------------------------------------------


async def test_moderator_disputes_own_disagreement_within_the_window(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")

    response = await client.post(
        dispute_url(case), json={"reason": "  The clip is news reporting.  "}, headers=auth(key)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(case.disagreement_id)
    assert body["status"] == "disputed"
    assert body["dispute_reason"] == "The clip is news reporting."
    assert body["disputed_at"] is not None
    assert (body["verdict_outcome"], body["effective_outcome"]) == ("incorrect", "incorrect")
    assert body["decision_id"] == case.decision_id
    assert [(c["from_status"], c["to_status"]) for c in body["history"]] == [
        (None, "open"),
        ("open", "disputed"),
    ]
    assert body["history"][1]["actor"] == "mod-42"
    assert body["history"][1]["note"] == "The clip is news reporting."
    disagreement, _, changes = await state_of(sessionmaker, case)
    assert (disagreement.status, changes) == ("disputed", 2)
    [entry] = await audit_log(sessionmaker)
    assert entry.action == "disagreement.disputed"
    assert entry.entity_id == str(case.disagreement_id)
    assert (entry.actor_role, entry.actor_reviewer_id) == ("moderator", "mod-42")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["status"], entry.after["status"]) == ("open", "disputed")


async def test_dispute_by_anyone_but_the_moderator_is_refused_and_changes_nothing(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    other_moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-7")
    unbound_moderator = await make_key(sessionmaker, "moderator")
    payload = {"reason": "not mine, but still"}

    for key in (other_moderator, unbound_moderator):
        assert_problem(await client.post(dispute_url(case), json=payload, headers=auth(key)), 403)
    for role in ("admin", "manager", "policy_poc", "qa_auditor"):
        # Even a key bound to the same reviewer: disputing is the moderator role's act.
        key = await make_key(sessionmaker, role, reviewer_id="mod-42")
        assert_problem(await client.post(dispute_url(case), json=payload, headers=auth(key)), 403)
    assert_problem(await client.post(dispute_url(case), json=payload), 401)
    assert_problem(
        await client.post(dispute_url(case), json=payload, headers=auth("plk_not-a-key")), 401
    )

    disagreement, _, changes = await state_of(sessionmaker, case)
    assert (disagreement.status, disagreement.dispute_reason, changes) == ("open", None, 1)
    assert await audit_log(sessionmaker) == []


async def test_market_scoped_moderator_key_cannot_dispute_outside_its_markets(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42", markets=["AT"])
    response = await client.post(dispute_url(case), json={"reason": "x"}, headers=auth(key))
    assert_problem(response, 404)  # another market's disagreement is not revealed to exist
    assert (await state_of(sessionmaker, case))[0].status == "open"


async def test_disputing_twice_is_a_conflict(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    first = await client.post(dispute_url(case), json={"reason": "first"}, headers=auth(key))
    assert first.status_code == 200
    second = await client.post(dispute_url(case), json={"reason": "second"}, headers=auth(key))
    body = assert_problem(second, 409)
    assert "disputed already" in body["detail"]
    disagreement, _, changes = await state_of(sessionmaker, case)
    assert (disagreement.dispute_reason, changes) == ("first", 2)


async def test_concurrent_disputes_succeed_once(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    responses = await asyncio.gather(
        *(
            client.post(dispute_url(case), json={"reason": f"try {n}"}, headers=auth(key))
            for n in range(6)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409, 409]
    assert (await state_of(sessionmaker, case))[2] == 2


async def test_dispute_after_the_deadline_is_refused_as_window_closed(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    late = await new_case(sender, sessionmaker, 1, deadline=-timedelta(seconds=1))
    closed = await new_case(sender, sessionmaker, 2)
    await set_status(sessionmaker, closed, "closed")
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")

    for case, status in ((late, "open"), (closed, "closed")):
        response = await client.post(dispute_url(case), json={"reason": "x"}, headers=auth(key))
        body = assert_problem(response, 409)
        assert body["type"].endswith("/dispute-window-closed")
        assert body["title"] == "Dispute window closed"
        assert "dispute window closed" in body["detail"]
        assert (await state_of(sessionmaker, case))[0].status == status
    assert await audit_log(sessionmaker) == []


async def test_dispute_of_a_resolved_disagreement_is_a_conflict(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    await set_status(sessionmaker, case, "disputed")
    await set_status(sessionmaker, case, "upheld")
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    response = await client.post(dispute_url(case), json={"reason": "x"}, headers=auth(key))
    assert "resolved already" in assert_problem(response, 409)["detail"]


async def test_dispute_bad_input(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    key = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    for payload in ({}, {"reason": "   "}, {"reason": "x" * 4001}, {"reason": "x", "extra": 1}):
        response = await client.post(dispute_url(case), json=payload, headers=auth(key))
        assert_problem(response, 422)
    missing = await client.post(
        f"/v1/disagreements/{uuid.uuid4()}/dispute", json={"reason": "x"}, headers=auth(key)
    )
    assert_problem(missing, 404)
    not_an_id = await client.post(
        "/v1/disagreements/nope/dispute", json={"reason": "x"}, headers=auth(key)
    )
    assert_problem(not_an_id, 422)
    assert (await state_of(sessionmaker, case))[0].status == "open"


# --- arbitration --------------------------------------------------------------------------


async def test_overturning_makes_the_verdict_count_correct_with_history_kept(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    poc = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-1")
    disputed = await client.post(
        dispute_url(case), json={"reason": "satire"}, headers=auth(moderator)
    )
    assert disputed.status_code == 200

    response = await client.post(
        resolve_url(case),
        json={"outcome": "overturned", "note": "Satire exception applies."},
        headers=auth(poc),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "overturned"
    assert (body["verdict_outcome"], body["effective_outcome"]) == ("incorrect", "correct")
    assert (body["resolved_by"], body["resolution_note"]) == ("poc-1", "Satire exception applies.")
    assert body["resolved_at"] is not None
    assert [(c["from_status"], c["to_status"], c["actor"]) for c in body["history"]] == [
        (None, "open", "aud-1"),
        ("open", "disputed", "mod-42"),
        ("disputed", "overturned", "poc-1"),
    ]
    disagreement, verdict, changes = await state_of(sessionmaker, case)
    assert (disagreement.status, changes) == ("overturned", 3)
    # The auditor's judgment is kept; what every report counts is the effective outcome.
    assert (verdict.outcome, verdict.effective_outcome) == ("incorrect", "correct")
    entries = await audit_log(sessionmaker)
    assert [(e.action, e.entity_type) for e in entries] == [
        ("disagreement.disputed", "disagreement"),
        ("disagreement.overturned", "disagreement"),
        ("verdict.overturned", "verdict"),
    ]
    assert entries[2].entity_id == str(case.verdict_id)
    assert entries[2].before == {"outcome": "incorrect", "effective_outcome": "incorrect"}
    assert entries[2].after == {"outcome": "incorrect", "effective_outcome": "correct"}
    assert entries[1].actor_reviewer_id == "poc-1"

    fetched = await client.get(f"/v1/disagreements/{case.disagreement_id}", headers=auth(poc))
    assert fetched.json() == body


async def test_upholding_keeps_the_verdict_incorrect(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    await set_status(sessionmaker, case, "disputed")
    manager = await make_key(sessionmaker, "manager")  # not bound to any reviewer
    response = await client.post(
        resolve_url(case),
        json={"outcome": "upheld", "note": "Policy is clear."},
        headers=auth(manager),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "upheld"
    assert body["resolved_by"].startswith("api-key:")
    assert body["effective_outcome"] == "incorrect"
    disagreement, verdict, _ = await state_of(sessionmaker, case)
    assert disagreement.status == "upheld"
    assert (verdict.outcome, verdict.effective_outcome) == ("incorrect", "incorrect")
    assert [e.action for e in await audit_log(sessionmaker)] == ["disagreement.upheld"]


@pytest.mark.parametrize("role", ["policy_poc", "manager"])
async def test_the_auditor_of_the_case_may_not_arbitrate_it(
    role: str, sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker, auditor_id="aud-9")
    await set_status(sessionmaker, case, "disputed")
    auditor = await make_key(sessionmaker, role, reviewer_id="aud-9")
    response = await client.post(
        resolve_url(case), json={"outcome": "upheld", "note": "I was right"}, headers=auth(auditor)
    )
    assert "auditor" in assert_problem(response, 403)["detail"]
    # Nor the moderator, should they hold an arbiter's key.
    moderator = await make_key(sessionmaker, role, reviewer_id="mod-42")
    response = await client.post(
        resolve_url(case), json={"outcome": "overturned", "note": "mine"}, headers=auth(moderator)
    )
    assert_problem(response, 403)
    disagreement, verdict, changes = await state_of(sessionmaker, case)
    assert (disagreement.status, verdict.effective_outcome, changes) == (
        "disputed",
        "incorrect",
        2,
    )
    assert await audit_log(sessionmaker) == []


async def test_only_a_disputed_disagreement_can_be_resolved(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    still_open = await new_case(sender, sessionmaker, 1)
    closed = await new_case(sender, sessionmaker, 2)
    await set_status(sessionmaker, closed, "closed")
    resolved = await new_case(sender, sessionmaker, 3)
    await set_status(sessionmaker, resolved, "disputed")
    poc = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-1")
    first = await client.post(
        resolve_url(resolved), json={"outcome": "upheld", "note": "stands"}, headers=auth(poc)
    )
    assert first.status_code == 200

    expectations = {
        still_open: "has not been disputed",
        closed: "closed undisputed",
        resolved: "resolved already (upheld)",
    }
    for case, detail in expectations.items():
        response = await client.post(
            resolve_url(case), json={"outcome": "overturned", "note": "n"}, headers=auth(poc)
        )
        assert detail in assert_problem(response, 409)["detail"]
    for case, status in ((still_open, "open"), (closed, "closed"), (resolved, "upheld")):
        disagreement, verdict, _ = await state_of(sessionmaker, case)
        assert (disagreement.status, verdict.effective_outcome) == (status, "incorrect")


async def test_resolve_roles_and_bad_input(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    await set_status(sessionmaker, case, "disputed")
    payload = {"outcome": "overturned", "note": "n"}
    for role, reviewer in (("admin", None), ("qa_auditor", "aud-2"), ("moderator", "mod-42")):
        key = await make_key(sessionmaker, role, reviewer_id=reviewer)
        assert_problem(await client.post(resolve_url(case), json=payload, headers=auth(key)), 403)
    assert_problem(await client.post(resolve_url(case), json=payload), 401)
    scoped = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-fr", markets=["FR"])
    assert_problem(await client.post(resolve_url(case), json=payload, headers=auth(scoped)), 404)
    poc = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-1")
    for bad in (
        {"outcome": "correct", "note": "n"},
        {"outcome": "upheld"},
        {"outcome": "upheld", "note": " "},
    ):
        assert_problem(await client.post(resolve_url(case), json=bad, headers=auth(poc)), 422)
    disagreement, verdict, _ = await state_of(sessionmaker, case)
    assert (disagreement.status, verdict.effective_outcome) == ("disputed", "incorrect")
    assert await audit_log(sessionmaker) == []


# --- reading ----------------------------------------------------------------------------


async def test_listing_is_scoped_by_moderator_and_market(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    mine = await new_case(sender, sessionmaker, 1)
    other = await new_case(sender, sessionmaker, 2, fields={"moderator_id": "mod-7"})
    austrian = await new_case(
        sender,
        sessionmaker,
        3,
        fields={"market": "AT", "queue": "at-video", "moderator_id": "mod-7"},
    )
    await set_status(sessionmaker, other, "disputed")

    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    moderator = auth(await make_key(sessionmaker, "moderator", reviewer_id="mod-42"))
    assert ids(await client.get("/v1/disagreements", headers=moderator)) == {
        str(mine.disagreement_id)
    }
    own = await client.get("/v1/disagreements?moderator_id=mod-42", headers=moderator)
    assert ids(own) == {str(mine.disagreement_id)}
    assert_problem(await client.get("/v1/disagreements?moderator_id=mod-7", headers=moderator), 403)

    everyone = {str(c.disagreement_id) for c in (mine, other, austrian)}
    for role in ("admin", "manager", "policy_poc"):
        key = auth(await make_key(sessionmaker, role))
        assert ids(await client.get("/v1/disagreements", headers=key)) == everyone
    manager = auth(await make_key(sessionmaker, "manager"))
    disputed = await client.get("/v1/disagreements?status=disputed", headers=manager)
    assert ids(disputed) == {str(other.disagreement_id)}
    by_moderator = await client.get(
        "/v1/disagreements?moderator_id=mod-7&market=de", headers=manager
    )
    assert ids(by_moderator) == {str(other.disagreement_id)}

    austria_poc = auth(await make_key(sessionmaker, "policy_poc", markets=["AT"]))
    listed = await client.get("/v1/disagreements", headers=austria_poc)
    assert ids(listed) == {str(austrian.disagreement_id)}
    assert listed.json()["items"][0]["queue"] == "at-video"
    assert_problem(await client.get("/v1/disagreements?market=DE", headers=austria_poc), 403)

    auditor = auth(await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1"))
    assert_problem(await client.get("/v1/disagreements", headers=auditor), 403)
    assert_problem(await client.get("/v1/disagreements"), 401)
    assert_problem(await client.get("/v1/disagreements?status=pending", headers=manager), 422)
    assert_problem(await client.get("/v1/disagreements?sort=id", headers=manager), 422)


async def test_listing_pages_newest_first(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    start = utcnow() - timedelta(hours=1)
    cases = [
        await new_case(sender, sessionmaker, n, created_at=start + timedelta(minutes=n))
        for n in range(5)
    ]
    manager = auth(await make_key(sessionmaker, "manager"))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = "/v1/disagreements?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=manager)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(case.disagreement_id) for case in reversed(cases)]
    assert_problem(await client.get("/v1/disagreements?cursor=garbage", headers=manager), 400)


async def test_reading_one_disagreement(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    url = f"/v1/disagreements/{case.disagreement_id}"
    own = await client.get(
        url, headers=auth(await make_key(sessionmaker, "moderator", reviewer_id="mod-42"))
    )
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["status"] == "open"
    assert (body["moderator_id"], body["auditor_id"], body["market"]) == ("mod-42", "aud-1", "DE")
    assert (body["error_type"], body["severity"], body["expected_action"]) == (
        "over_enforcement",
        "major",
        "approve",
    )
    assert [(c["from_status"], c["to_status"]) for c in body["history"]] == [(None, "open")]

    other = auth(await make_key(sessionmaker, "moderator", reviewer_id="mod-7"))
    assert_problem(await client.get(url, headers=other), 403)
    french = auth(await make_key(sessionmaker, "manager", markets=["FR"]))
    assert_problem(await client.get(url, headers=french), 404)
    auditor = auth(await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1"))
    assert_problem(await client.get(url, headers=auditor), 403)
    assert_problem(await client.get(url), 401)
    manager = auth(await make_key(sessionmaker, "manager"))
    assert (await client.get(url, headers=manager)).json() == body
    assert_problem(await client.get(f"/v1/disagreements/{uuid.uuid4()}", headers=manager), 404)


async def test_an_overturn_counts_as_correct_in_the_accuracy_report_at_once(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    case = await new_case(sender, sessionmaker)
    await set_status(sessionmaker, case, "disputed")
    manager = auth(await make_key(sessionmaker, "manager"))
    report = "/v1/reports/accuracy?group_by=moderator&from=2026-11-24&to=2026-11-24"

    def counts(response: httpx.Response) -> list[tuple[str, int, int]]:
        assert response.status_code == 200, response.text
        return [(r["key"], r["audited"], r["correct"]) for r in response.json()["rows"]]

    assert counts(await client.get(report, headers=manager)) == [("mod-42", 1, 0)]
    resolved = await client.post(
        resolve_url(case), json={"outcome": "overturned", "note": "n"}, headers=manager
    )
    assert resolved.status_code == 200
    assert counts(await client.get(report, headers=manager)) == [("mod-42", 1, 1)]
