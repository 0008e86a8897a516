"""Console escalations over real HTTP: the list, one escalation's breach figures and
history, the RCA form, corrective actions, the workflow up to "resolved", opening one by
hand; the API's roles, market scoping and CSRF."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Escalation, EscalationAction
from tests.conftest import LiveServer
from tests.support.console import make_person
from tests.support.console_lead import (
    breached_escalation,
    location,
    people,
    rows,
    signed_in,
    text_of,
)

Sessionmaker = async_sessionmaker[AsyncSession]


async def stored(sessionmaker: Sessionmaker, escalation_id: uuid.UUID) -> Escalation:
    async with sessionmaker() as session:
        escalation = await session.get(Escalation, escalation_id)
    assert escalation is not None
    return escalation


async def action_count(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(EscalationAction)) or 0)


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


async def test_the_list_shows_unresolved_escalations_with_their_breach(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    who = await people(sessionmaker, lead="manager", poc=("policy_poc", "poc-1"))
    for person in (who["lead"], who["poc"]):
        async with signed_in(live_server.url, person) as console:
            listing = await console.page("/console/escalations")
            assert listing.status_code == 200
            [row] = rows(listing.text, "escalations")
            assert row[1:4] == ["Market: DE", "open", "81.0%"]
            assert f"/console/escalations/{escalation_id}" in listing.text
            resolved = await console.page("/console/escalations?status=resolved")
            assert "No escalation to show." in resolved.text
            everything = await console.page("/console/escalations?status=all")
            assert len(rows(everything.text, "escalations")) == 1
            bad = await console.page("/console/escalations?status=closed")
            assert bad.status_code == 422


async def test_the_detail_shows_the_breach_figures_the_slice_and_the_history(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker, breaches=2)
    who = await people(sessionmaker, lead="manager")
    async with signed_in(live_server.url, who["lead"]) as console:
        detail = await console.page(f"/console/escalations/{escalation_id}")
        assert detail.status_code == 200
        figures = {row[0]: row[1] for row in rows(detail.text, "evidence")}
        assert figures["Metric"] == "accuracy"
        assert figures["Observed"] == "81.0%"
        assert figures["Interval low"] == "77.0%"
        assert figures["Interval high"] == "85.0%"
        assert figures["Baseline"] == "93.0%"
        assert figures["p-value"] == "0.0004"
        assert figures["Audits in the window"] == "412"
        assert "Market: DE" in text_of(detail.text)
        history = rows(detail.text, "history")
        assert len(history) == 2
        assert history[0][1:] == ["81.0%", "77.0% \u2013 85.0%", "93.0%", "0.0004", "412"]


async def test_the_rca_form_stores_owner_cause_and_the_five_whys(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    who = await people(sessionmaker, lead="manager")
    path = f"/console/escalations/{escalation_id}"
    async with signed_in(live_server.url, who["lead"]) as console:
        await console.page(path)
        saved = await console.post(
            f"{path}/rca",
            {
                "owner_id": "lead-1",
                "root_cause": "training_gap",
                "analysis": "New slur list not trained\n\nQuiz skipped in onboarding\n",
            },
        )
        assert location(saved) == f"{path}#rca"
        page = await console.page(path)
        assert "Training gap" in page.text
        assert "<li>New slur list not trained</li>" in page.text
        assert "<li>Quiz skipped in onboarding</li>" in page.text
    escalation = await stored(sessionmaker, escalation_id)
    assert (escalation.owner_id, escalation.root_cause) == ("lead-1", "training_gap")
    assert escalation.analysis == ["New slur list not trained", "Quiz skipped in onboarding"]


async def test_bad_rca_and_action_input_is_refused_on_the_form_and_nothing_is_stored(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    who = await people(sessionmaker, lead="manager")
    path = f"/console/escalations/{escalation_id}"
    async with signed_in(live_server.url, who["lead"]) as console:
        await console.page(path)
        cause = await console.post(
            f"{path}/rca", {"owner_id": "lead-1", "root_cause": "bad_luck", "analysis": "x"}
        )
        assert cause.status_code == 422
        assert 'role="alert"' in cause.text
        assert "root_cause" in cause.text
        whys = await console.post(
            f"{path}/rca",
            {"owner_id": "lead-1", "analysis": "\n".join(f"why {n}" for n in range(11))},
        )
        assert whys.status_code == 422
        # The typed text stays in the form.
        assert "why 10" in whys.text
        due = await console.post(
            f"{path}/actions", {"title": "Retrain", "owner_id": "lead-1", "due_on": "soon"}
        )
        assert due.status_code == 422
        assert 'value="Retrain"' in due.text
        owner = await console.post(
            f"{path}/actions", {"title": "Retrain", "owner_id": "", "due_on": tomorrow()}
        )
        assert owner.status_code == 422
        bogus = await console.post(f"{path}/status", {"status": "closed"})
        assert bogus.status_code == 422
    escalation = await stored(sessionmaker, escalation_id)
    assert (escalation.owner_id, escalation.root_cause, escalation.analysis) == (None, None, [])
    assert escalation.status == "open"
    assert await action_count(sessionmaker) == 0


async def test_the_workflow_resolves_only_once_the_actions_are_done(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    who = await people(sessionmaker, poc=("policy_poc", "poc-1"))
    path = f"/console/escalations/{escalation_id}"
    async with signed_in(live_server.url, who["poc"]) as console:
        page = await console.page(path)
        assert "Start investigating" in page.text
        assert "Resolve" not in text_of(page.text).split("Root-cause analysis")[0]
        # A move the workflow forbids is refused with the reason.
        early = await console.post(f"{path}/status", {"status": "resolved"})
        assert early.status_code == 409
        assert "cannot move from open to resolved" in early.text
        await console.post(f"{path}/status", {"status": "investigating"})
        added = await console.post(
            f"{path}/actions",
            {"title": "Retrain DE night shift", "owner_id": "poc-1", "due_on": tomorrow()},
        )
        assert location(added) == f"{path}#actions"
        await console.post(f"{path}/status", {"status": "actions_pending"})
        page = await console.page(path)
        [action] = rows(page.text, "actions-table")
        assert action[:2] == ["Retrain DE night shift", "poc-1"]
        refused = await console.post(f"{path}/status", {"status": "resolved"})
        assert refused.status_code == 409
        assert "still open" in refused.text
        assert (await stored(sessionmaker, escalation_id)).status == "actions_pending"
        async with sessionmaker() as session:
            action_id = await session.scalar(select(EscalationAction.id))
        done = await console.post(f"{path}/actions/{action_id}/complete")
        assert location(done) == f"{path}#actions"
        twice = await console.post(f"{path}/actions/{action_id}/complete")
        assert twice.status_code == 409
        resolved = await console.post(f"{path}/status", {"status": "resolved"})
        assert location(resolved) == path
        page = await console.page(path)
        assert "Resolved: a new breach of its rule re-opens it." in page.text
        # No new action on a resolved escalation: the form is gone.
        assert 'name="due_on"' not in page.text
    escalation = await stored(sessionmaker, escalation_id)
    assert escalation.status == "resolved"
    assert escalation.resolved_at is not None


async def test_an_escalation_opened_by_hand(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    who = await people(sessionmaker, qa=("qa_auditor", "qa-1"))
    async with signed_in(live_server.url, who["qa"]) as console:
        form = await console.page("/console/escalations/new")
        assert form.status_code == 200
        empty = await console.post(
            "/console/escalations", {"title": "Odd removals", "description": "", "market": ""}
        )
        assert empty.status_code == 422
        assert "at least one of market" in empty.text
        async with sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(Escalation)) == 0
        opened = await console.post(
            "/console/escalations",
            {"title": "Odd removals", "description": "Seen in DE video", "market": "DE"},
        )
        path = location(opened)
        page = await console.page(path)
        assert "Odd removals" in page.text
        assert "Opened by hand: no breach figures." in page.text
        assert "by qa-1" in page.text


async def test_roles_and_markets_are_refused_as_the_api_refuses_them(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    path = f"/console/escalations/{escalation_id}"
    moderator = await make_person(sessionmaker, "moderator")
    french = await make_person(sessionmaker, "manager", markets=["FR"])
    async with signed_in(live_server.url, moderator) as console:
        assert (await console.page("/console/escalations")).status_code == 403
        assert (await console.page(path)).status_code == 403
        await console.page("/console/account")
        refused = await console.post(f"{path}/rca", {"root_cause": "tooling"})
        assert refused.status_code == 403
    async with signed_in(live_server.url, french) as console:
        listing = await console.page("/console/escalations")
        assert "No escalation to show." in listing.text
        # Another market's escalation is as unknown as a missing one.
        assert (await console.page(path)).status_code == 404
        assert (await console.page("/console/escalations?market=DE")).status_code == 403
        await console.page("/console/account")
        assert (await console.post(f"{path}/rca", {"root_cause": "tooling"})).status_code == 404
    assert (await stored(sessionmaker, escalation_id)).root_cause is None


async def test_writes_without_the_csrf_token_are_refused(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    path = f"/console/escalations/{escalation_id}"
    who = await people(sessionmaker, lead="manager")
    async with signed_in(live_server.url, who["lead"]) as console:
        await console.page(path)
        forged = await console.http.post(f"{path}/rca", data={"root_cause": "tooling"})
        assert forged.status_code == 403
        moved = await console.http.post(
            f"{path}/status", data={"status": "investigating", "csrf_token": "guess"}
        )
        assert moved.status_code == 403
        action = await console.http.post(
            f"{path}/actions", data={"title": "x", "owner_id": "y", "due_on": tomorrow()}
        )
        assert action.status_code == 403
    escalation = await stored(sessionmaker, escalation_id)
    assert (escalation.root_cause, escalation.status) == (None, "open")
    assert await action_count(sessionmaker) == 0


async def test_a_german_lead_reads_the_escalation_in_german(
    live_server: LiveServer, sessionmaker: Sessionmaker
) -> None:
    escalation_id = await breached_escalation(sessionmaker)
    lead = await make_person(sessionmaker, "manager", language="de")
    async with signed_in(live_server.url, lead) as console:
        page = await console.page(f"/console/escalations/{escalation_id}")
        assert page.status_code == 200
        assert "Ursachenanalyse" in page.text
        assert "Untersuchung beginnen" in page.text
        figures = {row[0]: row[1] for row in rows(page.text, "evidence")}
        assert figures["Beobachtet"] == "81,0 %"
        assert figures["p-Wert"] == "0,0004"
