"""Scheduled dispute housekeeping (closing undisputed disagreements, SLA reminders) and the
notifications of disagreements: to the market's channels, in English and German."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifier.templates import render_text
from services.report_worker.disputes import (
    run_close_expired_disagreements,
    run_remind_overdue_disputes,
)
from shared.core.queue import ArqRedis
from shared.core.settings import Settings
from shared.core.signing import verify_signature
from shared.disagreements.lifecycle import CLOSE_NOTE
from shared.events import (
    DecisionCorrected,
    DisagreementOpened,
    DisputeAwaitingArbitration,
    EventType,
    record_event,
)
from shared.models import AuditLogEntry, Disagreement, DisagreementChange, Event, OutboxJob
from tests.conftest import SignedSender, auth, make_key
from tests.support.disagreements import Case, new_case, set_status, state_of
from tests.support.webhooks import SECRET, WebhookReceiver, create_channel, notify
from tests.support.workers import worker_state

Sessionmaker = async_sessionmaker[AsyncSession]


async def events_of(sessionmaker: Sessionmaker, event_type: str) -> list[Event]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.type == event_type).order_by(Event.occurred_at)
            )
        )


# --- closing what nobody disputed ---------------------------------------------------------


async def test_undisputed_disagreements_close_after_their_deadline(
    sender: SignedSender,
    client: httpx.AsyncClient,
    settings: Settings,
    sessionmaker: Sessionmaker,
) -> None:
    expired = await new_case(sender, sessionmaker, 1, deadline=-timedelta(minutes=1))
    running = await new_case(sender, sessionmaker, 2, deadline=timedelta(hours=1))
    disputed = await new_case(sender, sessionmaker, 3, deadline=-timedelta(minutes=1))
    await set_status(sessionmaker, disputed, "disputed")
    state = worker_state(settings, sessionmaker)

    assert await run_close_expired_disagreements(state) == 1
    assert await run_close_expired_disagreements(state) == 0  # nothing twice

    closed, _, changes = await state_of(sessionmaker, expired)
    assert (closed.status, changes) == ("closed", 2)
    async with sessionmaker() as session:
        last = await session.scalar(
            select(DisagreementChange)
            .where(DisagreementChange.disagreement_id == expired.disagreement_id)
            .order_by(DisagreementChange.id.desc())
            .limit(1)
        )
    assert last is not None
    assert (last.from_status, last.to_status, last.actor, last.note) == (
        "open",
        "closed",
        None,
        CLOSE_NOTE,
    )
    assert (await state_of(sessionmaker, running))[0].status == "open"
    assert (await state_of(sessionmaker, disputed))[0].status == "disputed"

    # The history shows the close; a dispute now is too late.
    moderator = await make_key(sessionmaker, "moderator", reviewer_id="mod-42")
    detail = await client.get(
        f"/v1/disagreements/{expired.disagreement_id}", headers=auth(moderator)
    )
    assert [c["to_status"] for c in detail.json()["history"]] == ["open", "closed"]
    late = await client.post(
        f"/v1/disagreements/{expired.disagreement_id}/dispute",
        json={"reason": "x"},
        headers=auth(moderator),
    )
    assert late.status_code == 409
    assert late.json()["type"].endswith("/dispute-window-closed")


async def test_the_scheduled_close_is_in_the_audit_log_like_every_other_change(
    sender: SignedSender, settings: Settings, sessionmaker: Sessionmaker
) -> None:
    # The worker closes through the same lifecycle as the API's changes: the close has its
    # audit-log entry (no actor: the schedule did it), with the state before and after.
    expired = await new_case(sender, sessionmaker, 1, deadline=-timedelta(minutes=1))
    assert await run_close_expired_disagreements(worker_state(settings, sessionmaker)) == 1
    async with sessionmaker() as session:
        entries = list(
            await session.scalars(
                select(AuditLogEntry).where(
                    AuditLogEntry.entity_type == "disagreement",
                    AuditLogEntry.entity_id == str(expired.disagreement_id),
                )
            )
        )
    assert [(e.action, e.actor_key_id, e.actor_role) for e in entries] == [
        ("disagreement.closed", None, None)
    ]
    [entry] = entries
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["status"], entry.after["status"]) == ("open", "closed")


# --- SLA reminders ------------------------------------------------------------------------


async def test_disputes_past_their_sla_are_reminded_once_with_their_market(
    sender: SignedSender, settings: Settings, sessionmaker: Sessionmaker
) -> None:
    assert settings.dispute_sla_hours == 24
    overdue = await new_case(sender, sessionmaker, 1)
    await set_status(sessionmaker, overdue, "disputed", disputed_ago=timedelta(hours=25))
    recent = await new_case(sender, sessionmaker, 2)
    await set_status(sessionmaker, recent, "disputed", disputed_ago=timedelta(hours=23))
    undisputed = await new_case(sender, sessionmaker, 3)
    resolved = await new_case(sender, sessionmaker, 4)
    await set_status(sessionmaker, resolved, "disputed", disputed_ago=timedelta(hours=48))
    await set_status(sessionmaker, resolved, "upheld")
    state = worker_state(settings, sessionmaker)

    assert await run_remind_overdue_disputes(state) == 1
    assert await run_remind_overdue_disputes(state) == 0  # once per dispute

    [event] = await events_of(sessionmaker, "dispute.awaiting_arbitration")
    assert event.market == "DE"
    assert event.source_id is None
    data = event.data
    assert data["id"] == str(overdue.disagreement_id)
    assert (data["moderator_id"], data["auditor_id"], data["queue"]) == (
        "mod-42",
        "aud-1",
        "de-video-standard",
    )
    assert data["decision_id"] == overdue.decision_id
    assert (data["waiting_hours"], data["sla_hours"]) == (25, 24)
    assert data["dispute_reason"] == "I followed the policy"
    DisputeAwaitingArbitration.model_validate(data)
    reminded, _, changes = await state_of(sessionmaker, overdue)
    assert reminded.sla_reminded_at is not None
    assert (reminded.status, changes) == ("disputed", 2)  # a reminder is not a state change
    for case in (recent, undisputed, resolved):
        assert (await state_of(sessionmaker, case))[0].sla_reminded_at is None
    async with sessionmaker() as session:
        fan_outs = await session.scalar(
            select(func.count()).select_from(OutboxJob).where(OutboxJob.function == "fan_out_event")
        )
    assert fan_outs == 1

    # The clock moves on: the recent dispute is overdue now, and reminded in its turn.
    later = settings.model_copy(update={"dispute_sla_hours": 22})
    assert await run_remind_overdue_disputes(worker_state(later, sessionmaker)) == 1
    assert len(await events_of(sessionmaker, "dispute.awaiting_arbitration")) == 2


async def test_reminders_and_openings_reach_the_markets_channels_only(
    receiver: WebhookReceiver,
    sender: SignedSender,
    client: httpx.AsyncClient,
    admin_key: str,
    settings: Settings,
    sessionmaker: Sessionmaker,
    queue: ArqRedis,
) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    await create_channel(
        client,
        admin_key,
        f"{base}/de-policy-pocs",
        name="DE policy POCs",
        events=("dispute.awaiting_arbitration",),
        markets=["DE"],
    )
    await create_channel(
        client,
        admin_key,
        f"{base}/at-policy-pocs",
        name="AT policy POCs",
        events=("dispute.awaiting_arbitration",),
        markets=["AT"],
    )
    await create_channel(
        client,
        admin_key,
        f"{base}/de-moderators",
        name="DE moderator team",
        events=("disagreement.opened",),
        markets=["DE"],
    )
    case = await new_case(sender, sessionmaker, 1)
    await set_status(sessionmaker, case, "disputed", disputed_ago=timedelta(hours=30))
    # What the verdict endpoint records when it opens a disagreement.
    opened = await opened_event(sessionmaker, case)

    assert await run_remind_overdue_disputes(worker_state(settings, sessionmaker)) == 1
    await notify(settings, sessionmaker, queue)

    by_path = {request.path: request for request in receiver.requests}
    assert sorted(by_path) == ["/de-moderators", "/de-policy-pocs"]
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert verify_signature(
            [SECRET], request.headers["x-plumbline-signature"], request.body, int(time.time()), 300
        )
    reminder = orjson.loads(by_path["/de-policy-pocs"].body)
    assert list(reminder) == ["id", "type", "occurred_at", "data"]
    assert reminder["type"] == "dispute.awaiting_arbitration"
    assert reminder["data"]["id"] == str(case.disagreement_id)
    team = orjson.loads(by_path["/de-moderators"].body)
    assert (team["id"], team["type"]) == (str(opened.id), "disagreement.opened")
    assert team["data"]["moderator_id"] == "mod-42"


async def opened_event(sessionmaker: Sessionmaker, case: Case) -> Event:
    async with sessionmaker() as session, session.begin():
        disagreement = await session.get(Disagreement, case.disagreement_id)
        assert disagreement is not None
        return await record_event(
            session,
            type=EventType.DISAGREEMENT_OPENED,
            data=DisagreementOpened(
                id=case.disagreement_id,
                audit_id=case.audit_id,
                decision_id=case.decision_id,
                moderator_id=case.moderator_id,
                market=case.market,
                queue="de-video-standard",
                error_type="over_enforcement",
                severity="major",
                expected_action="approve",
                dispute_deadline=disagreement.dispute_deadline,
            ),
            market=case.market,
        )


# --- texts for chat channels ---------------------------------------------------------------


def test_disagreement_texts_in_english_and_german() -> None:
    disagreement_id = uuid.UUID("6c1f0c4e-2a7b-4f43-9d1e-5b2f8f1f0a11")
    opened = DisagreementOpened(
        id=disagreement_id,
        audit_id=uuid.uuid4(),
        decision_id=17,
        moderator_id="mod-42",
        market="DE",
        queue="de-video-standard",
        error_type="missed_violation",
        severity="critical",
        expected_action="remove",
        dispute_deadline=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
    ).model_dump(mode="json")
    english = render_text("disagreement.opened", "en", opened)
    german = render_text("disagreement.opened", "de", opened)
    # Moments in the channel's time zone (UTC unless it has one), as Babel writes them.
    assert english == (
        "Audit of moderator mod-42 (DE, de-video-standard): decision 17 was judged incorrect "
        "(missed violation, severity critical; expected: remove). The moderator may dispute "
        "it until Nov 27, 2026, 10:00\u202fAM UTC."
    )
    assert german == (
        "Audit von Moderator mod-42 (DE, de-video-standard): Entscheidung 17 wurde als falsch "
        "bewertet (übersehener Verstoß, Schweregrad kritisch; erwartet: entfernen). Der "
        "Moderator kann bis 27.11.2026, 10:00 UTC Einspruch einlegen."
    )
    assert "bis 27.11.2026, 11:00 MEZ" in render_text(
        "disagreement.opened", "de", opened, time_zone="Europe/Berlin"
    )

    waiting = DisputeAwaitingArbitration(
        id=disagreement_id,
        audit_id=uuid.uuid4(),
        decision_id=17,
        moderator_id="mod-42",
        auditor_id="aud-1",
        market="DE",
        queue="de-video-standard",
        dispute_reason=None,
        disputed_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        waiting_hours=30,
        sla_hours=24,
    ).model_dump(mode="json")
    assert render_text("dispute.awaiting_arbitration", "en", waiting).startswith(
        "A dispute has waited 30 h for arbitration (SLA: 24 h): moderator mod-42"
    )
    german_waiting = render_text("dispute.awaiting_arbitration", "de", waiting)
    assert german_waiting.startswith("Ein Einspruch wartet seit 30 h auf eine Entscheidung")
    # A null reason is left out, not shown as "None" or "?".
    assert "Begründung" not in german_waiting
    assert "None" not in german_waiting
    assert "?" not in german_waiting

    corrected = DecisionCorrected(
        decision_id=17,
        event_id="evt-17",
        content_id="vid-17",
        original_action="approve",
        corrected_action="remove",
        corrected_labels=["hate_speech"],
        severity="major",
        error_type="missed_violation",
        verdict_id=uuid.uuid4(),
        corrected_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    ).model_dump(mode="json")
    assert render_text("decision.corrected", "en", corrected) == (
        "QA corrected decision evt-17 on content vid-17: approve should have been remove "
        "(missed violation, severity major)."
    )
    assert render_text("decision.corrected", "de", corrected) == (
        "Die QA hat Entscheidung evt-17 zu Inhalt vid-17 korrigiert: statt freigeben wäre "
        "entfernen richtig gewesen (übersehener Verstoß, Schweregrad schwer)."
    )
    # Codes are translated only in the fields that hold codes.
    assert "Moderator remove" in render_text(
        "disagreement.opened", "de", {**opened, "moderator_id": "remove"}
    )
